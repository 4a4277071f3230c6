"""2D per-frame backbones. Importing this package registers every backbone in BACKBONES.

A backbone maps frames [N, 3, H, W] to feature maps [N, C, h, w] (no pooling) and carries
`feature_dim` (C) and `input_spec` (a dict of the normalisation it expects: mean, std, bgr,
value_scale). Weights are never downloaded: `load_pretrained` reads a local file.
"""
import logging
import os

import torch

logger = logging.getLogger(__name__)


def load_pretrained(net, path):
    """Load a torchvision-format state dict (e.g. resnet50-<hash>.pth) from a local file into `net`.

    Classifier weights that a feature extractor has no use for (`fc.*`, `classifier.*`) are ignored;
    any other missing or unexpected key is an error, so a wrong file cannot be half-loaded silently.
    """
    if not path:
        raise ValueError("no pretrained weights file given: pass --pretrained_weights PATH (a local "
                         "torchvision-format state dict); nothing is downloaded")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"pretrained weights file not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    state = {k: v for k, v in state.items() if not k.startswith(("fc.", "classifier."))}
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path} does not fit {type(net).__name__}: missing {sorted(missing)[:5]}"
                         f"{'...' if len(missing) > 5 else ''}, unexpected {sorted(unexpected)[:5]}"
                         f"{'...' if len(unexpected) > 5 else ''}")
    logger.info(f"=> loaded pretrained backbone weights from {path} ({len(state)} tensors)")
    return net


# --- registered backbones: one import per module (add one line for a new backbone file) ---
from archs import resnet  # noqa: E402,F401
from archs import bninception  # noqa: E402,F401
from archs import mobilenet  # noqa: E402,F401
from archs import squeezenet  # noqa: E402,F401
from archs import tinynet  # noqa: E402,F401
