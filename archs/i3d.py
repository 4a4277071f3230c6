"""I3D (Carreira & Zisserman 2017, "Quo Vadis, Action Recognition?"): Inception-v1 inflated to 3D.

Every 2D kernel of GoogLeNet (with BatchNorm) becomes a 3D kernel: the 7x7 stem conv a 7x7x7
with stride 2, the 3x3 convs 3x3x3; the first two max pools do not pool time, the later ones
do. One of VTDL's backbones (fine-tuned on 64 frames at 224 px); the feature is Mixed_5c
averaged over time and space, 1024-d. TensorFlow's SAME padding is approximated by symmetric
padding of k // 2, so a 64 x 224 x 224 clip gives an 8 x 7 x 7 Mixed_5c map.
"""
import torch
import torch.nn as nn

from ops.model_api import clip_input_spec, clip_spec_from_cfg
from ops.registry import MODELS

# Inception-style inputs in [-1, 1].
INCEPTION_SPEC = dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), bgr=False, value_scale=1.0)


class Unit3D(nn.Sequential):
    """Conv3d (no bias) -> BatchNorm (eps 1e-3, as the original) -> ReLU."""

    def __init__(self, cin, cout, kernel=1, stride=1):
        kernel = (kernel,) * 3 if isinstance(kernel, int) else kernel
        super().__init__(nn.Conv3d(cin, cout, kernel, stride=stride, padding=tuple(k // 2 for k in kernel), bias=False),
                         nn.BatchNorm3d(cout, eps=1e-3), nn.ReLU(inplace=True))


class Mixed(nn.Module):
    """Inception module: 1x1x1 | 1x1x1 -> 3x3x3 | 1x1x1 -> 3x3x3 | 3x3x3 max pool -> 1x1x1, concatenated."""

    def __init__(self, cin, b0, b1_mid, b1, b2_mid, b2, b3):
        super().__init__()
        self.branch0 = Unit3D(cin, b0)
        self.branch1 = nn.Sequential(Unit3D(cin, b1_mid), Unit3D(b1_mid, b1, 3))
        self.branch2 = nn.Sequential(Unit3D(cin, b2_mid), Unit3D(b2_mid, b2, 3))
        self.branch3 = nn.Sequential(nn.MaxPool3d(3, stride=1, padding=1), Unit3D(cin, b3))

    def forward(self, x):
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], dim=1)


class I3D(nn.Module):
    """[B, 3, T, H, W] -> logits [B, num_class] (T and H, W divisible by 8 and 32 are cleanest)."""

    feature_dim = 1024

    def __init__(self, num_class, dropout=0.5, input_spec=None):
        super().__init__()
        self.num_class = num_class
        self.input_spec = input_spec or clip_input_spec(224, 256, **INCEPTION_SPEC)
        self.features = nn.Sequential(
            Unit3D(3, 64, 7, stride=2),                       # Conv3d_1a_7x7
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),    # MaxPool3d_2a_3x3
            Unit3D(64, 64),                                   # Conv3d_2b_1x1
            Unit3D(64, 192, 3),                               # Conv3d_2c_3x3
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),    # MaxPool3d_3a_3x3
            Mixed(192, 64, 96, 128, 16, 32, 32),              # Mixed_3b -> 256
            Mixed(256, 128, 128, 192, 32, 96, 64),            # Mixed_3c -> 480
            nn.MaxPool3d(3, 2, 1),                            # MaxPool3d_4a_3x3
            Mixed(480, 192, 96, 208, 16, 48, 64),             # Mixed_4b -> 512
            Mixed(512, 160, 112, 224, 24, 64, 64),            # Mixed_4c -> 512
            Mixed(512, 128, 128, 256, 24, 64, 64),            # Mixed_4d -> 512
            Mixed(512, 112, 144, 288, 32, 64, 64),            # Mixed_4e -> 528
            Mixed(528, 256, 160, 320, 32, 128, 128),          # Mixed_4f -> 832
            nn.MaxPool3d(2, 2),                               # MaxPool3d_5a_2x2
            Mixed(832, 256, 160, 320, 32, 128, 128),          # Mixed_5b -> 832
            Mixed(832, 384, 192, 384, 48, 128, 128))          # Mixed_5c -> 1024
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(1024, num_class)

    def forward_features(self, x):
        """[B, 3, T, H, W] -> [B, 1024]: Mixed_5c averaged over time and space."""
        return self.features(x).mean(dim=(2, 3, 4))

    def forward(self, x):
        return self.fc(self.dropout(self.forward_features(x)))


@MODELS.register("i3d", role="whole", defaults=dict(dropout=0.5, crop_size=224, frame_stride=1, clip_sampling="consecutive"))
def i3d(cfg):
    return I3D(cfg["num_class"], dropout=cfg["dropout"],
               input_spec=clip_spec_from_cfg(cfg, 224, 256, **INCEPTION_SPEC))
