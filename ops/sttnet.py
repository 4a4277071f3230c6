"""STTNet (ICME 2022): a TSN whose last feature maps pass through the SCSA aggregator, with two
self-supervised branches trained jointly with the action classifier.

    maps [B, K, C, h, w] --RBRC transform--> X_rbrc --> RBRC head --> lambda_rbrc * CE  (training only)
                         --RBRF transform--> X_rbrf --> RBRF head --> lambda_rbrf * CE  (training only)
    SCSA(maps, X_rbrc, X_rbrf) --> pool --> dropout --> fc --> consensus

In eval() nothing random happens: no transform runs and the aggregator's auxiliary inputs are the
untransformed maps (the reference transformed at test time too, so its predictions were random).
In training the query path sees the RBRC-reversed maps, as published; `rbrc_query="clean"` feeds it
the maps it will see at evaluation instead. Over 5 paired seeds on the synthetic benchmark v3 the
two did not differ (top-1 +0.3 +- 7.6 points for clean, p = 0.93; docs/results.md), so the
published design stays the default.
Every part can be switched off for ablations; with all three off this is TSN.
"""
import math

import torch.nn.functional as F

from ops.registry import MODELS
from ops.scsa import SCSA
from ops.tsn import TSN, build_backbone, tsn_kwargs
from selfsupervision.rbrc import RBRCHead, rbrc_transform
from selfsupervision.rbrf import RBRFHead, rbrf_labels, rbrf_transform


class STTNet(TSN):
    def __init__(self, backbone, num_class, num_segments, aggregator=True, rbrf=True, rbrc=True,
                 lambda_rbrf=0.01, lambda_rbrc=0.1, rbrf_kinds=2, rbrf_grid=2, rbrf_hidden=256,
                 rbrc_ratio=0.5, rbrc_hidden=256, rbrc_query="reversed", scsa_dim=256, scsa_heads=1,
                 scsa_gamma=0.01, scsa_norm=False, scsa_ffn=False, spatial_size=(7, 7), **tsn_options):
        super().__init__(backbone, num_class, num_segments, **tsn_options)
        if rbrf_kinds not in (2, 5):
            raise ValueError(f"STTNet: rbrf_kinds must be 2 or 5 (got {rbrf_kinds})")
        if not 0 < rbrc_ratio <= 1:
            raise ValueError(f"STTNet: rbrc_ratio must be in (0, 1] (got {rbrc_ratio})")
        if rbrc_query not in ("reversed", "clean"):
            raise ValueError(f"STTNet: rbrc_query must be 'reversed' or 'clean' (got {rbrc_query!r})")
        if lambda_rbrf < 0 or lambda_rbrc < 0:
            raise ValueError(f"STTNet: loss weights must be >= 0 (got {lambda_rbrf}, {lambda_rbrc})")
        c = self.feature_dim
        self.aggregator = SCSA(c, scsa_dim, scsa_heads, num_segments, spatial_size, scsa_gamma,
                               norm=scsa_norm, ffn=scsa_ffn) if aggregator else None
        self.rbrf_head = RBRFHead(c, rbrf_kinds, rbrf_hidden, rbrf_grid) if rbrf else None
        self.rbrc_head = RBRCHead(c, rbrc_hidden) if rbrc else None
        self.lambda_rbrf, self.lambda_rbrc = lambda_rbrf, lambda_rbrc
        self.rbrf_kinds, self.rbrc_ratio, self.rbrc_query = rbrf_kinds, rbrc_ratio, rbrc_query

    def process_maps(self, maps):
        """Self-supervision (training only), then the aggregator; see the module docstring."""
        losses, metrics = {}, {}
        x_rbrc = x_rbrf = maps
        if self.training and self.rbrc_head is not None:
            reversed_maps, labels, _ = rbrc_transform(maps, self.rbrc_ratio)
            self._pretext(self.rbrc_head(reversed_maps), labels, "rbrc", self.lambda_rbrc, losses, metrics)
            if self.rbrc_query == "reversed":
                x_rbrc = reversed_maps
        if self.training and self.rbrf_head is not None:
            x_rbrf, code = rbrf_transform(maps)
            self._pretext(self.rbrf_head(x_rbrf), rbrf_labels(code, self.rbrf_kinds), "rbrf",
                          self.lambda_rbrf, losses, metrics)
        if self.aggregator is not None:
            maps = self.aggregator(maps, x_rbrc, x_rbrf)
        return maps, ({"losses": losses, "metrics": metrics} if losses else {})

    @staticmethod
    def _pretext(logits, labels, name, weight, losses, metrics):
        logits, labels = logits.flatten(0, -2), labels.flatten()
        losses[name] = weight * F.cross_entropy(logits.float(), labels)
        metrics[f"{name}_acc"] = 100 * (logits.argmax(-1) == labels).float().mean().detach()  # in %, like top-1


@MODELS.register("sttnet", role="family", defaults=dict(dropout=0.5, crop_size=224))
def sttnet(cfg):
    """STTNet from the run configuration (flags of the STTNet section of opts.py). The positional
    table is sized for a stride-32 backbone at the crop size; other map sizes are interpolated."""
    tsn_options = tsn_kwargs(cfg)
    side = math.ceil(tsn_options["crop_size"] / 32)
    options = ("aggregator", "rbrf", "rbrc", "lambda_rbrf", "lambda_rbrc", "rbrf_kinds", "rbrf_grid", "rbrf_hidden",
               "rbrc_ratio", "rbrc_hidden", "rbrc_query", "scsa_dim", "scsa_heads", "scsa_gamma", "scsa_norm", "scsa_ffn")
    return STTNet(build_backbone(cfg), **tsn_options, spatial_size=(side, side), **{k: cfg[k] for k in options})
