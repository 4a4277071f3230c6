"""Multi-view evaluation: score every view, average per video, gather exactly, compute metrics.

Used by validation in main.py and by test_models.py, so both count videos the same way. Under DDP
each rank returns (video index, scores) pairs and `gather_predictions` keeps one row per video
index, so every video counts exactly once whatever the sampler does (ops.data's ShardSampler does
not pad; a padding sampler such as DistributedSampler would be deduplicated here: VideoMAE's habit).
"""
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from ops.model_api import as_output


def average_views(logits, num_views, softmax=False):
    """[B * V, C] view scores -> [B, C] per-video scores (mean of softmax or of raw scores)."""
    scores = logits.float().view(-1, num_views, logits.shape[-1])
    if softmax:
        scores = F.softmax(scores, dim=-1)
    return scores.mean(dim=1)


@torch.no_grad()
def predict(model, loader, normalize, device, softmax=False, amp_dtype=None, chunk=None, progress=True,
            desc="test"):
    """Run `model` over every view of every video in `loader`.

    loader yields (frames uint8 [B, V, T, h, w, 3], labels, indices[, skipped]); `normalize` maps the
    frames to the model's float layout [B, V, ...] (None: the loader's workers did); views are folded
    into the batch, scored, and averaged per video. `chunk` bounds how many views go through the model at once (memory).
    Returns this rank's (indices [N], scores [N, C], labels [N]) as CPU tensors, plus the names of
    samples skipped under the skip policy.
    """
    model.eval()
    all_idx, all_scores, all_labels, skipped = [], [], [], []
    for batch in tqdm(loader, desc=desc, disable=not progress, dynamic_ncols=True, leave=False):
        frames, labels, indices = batch[:3]
        if len(batch) > 3:
            skipped.extend(batch[3])
        if frames is None:  # every item of the batch was skipped
            continue
        frames = frames.to(device, non_blocking=True)
        batch_size, num_views = frames.shape[:2]
        x = (frames if normalize is None else normalize(frames)).flatten(0, 1)
        step = chunk or x.shape[0]
        outs = []
        for start in range(0, x.shape[0], step):
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                outs.append(as_output(model(x[start:start + step]))["logits"].float())
        logits = torch.cat(outs)
        all_scores.append(average_views(logits, num_views, softmax))  # kept on the device: no wait per batch
        all_idx.append(torch.as_tensor(indices).view(-1).cpu())
        all_labels.append(torch.as_tensor(labels).view(-1).cpu())
    if not all_scores:
        return torch.empty(0, dtype=torch.long), torch.empty(0, 0), torch.empty(0, dtype=torch.long), skipped
    return torch.cat(all_idx), torch.cat(all_scores).cpu(), torch.cat(all_labels), skipped


def _all_gather_rows(tensor, group=None):
    """all_gather for tensors whose first dimension differs between ranks."""
    world = dist.get_world_size(group)
    comm_device = torch.device("cuda", torch.cuda.current_device()) \
        if dist.get_backend(group) == "nccl" else torch.device("cpu")
    local = tensor.to(comm_device)
    size = torch.tensor([local.shape[0]], device=comm_device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size, group=group)
    max_rows = int(max(s.item() for s in sizes))
    padded = torch.zeros((max_rows,) + tuple(local.shape[1:]), dtype=local.dtype, device=comm_device)
    padded[:local.shape[0]] = local
    parts = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded, group=group)
    return torch.cat([p[:int(s.item())] for p, s in zip(parts, sizes)]).cpu()


def gather_predictions(indices, scores, labels, group=None):
    """Gather (indices, scores, labels) from every rank; one row per video, sorted by video index.

    Rows repeated by the sampler's padding are dropped (the first copy is kept), so metrics count
    each video exactly once whatever the world size.
    """
    if dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1:
        # A rank whose every sample was skipped holds a [0, 0] score tensor: agree on the width.
        width = [None] * dist.get_world_size(group)
        dist.all_gather_object(width, scores.shape[1] if scores.dim() == 2 else 0, group=group)
        scores = scores.float().reshape(scores.shape[0], max(width))
        indices = _all_gather_rows(indices.long(), group)
        labels = _all_gather_rows(labels.long(), group)
        scores = _all_gather_rows(scores, group)
    order = torch.argsort(indices, stable=True)
    indices, scores, labels = indices[order], scores[order], labels[order]
    keep = torch.ones_like(indices, dtype=torch.bool)
    keep[1:] = indices[1:] != indices[:-1]
    return indices[keep], scores[keep], labels[keep]


def gather_names(names, group=None):
    """Union of a list of strings (e.g. skipped samples) over all ranks, sorted."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1:
        parts = [None] * dist.get_world_size(group)
        dist.all_gather_object(parts, list(names), group=group)
        names = [n for part in parts for n in part]
    return sorted(set(names))


def confusion_matrix(pred, labels, num_class):
    """[num_class, num_class] counts, rows = ground truth, columns = prediction."""
    pred = np.asarray(pred, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    return np.bincount(labels * num_class + pred, minlength=num_class * num_class).reshape(num_class, num_class)


def compute_metrics(scores, labels, num_class):
    """Top-1, top-5, mean class accuracy (over classes present in the ground truth), per-class
    accuracy (NaN for absent classes) and the confusion matrix, from per-video scores."""
    scores = torch.as_tensor(scores).float()
    labels = torch.as_tensor(labels).long()
    if labels.numel() == 0:
        raise ValueError("no videos were evaluated")
    k = min(5, scores.shape[1])
    topk = scores.topk(k, dim=1).indices
    pred = topk[:, 0]
    top1 = (pred == labels).float().mean().item() * 100
    top5 = (topk == labels[:, None]).any(dim=1).float().mean().item() * 100
    cm = confusion_matrix(pred.numpy(), labels.numpy(), num_class)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan) * 100
    return {
        "top1": top1,
        "top5": top5,
        "mean_class_acc": float(np.nanmean(per_class)),
        "per_class_acc": per_class,
        "confusion": cm,
        "num_videos": int(labels.numel()),
    }


def save_confusion_png(cm, class_names, path, title="Confusion matrix"):
    """Row-normalised confusion matrix as a picture with class names (readable up to ~60 classes;
    larger label sets drop the tick labels)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm, dtype=np.float64)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = cm.shape[0]
    side = min(4 + 0.35 * n, 30)
    fig, ax = plt.subplots(figsize=(side, side * 0.9))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if n <= 60:
        names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
        ax.set_xticks(range(n), names, rotation=90, fontsize=8)
        ax.set_yticks(range(n), names, fontsize=8)
        if n <= 20:
            for i in range(n):
                for j in range(n):
                    if cm[i, j]:
                        ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                                color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _pair_margins(labels, partner, *score_sets):
    """For the videos of the paired classes (`partner`: {class: its time-reversed class}), the
    score of the true class minus that of its partner, one array per score set ([N, classes] each)."""
    labels = np.asarray(labels)
    rows = np.array([i for i, label in enumerate(labels) if int(label) in partner], dtype=np.int64)
    if not len(rows):
        raise ValueError("no video of a paired class to score")
    other = np.array([partner[int(labels[i])] for i in rows])
    return [np.asarray(s, np.float64)[rows, labels[rows]] - np.asarray(s, np.float64)[rows, other]
            for s in score_sets]


def reversal_direction_accuracy(scores, reversed_scores, labels, partner):
    """Temporal reasoning measured on each video against its own time reversal, in %: over the
    videos of the paired classes (`partner`: {class: its time-reversed class}, e.g.
    tools.synthetic.time_reversed_partner()), how often the margin of the true class over its partner is
    larger on the video than on the same frames played backwards (which show the partner class).
    Ties (equal up to float32 rounding) count half, so a model blind to frame order scores exactly
    50%; unlike pair_direction_accuracy, appearance biases between test videos cancel out."""
    if np.shape(scores) != np.shape(reversed_scores):
        raise ValueError(f"scores {np.shape(scores)} and reversed scores {np.shape(reversed_scores)} differ in shape")
    margin, margin_reversed = _pair_margins(labels, partner, scores, reversed_scores)
    # An order-blind model's two passes differ only by float32 summation order: that is a tie.
    tie = np.isclose(margin, margin_reversed, rtol=1e-5, atol=1e-6 * max(1.0, np.abs(scores).max()))
    return float(100 * np.mean(np.where(tie, 0.5, margin > margin_reversed)))


def pair_direction_accuracy(scores, labels, partner):
    """Temporal reasoning alone, in %: over the videos of the paired classes (`partner`), how often
    the true class scores above its time-reversed partner (ties count half). A model that ignores frame
    order sits at 50% here however well it learned the rest, so this separates "learned the
    pairs" from "learned the arrow of time" at any training budget."""
    margin, = _pair_margins(labels, partner, scores)
    return float(100 * np.mean((margin > 0) + 0.5 * (margin == 0)))
