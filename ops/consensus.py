"""TSN's segment consensus: `avg` (class scores averaged over segments) and `identity`.

The block contract (docs/architecture.md): built with (num_segments, in_dim, num_class,
img_feature_dim), forward(features [B, K, F]) -> logits; the block owns its projection `new_fc`.
"""
import torch.nn as nn

from ops.model_api import make_new_fc
from ops.registry import CONSENSUS


class AvgConsensus(nn.Module):
    """Per-segment class scores averaged over the K segments: [B, K, F] -> [B, C].

    `per_frame`: it also takes the frames' features flat, [B*K, F] (TSN's and TSM's own order,
    which TSN uses when nothing between its backbone and this block needs the [B, K] layout): the
    same numbers, without the [B, K, F] linear's views."""

    per_frame = True

    def __init__(self, num_segments, in_dim, num_class):
        super().__init__()
        self.num_segments = num_segments
        self.new_fc = make_new_fc(in_dim, num_class)

    def forward(self, x):
        scores = self._modules["new_fc"](x)  # not self.new_fc: see TSN.forward
        if scores.dim() == 2:  # the frames flat
            scores = scores.view(-1, self.num_segments, scores.shape[-1])
        return scores.mean(dim=1)


class IdentityConsensus(nn.Module):
    """Per-segment class scores left unreduced, for heads that combine them: [B, K, F] -> [B, K, C]."""

    def __init__(self, in_dim, num_class):
        super().__init__()
        self.new_fc = make_new_fc(in_dim, num_class)

    def forward(self, x):
        return self.new_fc(x)


@CONSENSUS.register("avg")
def avg(num_segments, in_dim, num_class, img_feature_dim):
    return AvgConsensus(num_segments, in_dim, num_class)


@CONSENSUS.register("identity")
def identity(num_segments, in_dim, num_class, img_feature_dim):
    return IdentityConsensus(in_dim, num_class)
