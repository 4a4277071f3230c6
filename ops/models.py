"""Model construction: the TSN wrapper around a 2D backbone, the model output contract, and the
single entry `build_model(cfg)`.

TSN (Wang et al. 2016): every sampled frame goes through the same 2D backbone; the per-frame
features are combined by a segment-consensus block (`avg`, or a spatio-temporal block from
CONSENSUS). Subclasses change what happens to the feature maps between the backbone and pooling
by overriding one hook, `process_maps` (STTNet puts its aggregator there).
"""
import inspect
from dataclasses import dataclass

import torch
import torch.nn as nn

from ops.checkpoint import load_checkpoint
from ops.checkpoint_formats import load_weights
from ops.registry import BACKBONES, CONSENSUS, MODELS
from ops.temporal_shift import make_temporal_shift


@dataclass
class InputSpec:
    """What a model expects from the data pipeline (read by DeviceNormalize and the transforms).

    layout: `frames` -> [B, T, 3, H, W] (2D models), `clip` -> [B, 3, T, H, W] (3D models).
    Pixel values are scaled to [0, value_scale], channels put in BGR order if `bgr`, then
    normalised with mean/std (in the same units as value_scale).
    """
    layout: str = "frames"
    mean: tuple = (0.485, 0.456, 0.406)
    std: tuple = (0.229, 0.224, 0.225)
    bgr: bool = False
    value_scale: float = 1.0
    crop_size: int = 224
    scale_size: int = 256


def default_scale_size(crop_size):
    """TSN's habit: resize the short side to 256 for a 224 crop, and in that ratio otherwise."""
    return crop_size * 256 // 224


def as_output(out):
    """A model's return value as the dict {logits (tensor or None), losses {}, metrics {}}."""
    if torch.is_tensor(out):
        return {"logits": out, "losses": {}, "metrics": {}}
    if not isinstance(out, dict) or set(out) - {"logits", "losses", "metrics"}:
        keys = sorted(out) if isinstance(out, dict) else type(out).__name__
        raise TypeError(f"a model must return a logits tensor or a dict with logits/losses/metrics, got {keys}")
    return {"logits": out.get("logits"), "losses": dict(out.get("losses") or {}),
            "metrics": dict(out.get("metrics") or {})}


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

    def extract_maps(self, x):
        """[B, K*L, 3, H, W] -> backbone maps [B, K, C, h, w] (the L frames of a segment averaged;
        K / 2 segments after TSM's temporal pooling)."""
        if x.dim() != 5 or x.shape[1] != self.num_segments * self.new_length:
            raise ValueError(f"{type(self).__name__} expects [B, {self.num_segments * self.new_length}, 3, H, W] "
                             f"(K={self.num_segments} x L={self.new_length}), got {list(x.shape)}")
        b = x.shape[0]
        maps = self.base_model(x.flatten(0, 1))
        if self.new_length == 1:  # a view: no copy, and no extra kernel in backward
            return maps.view(b, self.out_segments, *maps.shape[1:])
        return maps.view(b, self.out_segments, self.new_length, *maps.shape[1:]).mean(dim=2)

    def process_maps(self, maps):
        """Hook between the backbone and pooling, for subclasses.

        Takes maps [B, K, C, h, w] and returns (maps of the same layout, extras), where extras is a
        dict with optional `losses` / `metrics` ({name: scalar}); when non-empty, forward returns
        {"logits", **extras}. Randomness here must be off in eval() (evaluation is deterministic).
        """
        return maps, {}

    def forward(self, x):
        maps, extras = self.process_maps(self.extract_maps(x))
        if getattr(self.consensus, "needs_maps", False):
            logits = self.consensus(maps)
        else:
            logits = self.consensus(self.dropout(maps.mean(dim=(-2, -1))))
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
    if cfg.get("pretrain") == "imagenet":
        load_weights(net, cfg["pretrained_weights"], allow_partial=cfg.get("allow_partial_load", False))
    if cfg.get("shift"):
        make_temporal_shift(net, cfg["num_segments"] * cfg.get("new_length", 1), cfg["shift_div"],
                            cfg["shift_place"], cfg.get("temporal_pool", False))
    return net


def tsn_kwargs(cfg):
    """TSN's constructor arguments from the run configuration (shared with subclasses' builders)."""
    crop_size = cfg.get("crop_size") or 224
    return dict(num_class=cfg["num_class"], num_segments=cfg["num_segments"],
                consensus=cfg.get("consensus_type", "avg"), new_length=cfg.get("new_length", 1),
                dropout=cfg.get("dropout", 0.5), img_feature_dim=cfg.get("img_feature_dim", 256),
                partial_bn=bool(cfg.get("partial_bn")), crop_size=crop_size,
                scale_size=cfg.get("scale_size"), temporal_pool=bool(cfg.get("shift") and cfg.get("temporal_pool")),
                consensus_opts=block_options(cfg.get("consensus_type", "avg"), cfg))


@MODELS.register("tsn")
def tsn(cfg):
    return TSN(build_backbone(cfg), **tsn_kwargs(cfg))


def model_label(cfg):
    """A run configuration's model in a few words: `tsn (resnet50, avg)`, `sttnet (resnet50 + shift
    1/8 blockres, avg)`, a clip model's or SSL method's name."""
    if cfg.get("ssl"):
        return f"{cfg['ssl']} ({cfg['arch']})" if cfg["ssl"] == "vtdl" else cfg["ssl"]
    if cfg["arch"] in MODELS:
        return cfg["arch"]
    if cfg["model"] in ("tsn", "sttnet"):
        shift = f" + shift 1/{cfg['shift_div']} {cfg['shift_place']}" if cfg.get("shift") else ""
        return f"{cfg['model']} ({cfg['arch']}{shift}, {cfg['consensus_type']})"
    return cfg["model"]


def model_name(cfg):
    """The registry name of the model a run configuration builds: `ssl` (pre-training) if set, else
    `arch` when it names a whole model (3D clip models), else `model` (sttnet, tsn, ...) around the
    2D backbone `arch`."""
    if cfg.get("ssl"):
        return cfg["ssl"]
    if cfg.get("arch") in MODELS:
        return cfg["arch"]
    return cfg["model"]


def build_model(cfg):
    """The model for a run configuration (a dict), see `model_name`."""
    return MODELS.create(model_name(cfg), cfg)


def model_from_checkpoint(path, overrides=None, needs_logits=False, random_init=False):
    """(model in eval mode, cfg) for a checkpoint written by main.py: the model is rebuilt from the
    run configuration stored in it (never from its file name), with `overrides` applied to that
    configuration (a dict, or a function of the stored configuration returning one), and given the
    checkpoint's weights.

    The weights come from the checkpoint, so the ImageNet file the run started from is not read.
    A pre-training checkpoint (`ssl`) rebuilds its method, unless the overrides turn `ssl` off and
    name the model fine-tuning would start from: then its weights go in as `--tune_from` puts them
    (ops.checkpoint_formats.load_weights). `needs_logits` refuses a pre-training checkpoint that would
    stay one (it has no classifier). `random_init`: the same network with fresh weights (the caller
    seeds torch), the checkpoint giving only the configuration."""
    state = load_checkpoint(path)
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict) or not state.get("config"):
        raise ValueError(f"{path} holds no run configuration: it was not written by main.py "
                         "(a checkpoint needs 'model' and 'config')")
    trained = state["config"]
    cfg = dict(trained, pretrain="none", pretrained_weights=None, tune_from="")
    overrides = (overrides(trained) if callable(overrides) else overrides) or {}
    cfg.update(overrides)
    if needs_logits and cfg.get("ssl"):
        raise ValueError(f"{path} is a self-supervised pre-training checkpoint (--ssl {cfg['ssl']}): it has no "
                         "classifier; fine-tune it with main.py --tune_from first, or use tools/extract_features.py")
    model = build_model(cfg)
    if random_init:
        pass
    elif trained.get("ssl") and not cfg.get("ssl"):
        load_weights(model, path)
    else:
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as err:
            changed = {k: v for k, v in overrides.items() if trained.get(k) != v}
            if changed and "size mismatch" in str(err):
                as_trained = ", ".join(f"{k}={trained.get(k)}" for k in changed)
                raise ValueError(f"{path}: parameters of this model are sized for {as_trained} as trained (e.g. the "
                                 f"TRN and MLP blocks' layers); it cannot run with "
                                 f"{', '.join(f'{k}={v}' for k, v in changed.items())}") from err
            raise
    return model.eval(), cfg


# --- registered models and blocks: one import per module (add one line for a new file) ---
import archs  # noqa: E402,F401  (2D backbones)
from archs import c3d  # noqa: E402,F401
from archs import i3d  # noqa: E402,F401
from archs import r2plus1d  # noqa: E402,F401
from archs import r3d  # noqa: E402,F401
from archs import resnet3d  # noqa: E402,F401
from archs import stts  # noqa: E402,F401
from archs import torchvision_video  # noqa: E402,F401
from ops import consensus  # noqa: E402,F401
from ops import fcn  # noqa: E402,F401
from ops import mlp  # noqa: E402,F401
from ops import rnn  # noqa: E402,F401
from ops import sttnet  # noqa: E402,F401
from ops import trn  # noqa: E402,F401
from selfsupervision import cpc_trans  # noqa: E402,F401
from selfsupervision import vtdl  # noqa: E402,F401
