"""R(2+1)D-18 (Tran et al. 2018, "A Closer Look at Spatiotemporal Convolutions for Action Recognition").

Every t x d x d convolution is factored into a spatial (1, d, d) conv to M channels and a temporal
(t, 1, 1) conv, with M chosen so the pair has about as many weights as the full 3D kernel. The
residual network around the factored convs is shared with STTS (archs/stts.py), which only
changes the conv unit.

Layer layout (that of the STTS project's reference, whose parameter count, 33,220,990 with 101
classes, includes every BatchNorm below):
- factored conv: spatial conv -> BN -> ReLU -> temporal conv -> BN -> ReLU (no conv biases);
- residual block: conv1 -> BN -> ReLU -> conv2 -> BN, plus the shortcut, then ReLU; the
  downsampling shortcut is a factored 1x1x1 conv (stride 2 in T, H, W) -> BN.
So each conv of a block is followed by two BatchNorms with a ReLU between them (BN -> ReLU -> BN):
the block's BN re-normalises the rectified output, which keeps the residual branch able to add
negative values. The ReLUs sit where the reference has them.

From scratch (R(2+1)D, STTS, STTS-A alike) every conv weight is kaiming-normal with
`kaiming_normal_`'s defaults, fan_in and gain sqrt(2), and every BatchNorm weight 1 and bias 0,
as the STTS project initialises its three networks; the classifier and the attention gates' conv
biases keep PyTorch's default initialisation, as there. No BatchNorm starts at 0.
"""
import torch.nn as nn

from ops.model_api import STTS_PROJECT, clip_input_spec, clip_spec_from_cfg
from ops.registry import MODELS


def mid_channels(cin, cout, first_kernel, second_kernel):
    """M for a conv split in two (cin -> M -> cout) with kernel volumes `first_kernel`, then
    `second_kernel`: floor(t d^2 cin cout / (first * cin + second * cout)), the M at which the pair
    has as many weights as one t x d x d kernel."""
    return first_kernel * second_kernel * cin * cout // (first_kernel * cin + second_kernel * cout)


class FactoredConv(nn.Sequential):
    """A t x d x d conv as two convs with BN + ReLU after each; [B, cin, T, H, W] -> [B, cout, T', H', W'].

    order "st": spatial (1, d, d) then temporal (t, 1, 1) (R(2+1)D, and STTS's ST branch);
    order "ts": temporal first (STTS's TS branch). `stride` = (temporal, spatial); each conv
    strides along its own axes. `mid` overrides the computed M.
    """

    def __init__(self, cin, cout, t, d, stride=(1, 1), order="st", mid=None):
        spatial = dict(kernel_size=(1, d, d), stride=(1, stride[1], stride[1]), padding=(0, d // 2, d // 2))
        temporal = dict(kernel_size=(t, 1, 1), stride=(stride[0], 1, 1), padding=(t // 2, 0, 0))
        if order == "st":
            first, second = spatial, temporal
            mid = mid or mid_channels(cin, cout, d * d, t)
        elif order == "ts":
            first, second = temporal, spatial
            mid = mid or mid_channels(cin, cout, t, d * d)
        else:
            raise ValueError(f"order must be 'st' or 'ts', got {order!r}")
        super().__init__(nn.Conv3d(cin, mid, bias=False, **first), nn.BatchNorm3d(mid), nn.ReLU(inplace=True),
                         nn.Conv3d(mid, cout, bias=False, **second), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))


class ResBlock(nn.Module):
    """Basic residual block of two 3x3x3 conv units; `conv(cin, cout, t, d, stride)` builds a unit.
    With `downsample`, stride 2 in T, H and W and a 1x1x1 conv unit + BN on the shortcut."""

    def __init__(self, conv, cin, cout, downsample=False):
        super().__init__()
        stride = (2, 2) if downsample else (1, 1)
        self.conv1 = conv(cin, cout, 3, 3, stride)
        self.bn1 = nn.BatchNorm3d(cout)
        self.conv2 = conv(cout, cout, 3, 3, (1, 1))
        self.bn2 = nn.BatchNorm3d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Sequential(conv(cin, cout, 1, 1, stride), nn.BatchNorm3d(cout)) \
            if downsample else nn.Identity()

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class FactoredResNet18(nn.Module):
    """18-layer residual network of factored convs: [B, 3, T, H, W] -> logits [B, num_class].

    `stem` is the first conv unit (kernel (1, 7, 7), stride (1, 2, 2), 3 -> 64); `stage_conv(stage)`
    gives the conv unit builder of stage 2..5 (64, 128, 256, 512 channels, two blocks each; the
    first block of stages 3-5 downsamples by 2 in T, H, W). No max pool after the stem, so a
    32 x 112 x 112 clip ends as 4 x 7 x 7 x 512 before the global average pool.
    """

    feature_dim = 512

    def __init__(self, stem, stage_conv, num_class, dropout=0.0, input_spec=None):
        super().__init__()
        self.num_class = num_class
        self.input_spec = input_spec or clip_input_spec(112, 128)
        self.stem = stem
        widths = [64, 64, 128, 256, 512]
        self.layers = nn.Sequential(*[
            nn.Sequential(ResBlock(stage_conv(stage), widths[stage - 2], widths[stage - 1], downsample=stage > 2),
                          ResBlock(stage_conv(stage), widths[stage - 1], widths[stage - 1]))
            for stage in range(2, 6)])
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(512, num_class)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x):
        """[B, 3, T, H, W] -> [B, 512]: the last stage averaged over time and space."""
        return self.layers(self.stem(x)).mean(dim=(2, 3, 4))

    def forward(self, x):
        return self.fc(self.dropout(self.forward_features(x)))


def r2plus1d_18(num_class, dropout=0.0, input_spec=None):
    """R(2+1)D-18. The stem is a factored conv with t = 1: spatial 7x7 (stride 2) to M = 45 channels
    (the formula would give 44), then a pointwise conv to 64, as the published count has it."""
    stem = FactoredConv(3, 64, 1, 7, stride=(1, 2), mid=45)
    return FactoredResNet18(stem, lambda stage: FactoredConv, num_class, dropout, input_spec)


@MODELS.register("r2plus1d", role="whole", defaults=STTS_PROJECT)
def r2plus1d(cfg):
    return r2plus1d_18(cfg["num_class"], dropout=cfg["dropout"], input_spec=clip_spec_from_cfg(cfg))
