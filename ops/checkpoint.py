"""Checkpoints: written atomically, loaded as data (weights_only), restorable exactly.

A checkpoint holds `model` (the bare model's state dict: no DDP `module.` or torch.compile
`_orig_mod.` prefix), `optimizer`, `scheduler`, `scaler`, `epoch` (epochs completed), `best_metric`,
`rng` (torch, CUDA, numpy and Python generator states) and `config` (the run configuration, so
test_models.py rebuilds the model without parsing file names). Everything is tensors and plain
Python types, so `torch.load(weights_only=True)` reads it.

Writes never lose a checkpoint: each file goes to a temporary file that is fsynced before it is
renamed over the old one, a failed write names the file and the reason (CheckpointError), and
main.py writes `ckpt.best.pth` before the `ckpt.pth` that records it (`best_epoch`), so whatever
`ckpt.pth` says exists on disk.
"""
import errno
import io
import os
import pickle
import random
import shutil

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from ops.policies import regroup_optimizer_state

TEMP_MARK = ".tmp"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or written; the message (one line) names the file."""


def unwrap(model):
    """The bare model inside (Distributed)DataParallel and/or torch.compile wrappers."""
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def plain(value):
    """A config value as plain Python data (tuples -> lists, other objects -> str)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def rng_state():
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(plain, np_state[2:])],
        "python": plain(random.getstate()),
    }


def set_rng_state(state):
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, key, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, key.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def gather_rng_states():
    """Every rank's generator states, in rank order (a collective: call it on all ranks). Each rank
    draws its own dropout and model-side augmentation, so an exact resume needs each rank's own."""
    state = rng_state()
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        states = [None] * dist.get_world_size()
        dist.all_gather_object(states, state)
        return states
    return [state]


def make_checkpoint(model, optimizer=None, scheduler=None, scaler=None, epoch=0, best_metric=None, config=None,
                    rng=None, best_epoch=None):
    """The checkpoint dict; `rng` is the list of every rank's states (gather_rng_states), by
    default this process's alone; `best_epoch` is the epoch whose weights ckpt.best.pth holds."""
    return {
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": int(epoch),
        "best_metric": None if best_metric is None else float(best_metric),
        "best_epoch": None if best_epoch is None else int(best_epoch),
        "rng": rng if rng is not None else [rng_state()],
        "config": plain(config or {}),
    }


def _reason(err):
    return err.strerror or str(err)


def save_checkpoint(state, path):
    """Serialize in memory, write to a temporary file in the same folder, fsync, then rename over
    `path` (atomic): a crash or a full disk mid-write leaves the previous checkpoint intact. Raises
    CheckpointError naming the file and the reason ("No space left on device"; torch.save writing
    to the file itself would only say "unexpected pos", hence the buffer)."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}{TEMP_MARK}{os.getpid()}")
    buffer = io.BytesIO()
    torch.save(state, buffer)
    try:
        os.makedirs(folder, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_folder(folder)
    except OSError as err:
        raise CheckpointError(f"cannot write checkpoint {path}: {_reason(err)}") from err
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _fsync_folder(folder):
    """Make a rename durable (the folder entry), where the platform allows opening a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_temporary(folder):
    """Delete the temporary files that killed checkpoint writes left in `folder`; their names."""
    if not os.path.isdir(folder):
        return []
    removed = []
    for name in sorted(os.listdir(folder)):
        if name.startswith(".") and TEMP_MARK in name and ".pth" in name:
            os.remove(os.path.join(folder, name))
            removed.append(name)
    return removed


def state_bytes(model, optimizer_slots=1):
    """Estimated size of a checkpoint of `model`: its state dict plus `optimizer_slots` tensors
    per parameter (SGD momentum: 1, Adam: 2), plus 1 MB for the rest."""
    model = unwrap(model)
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    params = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return weights + optimizer_slots * params + 2 ** 20


def check_writable(folder, need_bytes=0, what="folder"):
    """Pre-flight: create `folder`, write and remove a probe file in it, and check that the disk
    has `need_bytes` free. Raises CheckpointError naming the folder and the reason."""
    probe = os.path.join(folder, f".write_test{TEMP_MARK}{os.getpid()}.pth")
    try:
        os.makedirs(folder, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        raise CheckpointError(f"cannot write to the {what} {folder}: {_reason(err)}") from err
    finally:
        if os.path.exists(probe):
            os.remove(probe)
    free = shutil.disk_usage(folder).free
    if free < need_bytes:
        raise CheckpointError(f"{what} {folder}: {os.strerror(errno.ENOSPC)}: {free / 2 ** 20:.0f} MB free, "
                              f"a checkpoint needs about {need_bytes / 2 ** 20:.0f} MB")


def load_checkpoint(path, map_location="cpu"):
    """Read a checkpoint as data (weights_only=True: no code is executed). A file that is empty,
    truncated or not a torch.save file raises CheckpointError in one line."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"{path} is not a checkpoint: empty file (0 bytes)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # A torch.save file holding Python objects (a pickled module) names the refused global.
        refused = [line for line in str(err).splitlines() if "Unsupported global" in line]
        if refused:
            detail = refused[0].split("error:", 1)[-1].split(" was not an allowed")[0].strip()
            raise CheckpointError(f"{path} cannot be read as a weights-only checkpoint (tensors and plain data "
                                  f"only): {detail}") from err
        raise CheckpointError(f"{path} is not a checkpoint (truncated, or not a torch.save file): "
                              f"{_first_sentence(err)}") from err
    except Exception as err:  # torch.load raises RuntimeError, KeyError, EOFError... on non-checkpoints
        raise CheckpointError(f"{path} is not a checkpoint (truncated, or not a torch.save file): "
                              f"{type(err).__name__}: {_first_sentence(err)}") from err


def _first_sentence(err):
    lines = str(err).strip().splitlines()
    text = lines[0] if lines else ""
    return text.split(". ")[0] or type(err).__name__


def load_run_checkpoint(path):
    """A checkpoint written by main.py (model, epoch, config), for --resume and --auto_resume."""
    state = load_checkpoint(path)
    missing = [key for key in ("model", "epoch", "config") if not isinstance(state, dict) or key not in state]
    if missing:
        raise CheckpointError(f"{path} is not a training checkpoint of main.py (no {', '.join(missing)}): "
                              "to start from its weights use --tune_from")
    return state


def repair_best(state, resume_path, best_path, write=True):
    """A resumed checkpoint records a best (best_metric, best_epoch) that `best_path` does not hold
    (deleted, or lost by a write that was interrupted before this ordering existed). Rewrite it from
    the resumed checkpoint when that is the best epoch, or from a ckpt.best.pth of that epoch beside
    it; otherwise the best is tracked anew. Returns (best_metric, best_epoch, message)."""
    epoch, best_epoch = state["epoch"], state.get("best_epoch")
    source = None
    if best_epoch is not None and best_epoch == epoch:
        source = state
    elif best_epoch is not None:
        beside = os.path.join(os.path.dirname(os.path.abspath(resume_path)), "ckpt.best.pth")
        if os.path.abspath(beside) != os.path.abspath(best_path) and os.path.isfile(beside):
            other = load_checkpoint(beside)
            source = other if isinstance(other, dict) and other.get("epoch") == best_epoch else None
    if source is None:
        return None, None, (f"{best_path} is missing and no file holds the best weights (epoch {best_epoch}, "
                            f"{state['best_metric']:.3f}): the best is tracked anew from epoch {epoch + 1}")
    if write:
        save_checkpoint(source, best_path)
    return state["best_metric"], best_epoch, f"{best_path} was missing: rewritten from epoch {best_epoch}"


def describe(config):
    """The model a run configuration builds, in words: `tsn/resnet18 avg, 4 classes, 8 segments`."""
    return (f"{config.get('model')}/{config.get('arch')} {config.get('ssl') or config.get('consensus_type')}, "
            f"{config.get('num_class')} classes, {config.get('num_segments')} segments")


def resume(path_or_state, model, optimizer=None, scheduler=None, scaler=None):
    """Restore a run exactly (model, optimizer, scheduler, scaler, this rank's RNG) from a path or an
    already loaded checkpoint; returns the checkpoint (its `epoch` is the number of epochs
    completed, its `best_metric` the best so far). A state saved empty (a GradScaler that was
    disabled) leaves the object as it is."""
    state = load_checkpoint(path_or_state) if isinstance(path_or_state, str) else path_or_state
    unwrap(model).load_state_dict(state["model"])
    if optimizer is not None and state.get("optimizer"):
        optimizer.load_state_dict(regroup_optimizer_state(state["optimizer"], optimizer))
    for obj, key in ((scheduler, "scheduler"), (scaler, "scaler")):
        if obj is not None and state.get(key):
            obj.load_state_dict(state[key])
    if state.get("rng"):
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        set_rng_state(state["rng"][rank % len(state["rng"])])
    return state
