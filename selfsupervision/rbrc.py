"""RBRC ("random batch, random channel"): STTNet's temporal self-supervision on feature maps.

Each clip of a batch is chosen with probability p; in a chosen clip a random subset of channels
plays backwards in time, X'[b, t, k] = X[b, K-1-t, k], while the other channels keep their order.
The head says, per clip, whether that happened. The reversed channels no longer move in step
with the rest, which a head that sees the order of the frames can notice; the reference's head
classified each frame from a single pooled value and is blind to order (a reversed clip has the
same set of per-frame values), so this one runs a temporal convolution over the K per-frame
vectors. It first subtracts the clip's mean over time: the order lives in how the frames differ,
and without centring the static appearance swamps it (on frozen ResNet-18 maps of real clips
the uncentred head stayed at chance, the centred one reached 99%). The reference reverses one
channel per clip, which no head learnt to see (scripts/sttnet_pretext_probe.sh); `ratio` sets
the fraction instead, half of the channels by default. Note that with half of the channels
reversed an order-blind head (kernel_size=1) does as well as the temporal one in that probe: the
mismatch between the two channel groups shows in the set of frames, not only in their order.
"""
import torch
import torch.nn as nn


def rbrc_transform(x, ratio=0.5, p=0.5, generator=None):
    """x [B, K, C, h, w] -> (copy with reversed channels, labels [B] int64, channel mask [B, C] bool).

    Chosen clips (label 1) reverse max(1, round(ratio * C)) distinct random channels."""
    b, _, c = x.shape[:3]
    labels = (torch.rand(b, generator=generator, device=x.device) < p).long()
    n = min(c, max(1, round(ratio * c)))
    order = torch.rand(b, c, generator=generator, device=x.device).argsort(dim=1)
    mask = torch.zeros(b, c, dtype=torch.bool, device=x.device)
    mask.scatter_(1, order[:, :n], True)
    mask &= labels.bool()[:, None]
    return torch.where(mask[:, None, :, None, None], x.flip(1), x), labels, mask


class RBRCHead(nn.Module):
    """Clip classifier (forward / reversed): pooled frames, centred over time -> Linear ->
    temporal conv -> mean over time -> MLP. kernel_size=1 makes it order-blind (a control)."""

    def __init__(self, in_dim, hidden=256, kernel_size=3):
        super().__init__()
        self.frame = nn.Linear(in_dim, hidden)
        self.temporal = nn.Conv1d(hidden, hidden, kernel_size, padding=kernel_size // 2)
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 2))

    def forward(self, x):
        """x [B, K, C, h, w] -> logits [B, 2]."""
        pooled = x.mean(dim=(3, 4))
        frames = self.relu(self.frame(pooled - pooled.mean(dim=1, keepdim=True)))   # [B, K, hidden]
        seq = self.relu(self.temporal(frames.transpose(1, 2)))       # [B, hidden, K]
        return self.fc(seq.mean(dim=2))
