"""TSM's temporal shift (Lin, Gan, Han 2019, "TSM: Temporal Shift Module for Efficient Video
Understanding"): a 2D ResNet that exchanges information between neighbouring frames at no cost.

Before a convolution, 1/shift_div of the channels of every frame is replaced by the same channels
of the next frame and another 1/shift_div by those of the previous frame; the rest stay. The
channels pulled in from outside the clip (after the last frame, before the first) are zeros.
`blockres` (TSM's default) shifts inside each residual branch, before its first convolution, so the
identity path keeps the frame's own features; `block` shifts the input of the whole block.

The wrapped module is kept as the attribute `net`, so parameter names are those of TSM's released
checkpoints (`layer1.0.conv1.net.weight`; with --temporal_pool `layer2.net.0.conv1.net.weight`).
Frames reach the backbone as [N * T, C, H, W] with the T frames of a clip consecutive (ops.tsn.TSN
folds clips and views into the batch that way), which is what lets the shift see the time axis.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.resnet import ResNet


def temporal_shift(x, num_segments, shift_div=8):
    """[N * T, C, H, W] -> same shape: with fold = C // shift_div, frame t's channels [0, fold) come
    from frame t + 1 (moved backward in time), [fold, 2 fold) from frame t - 1 (moved forward),
    zeros where that frame does not exist; the other channels are unchanged."""
    nt, c, h, w = x.shape
    if nt % num_segments:
        raise ValueError(f"temporal shift over {num_segments} frames got a batch of {nt} frames, "
                         f"not a multiple of {num_segments}")
    x = x.view(nt // num_segments, num_segments, c, h, w)
    fold = c // shift_div
    out = torch.zeros_like(x)
    out[:, :-1, :fold] = x[:, 1:, :fold]
    out[:, 1:, fold:2 * fold] = x[:, :-1, fold:2 * fold]
    out[:, :, 2 * fold:] = x[:, :, 2 * fold:]
    return out.view(nt, c, h, w)


class TemporalShift(nn.Module):
    """Shift in time, then apply `net` (a convolution or a whole residual block)."""

    def __init__(self, net, num_segments, shift_div=8):
        super().__init__()
        self.net, self.num_segments, self.shift_div = net, num_segments, shift_div

    def forward(self, x):
        return self.net(temporal_shift(x, self.num_segments, self.shift_div))

    def extra_repr(self):
        return f"num_segments={self.num_segments}, shift_div={self.shift_div}"


class TemporalPool(nn.Module):
    """TSM's --temporal_pool: max-pool the time axis by 2 (kernel 3, padding 1) before `net`, so
    the later stages process half the frames."""

    def __init__(self, net, num_segments):
        super().__init__()
        self.net, self.num_segments = net, num_segments

    def forward(self, x):
        nt, c, h, w = x.shape
        x = x.view(nt // self.num_segments, self.num_segments, c, h, w).transpose(1, 2)
        x = F.max_pool3d(x, kernel_size=(3, 1, 1), stride=(2, 1, 1), padding=(1, 0, 0))
        return self.net(x.transpose(1, 2).reshape(-1, c, h, w))

    def extra_repr(self):
        return f"num_segments={self.num_segments}"


def make_temporal_shift(net, num_segments, shift_div=8, place="blockres", temporal_pool=False):
    """Insert the shift into every residual block of a torchvision ResNet, in place; with
    `temporal_pool`, also halve the frames before layer2 (layers 2-4 then shift over T / 2).

    As in TSM, ResNets with 23 or more blocks in layer3 (ResNet-101) shift in every other block."""
    if not isinstance(net, ResNet):
        raise ValueError(f"the temporal shift is defined for the ResNet backbones, not {type(net).__name__}")
    if place not in ("blockres", "block"):
        raise ValueError(f"shift place {place!r}: expected 'blockres' or 'block'")
    if temporal_pool and num_segments % 2:
        raise ValueError(f"temporal pooling halves the frames: {num_segments} is odd")
    segments = [num_segments] + [num_segments // 2 if temporal_pool else num_segments] * 3
    every = 2 if len(net.layer3) >= 23 else 1
    for name, t in zip(("layer1", "layer2", "layer3", "layer4"), segments):
        blocks = list(getattr(net, name).children())
        for i, block in enumerate(blocks):
            if place == "block":
                blocks[i] = TemporalShift(block, t, shift_div)
            elif i % every == 0:
                block.conv1 = TemporalShift(block.conv1, t, shift_div)
        setattr(net, name, nn.Sequential(*blocks))
    if temporal_pool:
        net.layer2 = TemporalPool(net.layer2, num_segments)
    return net
