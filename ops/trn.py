"""Temporal Relation Network (Zhou et al. 2018, "Temporal Relational Reasoning in Videos"):
class scores from learned functions g_s of ordered s-frame tuples ("relations") of the K
projected frame features, at a single scale (`TRN`) or at every scale K..2 (`TRNmultiscale`)."""
import itertools
import math

import torch
import torch.nn as nn

from ops.model_api import make_new_fc
from ops.registry import CONSENSUS

# Relations per scale below K: drawn at random in training (TRN's choice), so a forward costs
# 1 + 3 (K - 2) relation evaluations (19 at K = 8) instead of all 2^K - K - 1.
TRAIN_RELATIONS = 3
# Size of the fixed relation set each scale below K uses in eval() (all relations when fewer).
EVAL_RELATIONS = 32
# Scales with at most this many relations keep them all on the device for the training draws.
TABLE_RELATIONS = 1024


def relation_mlp(in_dim, num_class, bottleneck=256):
    """g_s: ReLU -> Linear(s*D, bottleneck) -> ReLU -> Linear(bottleneck, C); the published TRN code
    uses 512 at the single scale and 256 per scale of the multiscale one."""
    return nn.Sequential(nn.ReLU(), nn.Linear(in_dim, bottleneck), nn.ReLU(), nn.Linear(bottleneck, num_class))


class TRN(nn.Module):
    """Single scale: g_K (512-wide, as published) over all K frames in time order. [B, K, F] -> [B, C]."""

    def __init__(self, num_segments, in_dim, num_class, img_feature_dim=256):
        super().__init__()
        self.new_fc = make_new_fc(in_dim, img_feature_dim)
        self.g = relation_mlp(num_segments * img_feature_dim, num_class, bottleneck=512)

    def forward(self, x):
        return self.g(self.new_fc(x).flatten(1))


def draw_relations(num_frames, size, count, generator=None):
    """`count` distinct s-frame tuples (sorted frame indices), uniform over all C(K, s) of them.

    Sampled by rejection instead of enumerated, so large K costs nothing: a sorted random
    s-subset of the frames is a uniformly random combination."""
    chosen = set()
    while len(chosen) < count:
        chosen.add(tuple(sorted(torch.randperm(num_frames, generator=generator)[:size].tolist())))
    return sorted(chosen)


class TRNmultiscale(nn.Module):
    """Multi-scale TRN: logits = g_K(all frames) + sum over s = K-1..2 of g_s over relations of s frames.

    Each scale has its own g_s. Training: each scale below K sums g_s over up to 3 relations drawn
    at random per forward (as TRN). Evaluation is deterministic: each scale below K uses a fixed
    set R_s, all C(K, s) relations when there are at most 32, else 32 distinct relations drawn
    once, at construction, from a generator seeded with 0 (so the set depends only on K and s).
    The scale's term is then m_s * mean over R_s of g_s, with m_s = min(3, C(K, s)) the number of
    relations summed in training: the expected value of the training-time term, on the same scale.

    Training draws on the device, so a forward never waits for the host: a scale with at most
    1024 relations keeps them all in a buffer and picks m_s distinct rows (TRN's choice among
    all relations); a larger scale draws m_s sorted random frame subsets, which may coincide
    (probability < 3 / 1024 per scale and step).
    """

    def __init__(self, num_segments, in_dim, num_class, img_feature_dim=256):
        super().__init__()
        self.num_segments = num_segments
        self.scales = list(range(num_segments, 1, -1)) or [1]
        self.new_fc = make_new_fc(in_dim, img_feature_dim)
        self.g = nn.ModuleList(relation_mlp(s * img_feature_dim, num_class) for s in self.scales)
        generator = torch.Generator().manual_seed(0)
        for s in self.scales:
            n = math.comb(num_segments, s)
            fixed = list(itertools.combinations(range(num_segments), s)) if n <= EVAL_RELATIONS \
                else draw_relations(num_segments, s, EVAL_RELATIONS, generator)
            self.register_buffer(f"eval_relations_{s}", torch.tensor(fixed), persistent=False)
            if n <= TABLE_RELATIONS:
                every = list(itertools.combinations(range(num_segments), s))
                self.register_buffer(f"train_relations_{s}", torch.tensor(every), persistent=False)

    def train_relations(self, s, count, device):
        """[count, s] frame indices drawn on the device (see the class docstring)."""
        table = getattr(self, f"train_relations_{s}", None)
        if table is not None:
            return table[torch.randperm(table.shape[0], device=table.device)[:count]]
        return torch.rand(count, self.num_segments, device=device).argsort(dim=1)[:, :s].sort(dim=1).values

    def forward(self, x):
        x = self.new_fc(x)
        logits = 0
        for s, g in zip(self.scales, self.g):
            per_step = min(TRAIN_RELATIONS, math.comb(self.num_segments, s))
            if self.training:
                relations = self.train_relations(s, per_step, x.device)
                logits = logits + g(x[:, relations].flatten(2)).sum(dim=1)
            else:
                relations = getattr(self, f"eval_relations_{s}")
                logits = logits + per_step * g(x[:, relations].flatten(2)).mean(dim=1)
        return logits


@CONSENSUS.register("TRN")
def trn(num_segments, in_dim, num_class, img_feature_dim):
    return TRN(num_segments, in_dim, num_class, img_feature_dim)


@CONSENSUS.register("TRNmultiscale")
def trn_multiscale(num_segments, in_dim, num_class, img_feature_dim):
    return TRNmultiscale(num_segments, in_dim, num_class, img_feature_dim)
