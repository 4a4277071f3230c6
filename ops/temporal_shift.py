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

In-place variant (`temporal_shift_`, as TSM's `InplaceShift`): the same movement written into the
input itself through one buffer of the moved channels, so no second full-size tensor is allocated.
It is used only where that is provably harmless: `block` placement with gradients off (evaluation,
test_models.py, feature extraction), outside torch.compile (which traces the out-of-place shift and
plans its own buffers). There the block input is the previous
block's output (or the stem's / temporal pool's), read by nobody but this block, and with
gradients off autograd keeps no reference to it; the out-of-place copy that would live through the
whole block is saved (docs/benchmarks.md). Never in `blockres`: the identity path reads the
unshifted block input. With gradients on the out-of-place shift is used: there the block input is
mostly the previous block's ReLU output, saved for that ReLU's backward; an in-place write is then
caught by autograd's version counter as a RuntimeError (TSM's own `InplaceShift` writes through
`.data`, which skips that check, and TSM leaves it off). A forward hook that keeps a block's output
would see it shifted; this project registers none.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable
from torchvision.models.resnet import ResNet


def _clips(x, num_segments):
    """[N * T, C, H, W] -> a [N, T, C, H, W] view; refuses a batch that is not whole clips."""
    nt, c, h, w = x.shape
    if nt % num_segments:
        raise ValueError(f"temporal shift over {num_segments} frames got a batch of {nt} frames, "
                         f"not a multiple of {num_segments}")
    return x.view(nt // num_segments, num_segments, c, h, w)


def _shifted(x, num_segments, fold, reverse=False):
    """Out-of-place: channels [0, fold) of frame t from frame t + 1, [fold, 2 fold) from frame
    t - 1 (the other way round with `reverse`, which is the gradient of the shift), zeros where
    that frame does not exist, the other channels unchanged."""
    clips = _clips(x, num_segments)
    back, fwd = slice(0, fold), slice(fold, 2 * fold)
    if reverse:
        back, fwd = fwd, back
    out = torch.zeros_like(clips)
    out[:, :-1, back] = clips[:, 1:, back]
    out[:, 1:, fwd] = clips[:, :-1, fwd]
    out[:, :, 2 * fold:] = clips[:, :, 2 * fold:]
    return out.view(x.shape)


def temporal_shift(x, num_segments, shift_div=8):
    """[N * T, C, H, W] -> a new tensor of the same shape: with fold = C // shift_div, frame t's
    channels [0, fold) come from frame t + 1 (moved backward in time), [fold, 2 fold) from frame
    t - 1 (moved forward), zeros where that frame does not exist; the other channels are unchanged."""
    return _shifted(x, num_segments, x.shape[1] // shift_div)


class InplaceShift(torch.autograd.Function):
    """temporal_shift written into its input. Forward marks the input dirty, so autograd bumps its
    version and a backward that still needs the old values fails instead of reading shifted ones.
    Backward returns a new tensor: the incoming gradient may be shared with other branches."""

    @staticmethod
    def forward(ctx, x, num_segments, fold):
        ctx.num_segments, ctx.fold = num_segments, fold
        clips = _clips(x, num_segments)
        buffer = clips[:, 1:, :fold].clone()
        clips[:, :-1, :fold] = buffer
        clips[:, -1, :fold] = 0
        buffer.copy_(clips[:, :-1, fold:2 * fold])
        clips[:, 1:, fold:2 * fold] = buffer
        clips[:, 0, fold:2 * fold] = 0
        ctx.mark_dirty(x)
        return x

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        return _shifted(grad, ctx.num_segments, ctx.fold, reverse=True), None, None


def temporal_shift_(x, num_segments, shift_div=8):
    """temporal_shift in place: returns `x`, shifted, allocating only a buffer of the moved
    channels (C // shift_div of them, all frames but one)."""
    return InplaceShift.apply(x, num_segments, x.shape[1] // shift_div)


class TemporalShift(nn.Module):
    """Shift in time, then apply `net` (a convolution or a whole residual block). With `inplace`
    (set only for `block` placement, see the module docstring) the shift is written into the input
    when gradients are off and torch.compile is not tracing."""

    def __init__(self, net, num_segments, shift_div=8, inplace=False):
        super().__init__()
        self.net, self.num_segments, self.shift_div, self.inplace = net, num_segments, shift_div, inplace

    def forward(self, x):
        if self.inplace and not torch.is_grad_enabled() and not torch.compiler.is_compiling():
            return self.net(temporal_shift_(x, self.num_segments, self.shift_div))
        return self.net(temporal_shift(x, self.num_segments, self.shift_div))

    def extra_repr(self):
        return f"num_segments={self.num_segments}, shift_div={self.shift_div}, inplace={self.inplace}"


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

    As in TSM, ResNets with 23 or more blocks in layer3 (ResNet-101) shift in every other block.
    `block` shifts are made `inplace` (taken with gradients off only, see the module docstring)."""
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
                blocks[i] = TemporalShift(block, t, shift_div, inplace=True)
            elif i % every == 0:
                block.conv1 = TemporalShift(block.conv1, t, shift_div)
        setattr(net, name, nn.Sequential(*blocks))
    if temporal_pool:
        net.layer2 = TemporalPool(net.layer2, num_segments)
    return net
