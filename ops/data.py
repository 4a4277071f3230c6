"""Datasets and DataLoaders for a run, from the run configuration and the model's input spec.

The model decides what it is fed: `model.input_spec` gives the layout (frames for 2D models,
clip for 3D ones) and the crop/scale sizes; a model may replace the default sampler or transform
with `make_sampler(mode)` / `make_transform(mode)` (the SSL methods need several clips per item).
Training shards with EpochSampler (a DistributedSampler, reshuffled per epoch by set_epoch, whose
items carry the epoch to the workers); validation and test use ShardSampler, which splits the
videos between ranks without padding, so every video is scored exactly once.
"""
import functools
import random

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from ops.dataset import Skipped, SkipLimitError, VideoDataset, VideoList, collate_skip, make_reader
from ops.sampling import ChunkSampler, ClipSampler, DenseSampler, TSNSampler
from ops.transforms import build_transform


class ShardSampler(Sampler):
    """Rank r of W takes videos r, r + W, r + 2W, ...: no padding and no duplicates."""

    def __init__(self, length, rank=0, world_size=1):
        self.length, self.rank, self.world_size = length, rank, world_size

    def __iter__(self):
        return iter(range(self.rank, self.length, self.world_size))

    def __len__(self):
        return len(range(self.rank, self.length, self.world_size))


class EpochSampler(DistributedSampler):
    """DistributedSampler whose items are (epoch, index): the epoch set by set_epoch reaches the
    dataset in workers that live across epochs (persistent workers never see the main process's
    dataset.set_epoch), so item i of epoch e is the same whatever the worker setup."""

    def __iter__(self):
        return ((self.epoch, i) for i in super().__iter__())


def default_sampler(cfg, spec, mode, num_clips=1, twice_sample=False):
    """TSN sparse sampling (or I3D-style dense with --dense_sample) for 2D models; for 3D clip
    models --clip_sampling: consecutive frames at --frame_stride, or one frame per chunk of the
    whole video (the STTS project's models)."""
    if spec.layout == "clip":
        if cfg["clip_sampling"] == "chunks":
            return ChunkSampler(cfg["clip_len"], mode=mode, num_clips=num_clips)
        return ClipSampler(cfg["clip_len"], cfg["frame_stride"], mode=mode, num_clips=num_clips)
    if cfg["dense_sample"]:
        return DenseSampler(cfg["num_segments"], cfg["new_length"], mode=mode, num_clips=num_clips)
    return TSNSampler(cfg["num_segments"], cfg["new_length"], mode=mode, num_clips=num_clips,
                      twice_sample=twice_sample)


def train_aug_of(cfg, spec, dataset_cfg):
    """The training crop: --train_aug if given, else the dataset's own (synthetic), else the
    model's published recipe (TSN's multi-scale crop for 2D models, scale + random crop for clips)."""
    return cfg["train_aug"] or dataset_cfg.train_aug or ("multiscale" if spec.layout == "frames" else "scale_crop")


def default_transform(cfg, spec, dataset_cfg, mode, test_crops=1, full_res=False):
    flip = "never" if cfg["no_flip"] else dataset_cfg.flip
    train_aug = train_aug_of(cfg, spec, dataset_cfg) if mode == "train" else None
    return build_transform(mode, spec.crop_size, spec.scale_size, flip=flip, flip_map=dataset_cfg.flip_map,
                           test_crops=test_crops, full_res=full_res, train_aug=train_aug)


def build_dataset(cfg, model, dataset_cfg, mode, list_file=None, num_clips=1, test_crops=1, twice_sample=False,
                  full_res=False):
    """The VideoDataset of `mode` (train / val / test) for `model`; list_file defaults to the
    dataset's list of that mode."""
    list_file = list_file or getattr(dataset_cfg, f"{mode}_list")
    video_list = VideoList(list_file, dataset_cfg.root, dataset_cfg.list_order, dataset_cfg.num_class)
    spec = model.input_spec
    sampler = model.make_sampler(mode) if hasattr(model, "make_sampler") else \
        default_sampler(cfg, spec, mode, num_clips, twice_sample)
    transform = model.make_transform(mode) if hasattr(model, "make_transform") else \
        default_transform(cfg, spec, dataset_cfg, mode, test_crops, full_res)
    min_side = None if cfg["no_scaled_decode"] else getattr(transform, "min_side", None)
    reader = make_reader(dataset_cfg.data_format, dataset_cfg.image_tmpl, cfg["decoder"], cfg["jpeg_decoder"],
                         min_side, cfg["decode_device"], roi=not cfg["no_roi_decode"])
    return VideoDataset(video_list, reader, sampler, transform, seed=cfg["seed"], on_bad_sample=cfg["on_bad_sample"])


def seed_worker(worker_id):
    """Seed the global numpy/random generators of a worker from torch's per-worker seed (items
    draw from their own (seed, epoch, index) generator; this covers anything else)."""
    seed = torch.initial_seed() % 2 ** 32
    np.random.seed(seed)
    random.seed(seed)


def build_loader(dataset, mode, batch_size, workers, rank=0, world_size=1, seed=0, pin_memory=False,
                 prefetch_factor=None, normalize=None):
    """Training: EpochSampler (shuffled, reseeded by set_epoch, incomplete last batch dropped);
    val/test: ShardSampler, every video once, nothing dropped. Workers persist across epochs and
    validations (no re-fork each time); `prefetch_factor` batches per worker are loaded ahead
    (None: PyTorch's default, 2). The loader draws its worker seeds from a generator of its own:
    the global one (dropout, model-side draws) then does not depend on when iterators are
    created, which differs between a straight run and a resumed one once workers persist.
    `normalize`: a DeviceNormalize the workers apply to each batch (a CPU run, see
    ops.transforms.place_normalize); without it the batches are uint8."""
    if mode == "train":
        sampler = EpochSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
        if len(sampler) < batch_size:
            raise ValueError(f"the training list has {len(dataset)} videos, {len(sampler)} per process: fewer "
                             f"than one batch of {batch_size}; lower --batch-size")
    else:
        sampler = ShardSampler(len(dataset), rank, world_size)
    if getattr(dataset.reader, "device", "cpu") != "cpu":   # frames decoded on the GPU, in this process
        if workers:
            raise ValueError(f"decoding on {dataset.reader.device} happens in the main process: use 0 workers")
        pin_memory = False
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      collate_fn=functools.partial(collate_skip, normalize=normalize), pin_memory=pin_memory,
                      drop_last=mode == "train",
                      worker_init_fn=seed_worker, generator=torch.Generator().manual_seed(seed),
                      persistent_workers=workers > 0,
                      prefetch_factor=prefetch_factor if workers > 0 else None)


def preflight(dataset, max_skip_fraction=1.0):
    """Read items of `dataset` through its own pipeline (reader, sampler, transform) before any
    epoch, so a wrong root, format or decoder fails in seconds. Under the error policy the first
    item must load (BadSampleError names it); under the skip policy the first item that loads is
    sought among as many as the skip ceiling allows. Returns the index of the item read."""
    budget = int(max_skip_fraction * len(dataset)) if dataset.on_bad_sample == "skip" else 0
    bad = []
    for index in range(min(len(dataset), budget + 1)):
        item = dataset[index]
        if not isinstance(item, Skipped):
            return index
        bad.append(f"{item.name}: {item.reason}")
    raise SkipLimitError(f"pre-flight: the first {len(bad)} sample(s) of {dataset.video_list.list_file} are all "
                         f"bad, more than --max_skip_fraction {max_skip_fraction:g} of its {len(dataset)} allows "
                         f"(wrong --root_path, --data_format or --decoder?); first: {bad[0]}")
