"""What every model shares, so that model files need nothing but this and the registry: the
input contract (InputSpec, the normalisation statistics, the clip models' spec from the run
configuration), the output contract (`as_output`), the new classifier's initialisation, the
loading of a local pretrained backbone file, and the attributes a model may declare (CONTRACT).

A leaf: it imports only leaves (docs/architecture.md, "Layers").
"""
from dataclasses import dataclass

import torch
import torch.nn as nn

from ops.checkpoint_formats import load_weights

# ImageNet statistics in RGB [0, 1], the normalisation of torchvision's 2D backbones.
IMAGENET_SPEC = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), bgr=False, value_scale=1.0)
# Kinetics-400 statistics in RGB [0, 1], the usual normalisation of 3D CNNs trained on video.
KINETICS_SPEC = dict(mean=(0.43216, 0.394666, 0.37645), std=(0.22803, 0.22145, 0.216989),
                     bgr=False, value_scale=1.0)

# What a model may declare as a class attribute, and what holds when it declares nothing. The
# methods a model may define are listed in docs/architecture.md (param_policy,
# linear_probe_parameters, make_sampler, make_transform, forward_features).
CONTRACT = {
    "takes_views": False,          # training and validation feed [B, V, ...]: several clips per item
    "needs_equal_batches": False,  # under DDP every rank trains on full batches (no skip policy)
    "test_softmax": False,         # testing averages softmax probabilities over the views
}


def declared(model, name):
    """What `model` declares for the CONTRACT attribute `name`."""
    return getattr(model, name, CONTRACT[name])


@dataclass
class InputSpec:
    """What a model expects from the data pipeline (read by DeviceNormalize and the transforms).

    layout: `frames` -> [B, T, 3, H, W] (2D models), `clip` -> [B, 3, T, H, W] (3D models).
    Pixel values are scaled to [0, value_scale], channels put in BGR order if `bgr`, then
    normalised with mean/std (in the same units as value_scale).
    """
    layout: str = "frames"
    mean: tuple = (0.485, 0.456, 0.406)
    std: tuple = (0.229, 0.224, 0.225)
    bgr: bool = False
    value_scale: float = 1.0
    crop_size: int = 224
    scale_size: int = 256


def default_scale_size(crop_size):
    """TSN's habit: resize the short side to 256 for a 224 crop, and in that ratio otherwise."""
    return crop_size * 256 // 224


def as_output(out):
    """A model's return value as the dict {logits (tensor or None), losses {}, metrics {}}."""
    if torch.is_tensor(out):
        return {"logits": out, "losses": {}, "metrics": {}}
    if not isinstance(out, dict) or set(out) - {"logits", "losses", "metrics"}:
        keys = sorted(out) if isinstance(out, dict) else type(out).__name__
        raise TypeError(f"a model must return a logits tensor or a dict with logits/losses/metrics, got {keys}")
    return {"logits": out.get("logits"), "losses": dict(out.get("losses") or {}),
            "metrics": dict(out.get("metrics") or {})}


def clip_input_spec(crop_size, scale_size, **norm):
    """The InputSpec of a 3D clip model ([B, 3, T, H, W]); Kinetics statistics unless `norm` says."""
    return InputSpec(layout="clip", crop_size=crop_size, scale_size=scale_size, **(norm or KINETICS_SPEC))


def clip_spec_from_cfg(cfg, crop_size=112, scale_size=128, **norm):
    """A builder's InputSpec from the resolved --crop_size (the model's own default, declared at its
    registration) and --scale_size; without --scale_size the short side keeps the model's
    crop_size : scale_size ratio (128 for 112, as in the STTS project's 128-high frames)."""
    crop = cfg["crop_size"]
    return clip_input_spec(crop, cfg["scale_size"] or scale_size * crop // crop_size, **norm)


# The STTS project's published settings for its models: 112 px crops, 32 frames spread over the whole
# video (one per chunk, ops.sampling.ChunkSampler), no dropout (C3D keeps its fc dropout 0.5).
STTS_PROJECT = dict(dropout=0.0, crop_size=112, frame_stride=1, clip_sampling="chunks")


def make_new_fc(in_dim, out_dim):
    """The new classifier/projection of every block: Linear with weights N(0, 0.001), bias 0 (TSN)."""
    fc = nn.Linear(in_dim, out_dim)
    nn.init.normal_(fc.weight, 0, 0.001)
    nn.init.zeros_(fc.bias)
    return fc


def load_pretrained(net, path):
    """Load backbone weights from a local file (torchvision's layout, or any other that
    ops/checkpoint_formats reads) into `net`, strictly: only a classifier may be left out."""
    if not path:
        raise ValueError("no pretrained weights file given: pass --pretrained_weights PATH (a local "
                         "torchvision-format state dict); nothing is downloaded")
    load_weights(net, path)
    return net
