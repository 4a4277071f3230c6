"""The training loop: one epoch of training, one pass of validation, the learning-rate schedule
and the run log. Nothing here knows which model it trains: it sees uint8 frames and
DeviceNormalize (or, on a CPU run, frames the loader's workers normalised: `normalize` None; see
ops.transforms.place_normalize), and the output contract of ops.model_api.as_output.

Training step: x = normalize(frames); out = as_output(model(x));
loss = CE(out.logits, labels) (if logits) + sum(out.losses). Mixed precision (`amp`): "bf16"
autocast, or "fp16" autocast with a GradScaler. Every model-reported loss and metric is averaged
over the epoch (over all ranks) and logged as train/<name>.

The host never waits for the device inside a step: the meters add on the device and are read once
per `print_freq` iterations and at the end of the epoch (tests/test_host_syncs.py counts the
reads), and the batch is the only host-to-device copy (`to_device`, asynchronous from pinned
memory). On a GPU the host thus queues work ahead of the device.
"""
import datetime
import json
import logging
import math
import os
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ops import distributed as du
from ops.dataset import check_skip_ceiling
from ops.evaluation import compute_metrics, gather_names, gather_predictions, predict
from ops.logging_setup import setup_logging, teardown_logging
from ops.model_api import as_output

logger = logging.getLogger(__name__)


AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def amp_dtype(amp):
    """The autocast dtype of an --amp value ("bf16", "fp16"), None when off. fp16 needs a
    GradScaler (its gradients underflow); bf16 has fp32's range and needs none."""
    return AMP_DTYPES[amp] if amp else None


def to_device(tensors, device):
    """The batch's host tensors on the device: the one host-to-device copy of a step, which does
    not block the host when the loader pins memory. On a CPU run they are there already."""
    if device.type == "cpu":
        return tensors
    moved = []
    for t in tensors:
        moved.append(t.to(device, non_blocking=True))
    return moved


class LRSchedule:
    """Per-iteration learning rate: every group gets base_lr x its lr_mult x factor(t), t in epochs.

    factor: `step` x0.1 at each of `lr_steps`; `cos` half a cosine from 1 to 0 over the epochs after
    warm-up; `plateau` x0.1 each time the validation loss has not improved (relative 1e-4) for more
    than `patience` validations (PyTorch's ReduceLROnPlateau rule). A linear warm-up over
    `warmup_epochs` multiplies any of them.
    """

    def __init__(self, optimizer, base_lr, lr_type, epochs, iters_per_epoch, lr_steps=(), warmup_epochs=0,
                 patience=10, decay=0.1):
        if lr_type not in ("step", "cos", "plateau"):
            raise ValueError(f"unknown lr_type {lr_type!r}")
        self.optimizer, self.base_lr, self.lr_type = optimizer, base_lr, lr_type
        self.epochs, self.iters_per_epoch = epochs, max(1, iters_per_epoch)
        self.lr_steps, self.warmup_epochs = sorted(lr_steps), warmup_epochs
        self.patience, self.decay = patience, decay
        self.best_loss, self.bad_epochs, self.reductions = None, 0, 0
        self.factor_now = 1.0

    def factor(self, t):
        if self.lr_type == "step":
            f = self.decay ** sum(t >= s for s in self.lr_steps)
        elif self.lr_type == "cos":
            span = max(self.epochs - self.warmup_epochs, 1e-8)
            f = 0.5 * (1 + math.cos(math.pi * min(max(t - self.warmup_epochs, 0) / span, 1)))
        else:
            f = self.decay ** self.reductions
        if t < self.warmup_epochs:
            f *= min(1.0, (t * self.iters_per_epoch + 1) / (self.warmup_epochs * self.iters_per_epoch))
        return f

    def step(self, epoch, iteration):
        """Set every group's lr for iteration `iteration` of epoch `epoch` (both 0-based)."""
        self.factor_now = self.factor(epoch + iteration / self.iters_per_epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = self.base_lr * group.get("lr_mult", 1) * self.factor_now

    @property
    def lr(self):
        return self.base_lr * self.factor_now

    def observe(self, val_loss):
        """Feed one validation loss (plateau schedule only)."""
        if self.lr_type != "plateau" or val_loss is None:
            return
        if self.best_loss is None or val_loss < self.best_loss * (1 - 1e-4):
            self.best_loss, self.bad_epochs = float(val_loss), 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs > self.patience:
                self.reductions, self.bad_epochs = self.reductions + 1, 0

    def state_dict(self):
        return {"best_loss": self.best_loss, "bad_epochs": self.bad_epochs, "reductions": self.reductions}

    def load_state_dict(self, state):
        self.best_loss, self.bad_epochs, self.reductions = state["best_loss"], state["bad_epochs"], state["reductions"]


class RunLog:
    """The run's log folder: log.txt (through `logging`, so library records land there too; see
    ops/logging_setup.py) and TensorBoard scalars. Only rank 0 writes; other ranks show warnings."""

    def __init__(self, folder, rank=0):
        self.folder, self.enabled, self.writer = folder, rank == 0, None
        setup_logging(os.path.join(folder, "log.txt"), rank)
        if self.enabled:
            from tensorboardX import SummaryWriter
            self.writer = SummaryWriter(logdir=folder)

    def text(self, line, echo=True):
        """One line in log.txt, and on the console when `echo`."""
        logger.info(line, extra={"console": echo})

    def scalars(self, prefix, values, step):
        if not self.enabled:
            return
        for name, value in values.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(f"{prefix}/{name}", value, step)
        self.writer.flush()

    def record(self, entry):
        """One JSON line in metrics.jsonl (per epoch: {"epoch", "train": {...}, "val": {...}}), for
        scripts; non-finite numbers are written as null."""
        if self.enabled:
            entry = json.loads(json.dumps(entry), parse_constant=lambda _: None)
            with open(os.path.join(self.folder, "metrics.jsonl"), "a", encoding="utf-8") as f:
                f.write(json.dumps(entry, sort_keys=True) + "\n")

    def save_json(self, name, data):
        if self.enabled:
            with open(os.path.join(self.folder, name), "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2, sort_keys=True)

    def close(self):
        if self.writer is not None:
            self.writer.close()
        teardown_logging()


def forward_input(frames, normalize, keep_views):
    """The batch -> the model's input: `normalize` (None: the loader normalised) gives [B, V, ...];
    the view axis is dropped when there is one view, and kept (SSL methods, several clips per item)
    when `keep_views`."""
    x = frames if normalize is None else normalize(frames)
    if keep_views:
        return x
    if x.shape[1] != 1:
        raise ValueError(f"training takes one view per item, got {x.shape[1]} (a multi-view model "
                         "must be run with keep_views)")
    return x.select(1, 0)


def compute_loss(out, labels):
    """Total loss and its named parts (tensors; the meters read them later)."""
    parts = {}
    if out["logits"] is not None:
        parts["loss_ce"] = F.cross_entropy(out["logits"].float(), labels)
    parts.update(out["losses"])
    if not parts:
        raise ValueError("the model returned neither logits nor losses: nothing to train")
    terms = iter(parts.values())
    total = next(terms).float()
    for value in terms:
        total = total + value.float()
    return total, parts


class EpochMeter:
    """Sums over an epoch, kept on the device: loss parts and metrics (weighted by batch size),
    top-1/5 hits and per-class [misses, hits].

    `update` only keeps detached references to the step's values, logits and labels (no kernel
    but the detaches); every `fold_every` updates, and before each read, the kept steps are added
    to the sums in a few batched kernels (in float64, so the sums do not depend on how the steps
    are batched), so a step costs next to nothing and never reads the device. `read` (one
    transfer) and `reduce` (one all-reduce, one transfer) read it. The names (in the same order),
    and whether there are logits, must be the same in every update."""

    def __init__(self, num_class, device, fold_every=128):
        self.num_class, self.device, self.fold_every = num_class, device, fold_every
        self.keys, self.names, self.with_logits, self.count, self.pending = None, None, False, 0, []
        self.sums = torch.zeros(0, dtype=torch.float64, device=device)
        self.hits = torch.zeros(2, dtype=torch.float64, device=device)
        self.class_counts = torch.zeros(num_class, 2, dtype=torch.float64, device=device)
        self.one = torch.ones((), dtype=torch.float64, device=device)

    def update(self, n, loss, parts, metrics, logits, labels):
        """n items; loss, parts and metrics are per-item means (0-dim tensors on the device)."""
        keys = (tuple(parts), tuple(metrics), logits is not None)
        if self.names is None:
            self.keys, self.names, self.with_logits = keys, ["loss", *parts, *metrics], logits is not None
            self.sums = torch.zeros(len(self.names), dtype=torch.float64, device=self.device)
        elif keys != self.keys:
            raise ValueError(f"the model reported {keys} after {self.keys} (parts, metrics, logits): the "
                             "outputs must not change")
        kept = loss.detach()  # a one-part loss is its part: detached once
        self.pending.append((n, [kept, *(kept if v is loss else v.detach() for v in parts.values()),
                                 *(v.detach() for v in metrics.values())],
                             logits.detach() if logits is not None else None, labels))
        self.count += n
        if len(self.pending) >= self.fold_every:
            self.fold()

    def fold(self):
        """Add the kept steps to the sums (device kernels only)."""
        if not self.pending:
            return
        for n in {n for n, *_ in self.pending}:  # one batch size, except in validation
            kept = torch.stack([v for m, values, *_ in self.pending if m == n for v in values])
            self.sums.add_(kept.double().view(-1, len(self.names)).sum(dim=0), alpha=n)
        if self.with_logits:
            logits = torch.cat([lg for _, _, lg, _ in self.pending]).float()
            labels = torch.cat([lb for *_, lb in self.pending])
            hits = logits.topk(min(5, logits.shape[1]), dim=1).indices == labels[:, None]
            hit1 = hits[:, 0]
            self.hits.add_(torch.stack([hit1, hits.any(dim=1)]).sum(dim=1))
            self.class_counts.index_put_((labels, hit1.long()), self.one, accumulate=True)
        self.pending = []

    def averages(self, count, sums, class_counts=None):
        """{name: mean} over `count` items from [sums of the names..., top-1 hits, top-5 hits] and
        per-class [misses, hits] (for the mean class accuracy over the classes present)."""
        count, k = max(count, 1), len(self.names or [])
        result = {name: v / count for name, v in zip(self.names or [], sums)}
        if self.with_logits:
            result.update(top1=100 * sums[k] / count, top5=100 * sums[k + 1] / count)
            if class_counts is not None:
                present = [(h, m + h) for m, h in class_counts if m + h > 0]
                result["mean_class_acc"] = 100 * sum(h / t for h, t in present) / max(len(present), 1)
        return result

    def read(self):
        """Running averages on this rank (one device-to-host transfer)."""
        self.fold()
        return self.averages(self.count, torch.cat([self.sums, self.hits]).tolist())

    def reduce(self):
        """Epoch averages over every rank (the names are the same on every rank)."""
        self.fold()
        count = torch.full((1,), float(self.count), dtype=torch.float64, device=self.device)
        packed = du.all_reduce_sum(torch.cat([count, self.sums, self.hits, self.class_counts.flatten()])).tolist()
        per_class = packed[3 + len(self.sums):]
        result = self.averages(packed[0], packed[1:3 + len(self.sums)], list(zip(per_class[::2], per_class[1::2])))
        result["samples"] = int(packed[0])
        return result


def run_eta(elapsed, it, iters, epoch, epochs):
    """Time left in the whole run as 'H:MM:SS', at this epoch's pace so far (`elapsed` seconds for
    iterations 0..it): the rest of this epoch and every later one, validation not included."""
    left = elapsed / (it + 1) * ((iters - it - 1) + (epochs - epoch - 1) * iters)
    return str(datetime.timedelta(seconds=round(left)))


def train_one_epoch(model, loader, optimizer, schedule, scaler, normalize, device, epoch, num_class,
                    amp=None, clip_gradient=None, keep_views=False, print_freq=20, progress=True, log=None,
                    agree_on_skips=False, max_skip_fraction=None, epochs=None):
    """One epoch; returns the epoch averages (loss, loss parts, model metrics, top1/top5/mean class
    accuracy when the model gives logits, lr, clips_per_s, data_time per iteration, data_share of
    the epoch's time, samples trained on) and the skipped sample names. clips_per_s counts the time
    not spent waiting for data, measured to the end of the epoch's last step on the device.

    `max_skip_fraction`: stop (SkipLimitError) as soon as more than that fraction of the epoch's
    samples were skipped, rather than after a wasted epoch. `agree_on_skips` (DDP with the skip
    policy): the ranks exchange each batch's skips over the host, one batch behind (see
    ops.distributed.agree_on_skips), so a batch whose every item was bad on one rank is skipped on
    every rank (DDP's gradient all-reduce needs all ranks in each step), and the ceiling counts
    the samples of all ranks, so every rank stops at the same step with the same message.
    `epochs` (the run's length) adds the whole run's ETA to the progress bar and the log lines."""
    model.train()
    meter = EpochMeter(num_class, device)
    dtype = amp_dtype(amp)
    show = progress and du.is_main()
    bar = tqdm(loader, desc=f"epoch {epoch + 1}", disable=not show, dynamic_ncols=True, leave=False)
    if agree_on_skips:
        batches, world = du.agree_on_skips(bar, du.host_group()), du.get_world_size()
    else:
        batches, world = ((b, b[0] is None, len(b[3])) for b in bar), 1
    params = [p for g in optimizer.param_groups for p in g["params"]]
    device_type = device.type  # a new string at every read of the property
    skipped, bad, data_time, clips = [], 0, 0.0, 0
    start = end = time.perf_counter()
    for it, ((frames, labels, _, batch_skipped), empty, batch_bad) in enumerate(batches):
        skipped.extend(batch_skipped)
        bad += batch_bad
        if batch_bad and max_skip_fraction is not None:
            check_skip_ceiling(skipped, len(loader) * loader.batch_size * world, max_skip_fraction,
                               f"epoch {epoch + 1}", count=bad)
        data_time += time.perf_counter() - end
        schedule.step(epoch, it)
        if not empty:  # else every item of the batch was skipped as bad (on some rank)
            frames, labels = to_device((frames, labels), device)
            with torch.autocast(device_type, dtype=dtype, enabled=dtype is not None):
                out = as_output(model(forward_input(frames, normalize, keep_views)))
                loss, parts = compute_loss(out, labels)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if clip_gradient:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, clip_gradient)
            scaler.step(optimizer)
            scaler.update()
            n = labels.shape[0]
            meter.update(n, loss, parts, out["metrics"], out["logits"], labels)
            clips += n
        if print_freq and (it + 1) % print_freq == 0 and (show or log is not None):
            running = meter.read()  # the one read of the device between log lines
            eta = run_eta(time.perf_counter() - start, it, len(loader), epoch, epochs) if epochs else None
            if show:
                post = {"loss": f"{running.get('loss', math.nan):.3f}"}
                if "top1" in running:
                    post["acc"] = f"{running['top1']:.1f}"
                post.update(lr=f"{schedule.lr:.2e}", data=f"{data_time / (it + 1):.2f}s")
                if eta:
                    post["run_eta"] = eta
                bar.set_postfix(post, refresh=False)
            if log is not None:
                log.text(f"epoch {epoch + 1} iter {it + 1}/{len(loader)} loss {running.get('loss', math.nan):.4f} "
                         f"lr {schedule.lr:.3e} data {data_time / (it + 1):.3f}s" + (f" run eta {eta}" if eta else ""),
                         echo=not show)
        end = time.perf_counter()
    bar.close()
    stats = meter.reduce()  # reads the device, so every step has finished when the clock stops
    wall = time.perf_counter() - start
    stats.update(lr=schedule.lr, clips_per_s=clips * du.get_world_size() / max(wall - data_time, 1e-9),
                 data_time=data_time / max(len(loader), 1), data_share=data_time / max(wall, 1e-9))
    return stats, gather_names(skipped)


@torch.no_grad()
def validate(model, loader, normalize, device, num_class, amp=None, keep_views=False, progress=True,
             classifies=True):
    """Validation over every video exactly once (whatever the number of ranks).

    Models that classify (`classifies`): views are averaged per video (raw scores), rows are
    gathered from every rank and deduplicated, then loss (cross-entropy of the averaged scores),
    top-1, top-5, mean class accuracy and the confusion matrix are computed. Models without logits
    (SSL pre-training) get their reported losses and metrics averaged, their input shaped as in
    training (`keep_views`). Returns (stats, skipped names).
    """
    dtype = amp_dtype(amp)
    show = progress and du.is_main()
    if classifies:
        indices, scores, labels, skipped = predict(model, loader, normalize, device, amp_dtype=dtype,
                                                   progress=show, desc="validate")
        indices, scores, labels = gather_predictions(indices, scores, labels)
        metrics = compute_metrics(scores, labels, num_class)
        metrics["loss"] = F.cross_entropy(scores, labels).item()
        return metrics, gather_names(skipped)
    model.eval()
    meter = EpochMeter(num_class, device)
    skipped = []
    for frames, labels, _, batch_skipped in tqdm(loader, desc="validate", disable=not show, dynamic_ncols=True,
                                                 leave=False):
        skipped.extend(batch_skipped)
        if frames is None:
            continue
        frames, labels = to_device((frames, labels), device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            out = as_output(model(forward_input(frames, normalize, keep_views)))
            loss, parts = compute_loss(out, labels)
        meter.update(frames.shape[0], loss, parts, out["metrics"], out["logits"], labels)
    return meter.reduce(), gather_names(skipped)
