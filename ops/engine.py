"""The training loop: one epoch of training, one pass of validation, the learning-rate schedule
and the run log. Nothing here knows which model it trains: it sees uint8 frames, DeviceNormalize,
and the output contract of ops.models.as_output.

Training step: x = normalize(frames); out = as_output(model(x));
loss = CE(out.logits, labels) (if logits) + sum(out.losses). Mixed precision is fp16 with a
GradScaler on CUDA and bf16 autocast on CPU. Every model-reported loss and metric is averaged over
the epoch (over all ranks) and logged as train/<name>.
"""
import datetime
import json
import logging
import math
import os
import time
from collections import defaultdict

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ops import distributed as du
from ops.dataset import check_skip_ceiling
from ops.evaluation import compute_metrics, gather_names, gather_predictions, predict
from ops.logging_setup import setup_logging, teardown_logging
from ops.models import as_output

logger = logging.getLogger(__name__)


def amp_dtype(device, amp):
    """fp16 on CUDA (with a GradScaler), bf16 on CPU (no scaler needed), None when off."""
    if not amp:
        return None
    return torch.float16 if device.type == "cuda" else torch.bfloat16


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


def forward_input(x, keep_views):
    """[B, V, ...] from DeviceNormalize -> the model's input: the view axis is dropped when there is
    one view, and kept (SSL methods, several clips per item) when `keep_views`."""
    if keep_views:
        return x
    if x.shape[1] != 1:
        raise ValueError(f"training takes one view per item, got {x.shape[1]} (a multi-view model "
                         "must be run with keep_views)")
    return x[:, 0]


def compute_loss(out, labels):
    """Total loss and its named parts (plain floats for logging)."""
    parts = {}
    total = 0.0
    if out["logits"] is not None:
        ce = F.cross_entropy(out["logits"].float(), labels)
        parts["loss_ce"] = ce
        total = total + ce
    for name, value in out["losses"].items():
        parts[name] = value
        total = total + value.float()
    if not torch.is_tensor(total):
        raise ValueError("the model returned neither logits nor losses: nothing to train")
    return total, parts


class EpochMeter:
    """Sums over an epoch, reduced over ranks at the end: loss parts, metrics, accuracy counts."""

    def __init__(self, num_class):
        self.num_class = num_class
        self.sums = defaultdict(float)
        self.count = 0
        self.class_hits = torch.zeros(num_class, dtype=torch.float64)
        self.class_total = torch.zeros(num_class, dtype=torch.float64)

    def update(self, n, loss, parts, metrics, logits, labels):
        self.count += n
        self.sums["loss"] += loss * n
        for name, value in {**parts, **metrics}.items():
            self.sums[name] += float(value) * n
        if logits is not None:
            labels = labels.cpu()
            topk = logits.detach().float().topk(min(5, logits.shape[1]), dim=1).indices.cpu()
            hit1 = (topk[:, 0] == labels).double()
            self.sums["top1"] += hit1.sum().item() * 100
            self.sums["top5"] += (topk == labels[:, None]).any(1).double().sum().item() * 100
            self.class_hits.index_add_(0, labels, hit1)
            self.class_total.index_add_(0, labels, torch.ones_like(hit1))

    def running(self, name):
        return self.sums[name] / max(self.count, 1)

    def reduce(self):
        """Epoch averages over every rank (the names are the same on every rank)."""
        names = sorted(self.sums)
        packed = torch.tensor([self.count] + [self.sums[n] for n in names], dtype=torch.float64)
        packed = du.all_reduce_sum(packed)
        hits, total = du.all_reduce_sum(self.class_hits), du.all_reduce_sum(self.class_total)
        count = max(packed[0].item(), 1)
        result = {n: packed[i + 1].item() / count for i, n in enumerate(names)}
        result["samples"] = int(packed[0].item())
        if "top1" in result:
            present = total > 0
            result["mean_class_acc"] = (hits[present] / total[present]).mean().item() * 100
        return result


def run_eta(elapsed, it, iters, epoch, epochs):
    """Time left in the whole run as 'H:MM:SS', at this epoch's pace so far (`elapsed` seconds for
    iterations 0..it): the rest of this epoch and every later one, validation not included."""
    left = elapsed / (it + 1) * ((iters - it - 1) + (epochs - epoch - 1) * iters)
    return str(datetime.timedelta(seconds=round(left)))


def train_one_epoch(model, loader, optimizer, schedule, scaler, normalize, device, epoch, num_class,
                    amp=False, clip_gradient=None, keep_views=False, print_freq=20, progress=True, log=None,
                    agree_on_empty=False, max_skip_fraction=None, epochs=None):
    """One epoch; returns the epoch averages (loss, loss parts, model metrics, top1/top5/mean class
    accuracy when the model gives logits, lr, clips_per_s, data_time, samples trained on) and the
    skipped sample names.

    `max_skip_fraction`: stop (SkipLimitError) as soon as this process has skipped more than that
    fraction of its epoch's samples, rather than after a wasted epoch. `agree_on_empty` (DDP with
    the skip policy): a batch whose every item was bad on one rank is skipped on every rank, since
    DDP's gradient all-reduce needs all ranks in each step. `epochs` (the run's length) adds the
    whole run's ETA to the progress bar and the log lines."""
    model.train()
    meter = EpochMeter(num_class)
    dtype = amp_dtype(device, amp)
    show = progress and du.is_main()
    bar = tqdm(loader, desc=f"epoch {epoch + 1}", disable=not show, dynamic_ncols=True, leave=False)
    skipped, data_time, step_time, clips = [], 0.0, 0.0, 0
    end = start = time.perf_counter()
    for it, (frames, labels, _, batch_skipped) in enumerate(bar):
        skipped.extend(batch_skipped)
        if batch_skipped and max_skip_fraction is not None:
            check_skip_ceiling(skipped, len(loader) * loader.batch_size, max_skip_fraction, f"epoch {epoch + 1}")
        waited = time.perf_counter() - end
        schedule.step(epoch, it)
        if agree_on_empty:
            empty = du.all_reduce_sum(torch.tensor([float(frames is None)], device=device)).item() > 0
        else:
            empty = frames is None
        if empty:  # every item of the batch was skipped as bad (on some rank)
            end = time.perf_counter()
            continue
        frames = frames.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            out = as_output(model(forward_input(normalize(frames), keep_views)))
            loss, parts = compute_loss(out, labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if clip_gradient:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], clip_gradient)
        scaler.step(optimizer)
        scaler.update()
        n = frames.shape[0]
        meter.update(n, loss.item(), {k: v.item() for k, v in parts.items()},
                     {k: float(v) for k, v in out["metrics"].items()}, out["logits"], labels)
        elapsed = time.perf_counter() - end
        data_time, step_time, clips = data_time + waited, step_time + elapsed, clips + n
        end = time.perf_counter()
        eta = run_eta(end - start, it, len(loader), epoch, epochs) if epochs else None
        if show:
            post = {"loss": f"{meter.running('loss'):.3f}"}
            if out["logits"] is not None:
                post["acc"] = f"{meter.running('top1'):.1f}"
            post.update(lr=f"{schedule.lr:.2e}", data=f"{waited:.2f}s",
                        clips_s=f"{n * du.get_world_size() / max(elapsed, 1e-9):.1f}")
            if eta:
                post["run_eta"] = eta
            bar.set_postfix(post, refresh=False)
        if log is not None and print_freq and (it + 1) % print_freq == 0:
            log.text(f"epoch {epoch + 1} iter {it + 1}/{len(loader)} loss {meter.running('loss'):.4f} "
                     f"lr {schedule.lr:.3e} data {data_time / (it + 1):.3f}s" + (f" run eta {eta}" if eta else ""),
                     echo=not show)
    bar.close()
    stats = meter.reduce()
    stats.update(lr=schedule.lr, clips_per_s=clips * du.get_world_size() / max(step_time, 1e-9),
                 data_time=data_time / max(len(loader), 1))
    return stats, gather_names(skipped)


@torch.no_grad()
def validate(model, loader, normalize, device, num_class, amp=False, keep_views=False, progress=True):
    """Validation over every video exactly once (whatever the number of ranks).

    Models with logits: views are averaged per video (raw scores), rows are gathered from every
    rank and deduplicated, then loss (cross-entropy of the averaged scores), top-1, top-5, mean class
    accuracy and the confusion matrix are computed. Models without logits (SSL pre-training) get
    their reported losses and metrics averaged. Returns (stats, skipped names).
    """
    dtype = amp_dtype(device, amp)
    show = progress and du.is_main()
    if not keep_views:
        indices, scores, labels, skipped = predict(model, loader, normalize, device, amp_dtype=dtype,
                                                   progress=show, desc="validate")
        indices, scores, labels = gather_predictions(indices, scores, labels)
        metrics = compute_metrics(scores, labels, num_class)
        metrics["loss"] = F.cross_entropy(scores, labels).item()
        return metrics, gather_names(skipped)
    model.eval()
    meter = EpochMeter(num_class)
    skipped = []
    for frames, labels, _, batch_skipped in tqdm(loader, desc="validate", disable=not show, dynamic_ncols=True,
                                                 leave=False):
        skipped.extend(batch_skipped)
        if frames is None:
            continue
        frames, labels = frames.to(device), labels.to(device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            out = as_output(model(normalize(frames)))
            loss, parts = compute_loss(out, labels)
        meter.update(frames.shape[0], loss.item(), {k: v.item() for k, v in parts.items()},
                     {k: float(v) for k, v in out["metrics"].items()}, out["logits"], labels)
    return meter.reduce(), gather_names(skipped)
