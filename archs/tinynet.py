"""TinyNet: a four-stage CNN small enough to train video models on a CPU in minutes.

Not a published architecture: it exists so the demo and the experiments on the synthetic
benchmark (docs/results.md) can train every block, STTNet and the SSL methods from scratch, with
several seeds, on a 2-core machine. Four conv-BN-ReLU stages of 16-32-64-128 channels, each
halving the resolution (a 64 px frame gives a 4x4 map), with one extra 3x3 conv per stage.
"""
import torch.nn as nn

from ops.model_api import IMAGENET_SPEC, load_pretrained
from ops.registry import BACKBONES


def _stage(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class TinyNet(nn.Module):
    """forward(x [N, 3, H, W]) -> [N, 128, H/16, W/16]."""

    def __init__(self, widths=(16, 32, 64, 128)):
        super().__init__()
        chans = (3,) + tuple(widths)
        self.stages = nn.Sequential(*[_stage(a, b) for a, b in zip(chans[:-1], chans[1:])])
        self.feature_dim = widths[-1]
        self.input_spec = dict(IMAGENET_SPEC)

    def forward(self, x):
        return self.stages(x)


@BACKBONES.register("tinynet")
def tinynet(pretrained_weights=None):
    net = TinyNet()
    if pretrained_weights:
        load_pretrained(net, pretrained_weights)
    return net
