"""VTDL: self-supervised temporal discriminative learning (Wang, Lin, Ma, Yuen; arXiv 2008.02129).

MoCo-style instance discrimination on clips, with two video-specific additions:
- a temporal-discriminative negative: a clip of the same video at a different time, encoded by the
  query encoder, as one extra negative logit, so the features must tell moments of one video apart;
- temporal consistent augmentation (TCA): every frame is blended with one random frame of its clip,
  x_t <- (1 - lambda) x_t + lambda x_r, which keeps the direction of every temporal difference.

Non-overlap of the temporal negative (the reference only asks for a 2-frame offset): the frame
ranges [first, last] of the anchor clip and of the negative clip are disjoint. Both clips use the
same stride, reduced just enough for two disjoint clips to fit; a video shorter than 2 * clip_len
frames is cut in two halves, one clip per half, each repeating the last frame of its half. A video
of a single frame has no temporal negative and is an error.

Under DDP the keys of every rank are gathered before they enter the queue (the queue is the same
on every rank) and the key encoder uses MoCo's shuffling BN. Without it, key i and query i are
normalised with the same batch's statistics, and the positive can be told from the queue's keys
(other batches) through them instead of through the content. One process gets the same guard from
`bn_splits` = G: queries and keys are encoded in G chunks with statistics of their own, the keys
after a random permutation, as on G processes (with G = 1 there is a single group; training warns).
"""
import copy
import logging
import warnings

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from ops.registry import MODELS
from ops.transforms import GroupRandomResizedCrop

logger = logging.getLogger(__name__)


class TemporalPairSampler:
    """num_frames, rng -> int64 [2, T]: row 0 the anchor clip, row 1 the temporal negative, with
    disjoint frame ranges (see the module docstring for short videos). The anchor comes first in
    time or second with equal chance."""

    def __init__(self, clip_len, stride):
        if clip_len < 1 or stride < 1:
            raise ValueError(f"clip_len and stride must be >= 1 (got {clip_len}, {stride})")
        self.clip_len, self.stride = clip_len, stride

    def __call__(self, num_frames, rng):
        t = self.clip_len
        if num_frames < 2:
            raise ValueError(f"a temporal negative needs a video of >= 2 frames (got {num_frames})")
        stride = self.stride if t == 1 else min(self.stride, (num_frames // 2 - 1) // (t - 1))
        if stride >= 1:
            span = (t - 1) * stride + 1
            lo, hi = np.sort(rng.integers(0, num_frames - 2 * span + 1, size=2))
            first = lo + stride * np.arange(t)
            second = hi + span + stride * np.arange(t)
        else:
            half = num_frames // 2
            first = np.minimum(np.arange(t), half - 1)
            second = np.minimum(half + np.arange(t), num_frames - 1)
        pair = [first, second] if rng.random() < 0.5 else [second, first]
        return np.stack(pair).astype(np.int64)

    def __repr__(self):
        return f"TemporalPairSampler(clip_len={self.clip_len}, stride={self.stride}, disjoint frame ranges)"


class BasicClipAugment:
    """VTDL's basic augmentation, one random draw per clip applied to all its frames: random
    resized crop (GroupRandomResizedCrop's window: area `scale`, aspect 3/4-4/3), horizontal flip, rotation +-`degrees`, colour
    jitter (brightness/contrast/saturation 0.4, hue 0.1, with probability 0.8). uint8 in and out.

    frames [C, T, H, W, 3] uint8 (C = 2: anchor, negative) -> uint8 tensor [3, T, size, size, 3]:
    two independent augmentations of the anchor clip (query, key), then the negative clip."""

    def __init__(self, size, scale=(0.2, 1.0), degrees=10.0, flip=True, jitter=0.4, hue=0.1, jitter_p=0.8):
        self.size, self.scale, self.degrees, self.flip = size, scale, degrees, flip
        self.jitter, self.hue, self.jitter_p = jitter, hue, jitter_p
        self.crop = GroupRandomResizedCrop(size, area=scale)

    def augment(self, clip, rng):
        """clip uint8 tensor [T, 3, H, W] -> [T, 3, size, size]."""
        top, left, ch, cw = self.crop.window(*clip.shape[-2:], rng)
        clip = TF.resized_crop(clip, top, left, ch, cw, [self.size, self.size], antialias=True)
        if self.flip and rng.random() < 0.5:
            clip = TF.horizontal_flip(clip)
        clip = TF.rotate(clip, float(rng.uniform(-self.degrees, self.degrees)),
                         interpolation=InterpolationMode.BILINEAR)
        if rng.random() < self.jitter_p:
            j = self.jitter
            clip = TF.adjust_brightness(clip, float(rng.uniform(1 - j, 1 + j)))
            clip = TF.adjust_contrast(clip, float(rng.uniform(1 - j, 1 + j)))
            clip = TF.adjust_saturation(clip, float(rng.uniform(1 - j, 1 + j)))
            clip = TF.adjust_hue(clip, float(rng.uniform(-self.hue, self.hue)))
        return clip

    def __call__(self, frames, label, rng):
        clips = torch.as_tensor(np.ascontiguousarray(frames)).permute(0, 1, 4, 2, 3)
        if clips.shape[0] != 2:
            raise ValueError(f"VTDL expects 2 clips per video (anchor, negative), got {clips.shape[0]}")
        views = [self.augment(clips[0], rng), self.augment(clips[0], rng), self.augment(clips[1], rng)]
        return torch.stack(views).permute(0, 1, 3, 4, 2).contiguous(), label

    def __repr__(self):
        return (f"BasicClipAugment(size={self.size}, scale={self.scale}, rotation=+-{self.degrees}, "
                f"flip={self.flip}, jitter={self.jitter}, hue={self.hue}, p={self.jitter_p}) -> query, key, negative")


def temporal_consistent_augmentation(clips, lam_max, generator=None):
    """TCA on clips [B, C, T, H, W]: x_t <- (1 - lam) x_t + lam x_r, with one random frame r and
    lam ~ U(0, lam_max) per clip. x_t - x_s becomes (1 - lam)(x_t - x_s): direction kept. Commutes
    with per-channel normalisation, so it can run on normalised input."""
    b, _, t = clips.shape[:3]
    device = generator.device if generator is not None else clips.device
    lam = torch.rand(b, generator=generator, device=device) * lam_max
    r = torch.randint(t, (b,), generator=generator, device=device)
    if generator is not None:  # a generator of another device (tests draw on the CPU)
        lam, r = lam.to(clips.device), r.to(clips.device)
    lam = lam.to(clips.dtype)[:, None, None, None, None]
    ref = clips[torch.arange(b, device=clips.device), :, r][:, :, None]
    return (1 - lam) * clips + lam * ref


def concat_all_gather(x):
    """Concatenate x from every rank in rank order (no gradient); x itself when not distributed."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


class VTDL(nn.Module):
    """Query encoder f_q (a clip model's `forward_features`) + 128-d head, EMA key encoder f_k,
    FIFO queue of K keys. Input [B, 3, C, T, H, W]: views (query, key, temporal negative).
    Returns only `losses` and `metrics`; the queue and f_k change only in training mode."""

    takes_views = True            # the three views arrive as [B, 3, ...]
    needs_equal_batches = True    # under DDP the key queue gathers the same batch size from every rank

    def __init__(self, encoder, feature_dim, clip_len=16, frame_stride=4, crop_size=224, flip=True, dim=128,
                 queue_size=5000, momentum=0.999, temperature=0.07, tca_max=0.1, temporal_negative=True,
                 bn_splits=1):
        super().__init__()
        if bn_splits < 1:
            raise ValueError(f"bn_splits must be >= 1, got {bn_splits}")
        self.bn_splits = bn_splits
        self.clip_len, self.frame_stride, self.crop_size, self.flip = clip_len, frame_stride, crop_size, flip
        self.momentum, self.temperature = momentum, temperature
        self.tca_max, self.temporal_negative = tca_max, temporal_negative
        self.encoder_q = encoder
        self.head_q = nn.Linear(feature_dim, dim)
        self.encoder_k = copy.deepcopy(encoder).requires_grad_(False)
        self.head_k = copy.deepcopy(self.head_q).requires_grad_(False)
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    @property
    def input_spec(self):
        return self.encoder_q.input_spec

    def _pairs(self):
        return zip(list(self.encoder_q.parameters()) + list(self.head_q.parameters()),
                   list(self.encoder_k.parameters()) + list(self.head_k.parameters()))

    @torch.no_grad()
    def momentum_update(self):
        """theta_k <- m theta_k + (1 - m) theta_q."""
        for q, k in self._pairs():
            k.mul_(self.momentum).add_(q.detach(), alpha=1 - self.momentum)

    @torch.no_grad()
    def enqueue(self, keys):
        """Write keys at the pointer, wrapping around; the oldest keys are overwritten first."""
        size = self.queue.shape[0]
        keys = keys[-size:]
        idx = (self.queue_ptr + torch.arange(keys.shape[0], device=keys.device)) % size
        self.queue[idx] = keys.to(self.queue.dtype)
        self.queue_ptr.copy_((self.queue_ptr + keys.shape[0]) % size)

    @staticmethod
    def _pool(feats):
        return feats.flatten(2).mean(2) if feats.dim() > 2 else feats

    def forward_features(self, x):
        """[B, 3, T, H, W] -> pooled query-encoder features [B, F] (for linear evaluation)."""
        return self._pool(self.encoder_q.forward_features(x))

    def embed_q(self, x):
        return F.normalize(self.head_q(self.forward_features(x)), dim=1)

    def split(self, embed, x):
        """embed(x) computed on `bn_splits` chunks of the batch, each with BatchNorm statistics of
        its own, as on that many processes."""
        if not self.training or self.bn_splits == 1:
            return embed(x)
        return torch.cat([embed(chunk) for chunk in x.chunk(self.bn_splits)])

    @torch.no_grad()
    def embed_k(self, x):
        return F.normalize(self.head_k(self._pool(self.encoder_k.forward_features(x))), dim=1)

    @torch.no_grad()
    def shuffled_keys(self, x):
        """Keys of x [B, 3, T, H, W], by MoCo's shuffling BN: the key encoder sees a random
        permutation of the batch split into BatchNorm groups (the ranks under DDP, times
        `bn_splits` chunks on each), so the statistics behind key i are not those of query i's
        group (otherwise the pair can be matched through them); the keys come back in the
        original order. One process with bn_splits = 1 has a single group and cannot shuffle.
        Eval mode (running statistics; the ranks may hold different numbers of validation
        batches, so no collective may run): the keys of x as they are."""
        if not self.training:
            return self.embed_k(x)
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            if self.bn_splits == 1:   # one group: a permutation would change nothing
                warnings.warn("VTDL trained on one process with bn_splits=1: keys share BatchNorm statistics "
                              "with their queries, a shortcut MoCo-style training can exploit; --bn_splits 4 "
                              "gives one process the shuffling BN of 4")
                return self.embed_k(x)
            perm = torch.randperm(x.shape[0], device=x.device)
            return self.split(self.embed_k, x[perm])[torch.argsort(perm)]
        x_all = concat_all_gather(x)
        perm = torch.randperm(x_all.shape[0], device=x.device)
        dist.broadcast(perm, 0)
        b, rank = x.shape[0], dist.get_rank()
        keys = concat_all_gather(self.split(self.embed_k, x_all[perm[rank * b:(rank + 1) * b]]))
        return keys[torch.argsort(perm)][rank * b:(rank + 1) * b]

    def forward(self, x):
        if x.dim() != 6 or x.shape[1] != 3:
            raise ValueError(f"VTDL expects [B, 3 views, 3, T, H, W] (query, key, negative), got {list(x.shape)}")
        query, key, negative = x.unbind(1)
        if self.training and self.tca_max > 0:
            query, key, negative = (temporal_consistent_augmentation(v, self.tca_max) for v in (query, key, negative))
        q = self.split(self.embed_q, query)
        if self.training:
            self.momentum_update()
        k = self.shuffled_keys(key)
        logits = [(q * k).sum(1, keepdim=True), q @ self.queue.clone().detach().t()]
        if self.temporal_negative:
            n = self.split(self.embed_q, negative)
            logits.append((q * n).sum(1, keepdim=True))
        logits = torch.cat(logits, 1) / self.temperature
        labels = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        loss = F.cross_entropy(logits.float(), labels)
        with torch.no_grad():
            rank = (logits > logits[:, :1]).sum(1)
            metrics = {"pretext_top1": (rank < 1).float().mean() * 100, "pretext_top5": (rank < 5).float().mean() * 100}
            if self.temporal_negative:
                metrics["temporal_acc"] = (logits[:, 0] > logits[:, -1]).float().mean() * 100
        if self.training:
            self.enqueue(concat_all_gather(k))
        return {"losses": {"infonce": loss}, "metrics": metrics}

    def make_sampler(self, mode):
        return TemporalPairSampler(self.clip_len, self.frame_stride)

    def make_transform(self, mode):
        return BasicClipAugment(self.crop_size, flip=self.flip)


def strip_unused(encoder, example):
    """Remove the parameters `forward_features` never reaches (the clip model's classifier): they
    would get no gradient (an error under DDP) and must not be carried into fine-tuning as if they
    had been pre-trained. Returns (feature size, names removed)."""
    was_training = encoder.training
    encoder.eval()
    feats = VTDL._pool(encoder.forward_features(example))
    feats.sum().backward()
    encoder.train(was_training)
    removed = []
    for module_name, module in encoder.named_modules():
        for name, param in list(module.named_parameters(recurse=False)):
            if param.grad is None:
                delattr(module, name)
                removed.append(f"{module_name}.{name}" if module_name else name)
            else:
                param.grad = None
    return feats.shape[1], removed


QUEUE_SIZES = {"ucf101": 5000, "hmdb51": 3569, "kinetics": 12500}


@MODELS.register("vtdl", role="ssl", defaults=dict(frame_stride=4, clip_sampling="consecutive"))
def vtdl(cfg):
    """Pre-training (`--ssl vtdl --arch <clip model>`); fine-tune with `--arch <clip model>
    --tune_from <vtdl checkpoint>`: encoder_q's weights land in the plain clip model."""
    if MODELS.role(cfg.get("arch")) != "whole":
        raise ValueError(f"VTDL needs a clip model as --arch (one of the registered models with "
                         f"forward_features), got {cfg['arch']!r}")
    encoder = MODELS.create(cfg["arch"], cfg)
    if not hasattr(encoder, "forward_features") or encoder.input_spec.layout != "clip":
        raise ValueError(f"--arch {cfg['arch']} is not a clip model with forward_features")
    clip_len, crop = cfg["clip_len"], encoder.input_spec.crop_size
    feature_dim, removed = strip_unused(encoder, torch.zeros(1, 3, clip_len, crop, crop))
    if removed:
        logger.info(f"=> VTDL: {cfg['arch']} parameters outside forward_features left out: {', '.join(removed)}")
    queue_size = cfg["moco_k"] or QUEUE_SIZES.get(cfg["dataset"], 5000)
    return VTDL(encoder, feature_dim, clip_len=clip_len, frame_stride=cfg["frame_stride"],
                crop_size=crop, flip=not cfg["no_flip"], dim=cfg["moco_dim"], queue_size=queue_size,
                momentum=cfg["moco_m"], temperature=cfg["moco_t"], tca_max=cfg["tca_max"],
                temporal_negative=not cfg["no_temporal_negative"], bn_splits=cfg["bn_splits"])
