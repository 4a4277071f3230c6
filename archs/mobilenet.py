"""MobileNetV2 (Sandler et al. 2018; torchvision's definition) as a per-frame feature extractor,
useful for fast runs.

torchvision's module names are kept (`features.*`), so its ImageNet state dict loads with
`load_pretrained`; its classifier (dropout, Linear(1280, 1000)) is dropped.
"""
import torch.nn as nn
from torchvision.models import mobilenet_v2 as tv_mobilenet_v2

from ops.model_api import IMAGENET_SPEC, load_pretrained
from ops.registry import BACKBONES


class MobileNetV2Features(nn.Module):
    """forward(x [N, 3, H, W]) -> [N, 1280, H/32, W/32]."""

    def __init__(self):
        super().__init__()
        self.features = tv_mobilenet_v2().features
        self.feature_dim = 1280
        self.input_spec = dict(IMAGENET_SPEC)

    def forward(self, x):
        return self.features(x)


@BACKBONES.register("mobilenet_v2")
def mobilenet_v2(pretrained_weights=None):
    net = MobileNetV2Features()
    if pretrained_weights:
        load_pretrained(net, pretrained_weights)
    return net
