"""TSN (Wang et al. 2016, "Temporal Segment Networks"): every sampled frame goes through the same
2D backbone; the per-frame features are combined by a segment-consensus block (`avg`, or a
spatio-temporal block from CONSENSUS). Subclasses change what happens to the feature maps between
the backbone and pooling by overriding one hook, `process_maps` (STTNet puts its aggregator there);
their builders reuse `build_backbone` and `tsn_kwargs`.
"""
import inspect

import torch.nn as nn

from ops.checkpoint_formats import load_weights
from ops.model_api import InputSpec, default_scale_size
from ops.registry import BACKBONES, CONSENSUS, MODELS
from ops.temporal_shift import make_temporal_shift


class TSN(nn.Module):
    """Temporal Segment Network: [B, K*L, 3, H, W] -> logits [B, C] (or a dict, see `process_maps`).

    The L frames of a segment are averaged after the backbone, so a block always sees K segments.
    With `partial_bn` every BatchNorm of the backbone but the first is frozen: running statistics
    (kept in eval mode by `train()`) and affine parameters (requires_grad False), as in TSN, which
    fine-tunes from ImageNet on small video datasets.
    """

    def __init__(self, backbone, num_class, num_segments, consensus="avg", new_length=1, dropout=0.5,
                 img_feature_dim=256, partial_bn=False, crop_size=224, scale_size=None, temporal_pool=False,
                 consensus_opts=None):
        super().__init__()
        self.num_class, self.num_segments, self.new_length = num_class, num_segments, new_length
        # TSM's temporal pooling inside the backbone leaves K / 2 segments for the consensus.
        self.out_segments = num_segments // 2 if temporal_pool else num_segments
        self.base_model = backbone
        self.feature_dim = backbone.feature_dim
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.consensus = CONSENSUS.create(consensus, num_segments=self.out_segments, in_dim=self.feature_dim,
                                          num_class=num_class, img_feature_dim=img_feature_dim,
                                          **(consensus_opts or {}))
        # read once: a missing attribute costs an AttributeError inside nn.Module at every step
        self.consensus_takes_maps = getattr(self.consensus, "needs_maps", False)
        # TSN's and TSM's order (pool, dropout and fc per frame, then the segments' mean) when no
        # subclass hook needs the [B, K] layout and the block takes the frames flat
        self.per_frame_head = getattr(self.consensus, "per_frame", False) and \
            type(self).process_maps is TSN.process_maps
        self.partial_bn = partial_bn
        for bn in self.frozen_bns():
            bn.requires_grad_(False)
        spec = backbone.input_spec
        spec = {k: getattr(spec, k) for k in ("mean", "std", "bgr", "value_scale")} \
            if isinstance(spec, InputSpec) else dict(spec)
        self.input_spec = InputSpec(layout="frames", crop_size=crop_size,
                                    scale_size=scale_size or default_scale_size(crop_size), **spec)

    def frozen_bns(self):
        """The BatchNorm layers partial BN freezes: all of the backbone's but the first."""
        if not self.partial_bn:
            return []
        return [m for m in self.base_model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)][1:]

    def train(self, mode=True):
        super().train(mode)
        for bn in self.frozen_bns():
            bn.eval()
        return self

    def frame_maps(self, x):
        """[B, K*L, 3, H, W] -> backbone maps per segment, flat: [B*K, C, h, w] (the L frames of a
        segment averaged; K / 2 segments after TSM's temporal pooling)."""
        if x.dim() != 5 or x.shape[1] != self.num_segments * self.new_length:
            raise ValueError(f"{type(self).__name__} expects [B, {self.num_segments * self.new_length}, 3, H, W] "
                             f"(K={self.num_segments} x L={self.new_length}), got {list(x.shape)}")
        maps = self._modules["base_model"](x.flatten(0, 1))
        if self.new_length == 1:
            return maps
        return maps.view(-1, self.new_length, *maps.shape[1:]).mean(dim=1)

    def extract_maps(self, x):
        """[B, K*L, 3, H, W] -> backbone maps [B, K, C, h, w] (see `frame_maps`)."""
        maps = self.frame_maps(x)
        return maps.view(-1, self.out_segments, *maps.shape[1:])

    def process_maps(self, maps):
        """Hook between the backbone and pooling, for subclasses.

        Takes maps [B, K, C, h, w] and returns (maps of the same layout, extras), where extras is a
        dict with optional `losses` / `metrics` ({name: scalar}); when non-empty, forward returns
        {"logits", **extras}. Randomness here must be off in eval() (evaluation is deterministic).
        """
        return maps, {}

    def forward(self, x):
        # Submodules through _modules, as nn.Sequential does: `self.dropout` is found only after
        # Python's lookup fails, and raising that AttributeError costs more than the layer here.
        modules = self._modules
        if self.per_frame_head:
            return modules["consensus"](modules["dropout"](self.frame_maps(x).mean(dim=(-2, -1))))
        maps, extras = self.process_maps(self.extract_maps(x))
        if self.consensus_takes_maps:
            logits = modules["consensus"](maps)
        else:
            logits = modules["consensus"](modules["dropout"](maps.mean(dim=(-2, -1))))
        return {"logits": logits, **extras} if extras else logits


def block_options(name, cfg):
    """Extra keyword arguments of a consensus block, taken from the cfg entries of the same name
    (a block's flags in opts.py carry its argument names)."""
    fixed = {"num_segments", "in_dim", "num_class", "img_feature_dim"}
    params = inspect.signature(CONSENSUS.get(name)).parameters
    return {k: cfg[k] for k in params if k not in fixed and k in cfg}


def build_backbone(cfg):
    """The 2D backbone `arch`: with --pretrain imagenet, the weights of --pretrained_weights (any
    layout ops/checkpoint_formats reads: torchvision's, timm's ResNets, ...) loaded strictly unless
    --allow_partial_load, under torchvision's names, before TSM's temporal shift over the K x L
    frames of a clip wraps the convolutions when `shift` is set."""
    net = BACKBONES.create(cfg["arch"])
    if cfg["pretrain"] == "imagenet":
        load_weights(net, cfg["pretrained_weights"], allow_partial=cfg["allow_partial_load"])
    if cfg["shift"]:
        make_temporal_shift(net, cfg["num_segments"] * cfg["new_length"], cfg["shift_div"],
                            cfg["shift_place"], cfg["temporal_pool"])
    return net


def tsn_kwargs(cfg):
    """TSN's constructor arguments from the run configuration (shared with subclasses' builders)."""
    return dict(num_class=cfg["num_class"], num_segments=cfg["num_segments"], consensus=cfg["consensus_type"],
                new_length=cfg["new_length"], dropout=cfg["dropout"], img_feature_dim=cfg["img_feature_dim"],
                partial_bn=cfg["partial_bn"], crop_size=cfg["crop_size"], scale_size=cfg["scale_size"],
                temporal_pool=cfg["shift"] and cfg["temporal_pool"],
                consensus_opts=block_options(cfg["consensus_type"], cfg))


@MODELS.register("tsn", role="family", defaults=dict(dropout=0.5, crop_size=224))
def tsn(cfg):
    return TSN(build_backbone(cfg), **tsn_kwargs(cfg))
