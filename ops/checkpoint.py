"""Checkpoints: written atomically, loaded as data (weights_only), restorable exactly.

A checkpoint holds `model` (the bare model's state dict: no DDP `module.` or torch.compile
`_orig_mod.` prefix), `optimizer`, `scheduler`, `scaler`, `epoch` (epochs completed), `best_metric`,
`rng` (torch, CUDA, numpy and Python generator states) and `config` (the run configuration, so
test_models.py rebuilds the model without parsing file names). Everything is tensors and plain
Python types, so `torch.load(weights_only=True)` reads it.
"""
import logging
import os
import random
from collections import Counter

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

logger = logging.getLogger(__name__)

WRAPPER_PREFIXES = ("module.", "_orig_mod.")


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
                    rng=None):
    """The checkpoint dict; `rng` is the list of every rank's states (gather_rng_states), by
    default this process's alone."""
    return {
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": int(epoch),
        "best_metric": None if best_metric is None else float(best_metric),
        "rng": rng if rng is not None else [rng_state()],
        "config": plain(config or {}),
    }


def save_checkpoint(state, path):
    """torch.save to a temporary file in the same folder, then rename over `path` (atomic), so a
    crash mid-write leaves the previous checkpoint intact."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load_checkpoint(path, map_location="cpu"):
    """Read a checkpoint as data (weights_only=True: no code is executed)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # a torch.save file holding objects, or not a checkpoint at all
        raise ValueError(f"{path} cannot be read as a weights-only checkpoint: {err}") from err


def resume(path_or_state, model, optimizer=None, scheduler=None, scaler=None):
    """Restore a run exactly (model, optimizer, scheduler, scaler, this rank's RNG) from a path or an
    already loaded checkpoint; returns the checkpoint (its `epoch` is the number of epochs
    completed, its `best_metric` the best so far). A state saved empty (a GradScaler that was
    disabled) leaves the object as it is."""
    state = load_checkpoint(path_or_state) if isinstance(path_or_state, str) else path_or_state
    unwrap(model).load_state_dict(state["model"])
    for obj, key in ((optimizer, "optimizer"), (scheduler, "scheduler"), (scaler, "scaler")):
        if obj is not None and state.get(key):
            obj.load_state_dict(state[key])
    if state.get("rng"):
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        set_rng_state(state["rng"][rank % len(state["rng"])])
    return state


def _strip(key):
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def _align_keys(keys, own_keys):
    """{checkpoint key: model key}. Keys that differ by leading module names (`conv1.weight` vs
    `base_model.conv1.weight`, `new_fc.*` vs `consensus.new_fc.*`) are matched through prefix
    rewrites, the rewrites shared by the most keys tried first, so a short key such as
    `conv1.weight` goes where the rest of its network went, not to any layer ending in that name."""
    votes = Counter()
    for key in keys:
        if key in own_keys:
            continue
        for own in own_keys:
            if own.endswith("." + key):
                votes["", own[:-len(key)]] += 1
            elif key.endswith("." + own):
                votes[key[:-len(own)], ""] += 1
    rewrites = [("", "")] + [rewrite for rewrite, _ in votes.most_common()]
    matched, taken = {}, set()
    for key in keys:
        for drop, add in rewrites:
            target = add + key[len(drop):] if key.startswith(drop) else None
            if target in own_keys and target not in taken:
                matched[key] = target
                taken.add(target)
                break
    return matched


def _resampled_on_load(model, key):
    owner, _, name = key.rpartition(".")
    return name in getattr(model.get_submodule(owner), "resampled_on_load", ())


def load_for_finetune(model, path):
    """Load weights only (for --tune_from): wrapper prefixes stripped, keys aligned by their trailing
    module names, tensors of another shape (a classifier for another class count) dropped.
    Tensors a module lists in `resampled_on_load` (STTNet's positional tables) are loaded at any
    shape: the module's load hook resizes them. Prints and returns {loaded, missing, unexpected,
    mismatched, resampled} (lists of key names)."""
    state = load_checkpoint(path)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    elif isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    model = unwrap(model)
    own = model.state_dict()
    own_keys = set(own)
    stripped = {key: _strip(key) for key in state}
    matched = _align_keys(list(stripped.values()), own_keys)
    selected, unexpected, mismatched, resampled = {}, [], [], []
    for key, value in state.items():
        target = matched.get(stripped[key])
        if target is None:
            unexpected.append(key)
        elif tuple(value.shape) == tuple(own[target].shape):
            selected[target] = value
        elif _resampled_on_load(model, target):
            selected[target] = value
            resampled.append(f"{target} {tuple(value.shape)} -> {tuple(own[target].shape)}")
        else:
            mismatched.append(f"{target} {tuple(value.shape)} -> {tuple(own[target].shape)}")
    model.load_state_dict(selected, strict=False)
    report = {"loaded": sorted(selected), "missing": sorted(own_keys - set(selected)),
              "unexpected": sorted(unexpected), "mismatched": sorted(mismatched), "resampled": sorted(resampled)}
    logger.info(f"=> fine-tuning from {path}: loaded {len(report['loaded'])}/{len(own_keys)} tensors")
    for name in ("resampled", "mismatched", "missing", "unexpected"):
        if report[name]:
            shown = report[name][:10]
            more = f" ... (+{len(report[name]) - 10})" if len(report[name]) > 10 else ""
            logger.info(f"   {name} ({len(report[name])}): {', '.join(shown)}{more}")
    return report
