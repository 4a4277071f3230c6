"""STTS and STTS-A ("Spatio-Temporal and Temporal-Spatio Convolutional Network for Activity Recognition").

STTS replaces each factored conv of R(2+1)D-18 by two parallel branches of Cout/2 channels each,
concatenated: ST (spatial then temporal, like R(2+1)D) and TS (temporal then spatial), so one
layer sees both orders of factorisation. Each branch's middle width is set so that it has the
weights of a full t x d x d kernel onto Cout/2 channels (archs/r2plus1d.mid_channels).

STTS-A adds an attention gate after both branches of every conv of stages 3-5, shortcuts
included (15 convs x 2 branches): the branch input, resized to the branch output's T x H x W,
is weighted per position by a sigmoid gate computed from both, and fused with the output by a
1x1x1 conv. The gates add 4,135,966 parameters (37,344,339 in all with 101 classes).
Both start from scratch as the STTS project's R(2+1)D (archs/r2plus1d.py's FactoredResNet18).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from archs.r2plus1d import FactoredConv, FactoredResNet18
from ops.model_api import STTS_PROJECT, clip_spec_from_cfg
from ops.registry import MODELS


class AttentionGate(nn.Module):
    """Attention-gated fusion of a branch's input x [B, cin, ...] and output g [B, cout, T, H, W].

    l = x resized to g's T, H, W (trilinear); a = sigmoid(phi(ReLU(W_l l + W_g g))) in [0, 1] per
    position; returns conv1x1x1(concat(a * l, g)) with cout channels.
    """

    def __init__(self, cin, cout):
        super().__init__()
        self.w_l = nn.Conv3d(cin, cin // 2, 1, bias=False)
        self.w_g = nn.Conv3d(cout, cin // 2, 1)
        self.phi = nn.Conv3d(cin // 2, 1, 1)
        self.fuse = nn.Conv3d(cin + cout, cout, 1, bias=False)

    def forward(self, x, g):
        l = x if x.shape[2:] == g.shape[2:] else F.interpolate(x, size=g.shape[2:], mode="trilinear",
                                                                  align_corners=False)
        a = torch.sigmoid(self.phi(F.relu(self.w_l(l) + self.w_g(g))))
        return self.fuse(torch.cat([a * l, g], dim=1))


class GatedBranch(nn.Module):
    """A conv branch followed by its AttentionGate: x -> gate(x, branch(x))."""

    def __init__(self, branch, cin, cout):
        super().__init__()
        self.branch = branch
        self.gate = AttentionGate(cin, cout)

    def forward(self, x):
        return self.gate(x, self.branch(x))


class STTSConv(nn.Module):
    """The STTS conv unit: concat(ST branch, TS branch), each cin -> cout/2; optionally gated (STTS-A).
    Same call as FactoredConv: (cin, cout, t, d, stride)."""

    def __init__(self, cin, cout, t, d, stride=(1, 1), attention=False):
        super().__init__()
        if cout % 2:
            raise ValueError(f"STTS needs an even number of output channels, got {cout}")
        branches = [FactoredConv(cin, cout // 2, t, d, stride, order=order) for order in ("st", "ts")]
        if attention:
            branches = [GatedBranch(b, cin, cout // 2) for b in branches]
        self.branches = nn.ModuleList(branches)

    def forward(self, x):
        return torch.cat([branch(x) for branch in self.branches], dim=1)


def stts_18(num_class, attention=False, dropout=0.0, input_spec=None):
    """STTS-18 (STTS-A-18 with `attention`: gates in stages 3-5). The stem's TS branch gets the
    formula's M = 2 (a 2-channel bottleneck), as in the published count."""

    def stage_conv(stage):
        return lambda cin, cout, t, d, stride: STTSConv(cin, cout, t, d, stride, attention=attention and stage >= 3)

    stem = STTSConv(3, 64, 1, 7, stride=(1, 2))
    return FactoredResNet18(stem, stage_conv, num_class, dropout, input_spec)


@MODELS.register("stts", role="whole", defaults=STTS_PROJECT)
def stts(cfg):
    return stts_18(cfg["num_class"], dropout=cfg["dropout"], input_spec=clip_spec_from_cfg(cfg))


@MODELS.register("stts_a", role="whole", defaults=STTS_PROJECT)
def stts_a(cfg):
    return stts_18(cfg["num_class"], attention=True, dropout=cfg["dropout"], input_spec=clip_spec_from_cfg(cfg))
