"""torchvision's video classifiers as clip models, so their Kinetics-400 weights can be fine-tuned.

Each is torchvision's own network, built with the run's class count: its parameter names are
torchvision's, so a state dict saved from torchvision (e.g. `r2plus1d_18(weights=...).state_dict()`)
loads by --tune_from with only the 400-class classifier left out. The input normalisation and
sizes are those of the weights' transforms in torchvision (R3D/MC3/R(2+1)D: 112 px crops of
frames resized to 128 px, Kinetics statistics; S3D, MViT, Swin3D: 224 px of 256 px).
MViT's positional tables are fixed at 16 frames of 224 px (--clip_len 16 --crop_size 224).
"""
import torchvision.models.video as tv_video

from ops.model_api import KINETICS_SPEC, clip_spec_from_cfg
from ops.registry import MODELS

MVIT_SPEC = dict(mean=(0.45, 0.45, 0.45), std=(0.225, 0.225, 0.225), bgr=False, value_scale=1.0)
SWIN_SPEC = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), bgr=False, value_scale=1.0)

# registered name -> (crop size, short side, normalisation)
VIDEO_MODELS = {
    "r3d_18": (112, 128, KINETICS_SPEC),
    "mc3_18": (112, 128, KINETICS_SPEC),
    "r2plus1d_18": (112, 128, KINETICS_SPEC),
    "s3d": (224, 256, KINETICS_SPEC),
    "mvit_v1_b": (224, 256, MVIT_SPEC),
    "mvit_v2_s": (224, 256, MVIT_SPEC),
    "swin3d_t": (224, 256, SWIN_SPEC),
    "swin3d_s": (224, 256, SWIN_SPEC),
    "swin3d_b": (224, 256, SWIN_SPEC),
}


def torchvision_video(name, cfg):
    """torchvision.models.video.<name> with cfg's class count; [B, 3, T, H, W] -> logits."""
    crop, scale, norm = VIDEO_MODELS[name]
    model = getattr(tv_video, name)(weights=None, num_classes=cfg["num_class"])
    model.num_class = cfg["num_class"]
    model.input_spec = clip_spec_from_cfg(cfg, crop, scale, **norm)
    return model


def _register(name):
    crop = VIDEO_MODELS[name][0]
    MODELS.register(name, role="whole", defaults=dict(crop_size=crop, frame_stride=1, clip_sampling="consecutive"))(
        lambda cfg: torchvision_video(name, cfg))


for _name in VIDEO_MODELS:
    _register(_name)
