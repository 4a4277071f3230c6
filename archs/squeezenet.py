"""SqueezeNet 1.1 (Iandola et al. 2016; torchvision's definition) as a per-frame feature
extractor: a small, fast backbone (1.2M parameters) for quick runs such as Jester.

torchvision's module names are kept (`features.*`), so its ImageNet state dict loads with
`load_pretrained`; its classifier (dropout, 1x1 conv to 1000 classes, pooling) is dropped.
"""
import torch.nn as nn
from torchvision.models import squeezenet1_1 as tv_squeezenet1_1

from ops.model_api import IMAGENET_SPEC, load_pretrained
from ops.registry import BACKBONES


class SqueezeNetFeatures(nn.Module):
    """forward(x [N, 3, H, W]) -> [N, 512, h, w] (13x13 for a 224 input)."""

    def __init__(self):
        super().__init__()
        self.features = tv_squeezenet1_1().features
        self.feature_dim = 512
        self.input_spec = dict(IMAGENET_SPEC)

    def forward(self, x):
        return self.features(x)


@BACKBONES.register("squeezenet1_1")
def squeezenet1_1(pretrained_weights=None):
    net = SqueezeNetFeatures()
    if pretrained_weights:
        load_pretrained(net, pretrained_weights)
    return net
