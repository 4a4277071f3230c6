"""BN-Inception (Ioffe & Szegedy 2015, "Batch Normalization", Figure 5): the TSN backbone.

Built from the paper's architecture table. Every convolution is followed by batch norm and ReLU;
the 5x5 convolutions of GoogLeNet are replaced by two 3x3 ones ("double 3x3"); modules 3c and 4e
halve the resolution with stride-2 convolutions and pass the max-pooled input through.

The branch widths are taken from the table as printed. The table's "output size" column says
576 channels after 4c and 4d and 1024 after 4e, but the branch widths add up to 608, 608 and
1056; the ImageNet model released with the paper (and used by TSN) follows the branch widths,
so this definition does too. The layer names (`conv1_7x7_s2`, `inception_3a_1x1`, `..._bn`) and
the conv biases are those of that released model, so its converted weights load as they are.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ops.model_api import load_pretrained
from ops.registry import BACKBONES

# (module, #1x1, #3x3 reduce, #3x3, double #3x3 reduce, double #3x3, pool, pool projection).
# A module without a 1x1 branch is a stride-2 one: its pool branch is a pass-through.
INCEPTION_TABLE = (
    ("3a", 64, 64, 64, 64, 96, "avg", 32),
    ("3b", 64, 64, 96, 64, 96, "avg", 64),
    ("3c", 0, 128, 160, 64, 96, "max", 0),
    ("4a", 224, 64, 96, 96, 128, "avg", 128),
    ("4b", 192, 96, 128, 96, 128, "avg", 128),
    ("4c", 160, 128, 160, 128, 160, "avg", 128),
    ("4d", 96, 128, 192, 160, 192, "avg", 128),
    ("4e", 0, 128, 192, 192, 256, "max", 0),
    ("5a", 352, 192, 320, 160, 224, "avg", 128),
    ("5b", 352, 192, 320, 192, 224, "max", 128),
)

# Caffe-style input of the released ImageNet model: BGR, 0-255, mean subtracted, no scaling.
INPUT_SPEC = dict(mean=(104.0, 117.0, 128.0), std=(1.0, 1.0, 1.0), bgr=True, value_scale=255)


def max_pool_s2(x):
    """3x3 stride-2 max pool in Caffe's ceil mode; an odd side is first padded at its far end so
    the result always matches a stride-2 3x3 convolution (ceil(side / 2)), at any input size."""
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2), value=float("-inf"))
    return F.max_pool2d(x, 3, stride=2, ceil_mode=True)


class BNInception(nn.Module):
    """Feature extractor: [N, 3, H, W] (BGR, 0-255, mean-subtracted) -> [N, 1024, H/32, W/32]."""

    def __init__(self):
        super().__init__()
        self.feature_dim = 1024
        self.input_spec = dict(INPUT_SPEC)
        self.stem = [self._conv("conv1_7x7_s2", 3, 64, 7, stride=2), "maxpool",
                     self._conv("conv2_3x3_reduce", 64, 64, 1), self._conv("conv2_3x3", 64, 192, 3), "maxpool"]
        self.modules_plan = []
        channels = 192
        for name, n1, r3, n3, rd, nd, pool, proj in INCEPTION_TABLE:
            p = f"inception_{name}_"
            stride = 1 if n1 else 2
            branches = [[self._conv(p + "1x1", channels, n1, 1)]] if n1 else []
            branches.append([self._conv(p + "3x3_reduce", channels, r3, 1),
                             self._conv(p + "3x3", r3, n3, 3, stride)])
            branches.append([self._conv(p + "double_3x3_reduce", channels, rd, 1),
                             self._conv(p + "double_3x3_1", rd, nd, 3),
                             self._conv(p + "double_3x3_2", nd, nd, 3, stride)])
            pool_proj = self._conv(p + "pool_proj", channels, proj, 1) if proj else None
            self.modules_plan.append((branches, pool, stride, pool_proj))
            channels = n1 + n3 + nd + (proj or channels)
        assert channels == self.feature_dim

    def _conv(self, name, cin, cout, k, stride=1):
        """Register conv `name` and its batch norm `name_bn`; return the name for the forward plan."""
        self.add_module(name, nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2))
        self.add_module(name + "_bn", nn.BatchNorm2d(cout))
        return name

    def _run(self, name, x):
        return F.relu(self._modules[name + "_bn"](self._modules[name](x)))

    def forward(self, x):
        for step in self.stem:
            x = F.max_pool2d(x, 3, stride=2, ceil_mode=True) if step == "maxpool" else self._run(step, x)
        for branches, pool, stride, pool_proj in self.modules_plan:
            outs = []
            for branch in branches:
                y = x
                for name in branch:
                    y = self._run(name, y)
                outs.append(y)
            if stride == 2:
                outs.append(max_pool_s2(x))
            elif pool == "avg":
                outs.append(self._run(pool_proj, F.avg_pool2d(x, 3, stride=1, padding=1)))
            else:
                outs.append(self._run(pool_proj, F.max_pool2d(x, 3, stride=1, padding=1)))
            x = torch.cat(outs, 1)
        return x


@BACKBONES.register("BNInception")
def bninception(pretrained_weights=None):
    net = BNInception()
    if pretrained_weights:
        load_pretrained(net, pretrained_weights)
    return net
