"""2D per-frame backbones. Importing this package registers every backbone in BACKBONES.

A backbone maps frames [N, 3, H, W] to feature maps [N, C, h, w] (no pooling) and carries
`feature_dim` (C) and `input_spec` (a dict of the normalisation it expects: mean, std, bgr,
value_scale). Weights are never downloaded: `load_pretrained` reads a local file.
"""
from ops.checkpoint_formats import load_weights


def load_pretrained(net, path):
    """Load backbone weights from a local file (torchvision's layout, or any other that
    ops/checkpoint_formats reads) into `net`, strictly: only a classifier may be left out."""
    if not path:
        raise ValueError("no pretrained weights file given: pass --pretrained_weights PATH (a local "
                         "torchvision-format state dict); nothing is downloaded")
    load_weights(net, path)
    return net


# --- registered backbones: one import per module (add one line for a new backbone file) ---
from archs import resnet  # noqa: E402,F401
from archs import bninception  # noqa: E402,F401
from archs import mobilenet  # noqa: E402,F401
from archs import squeezenet  # noqa: E402,F401
from archs import tinynet  # noqa: E402,F401
