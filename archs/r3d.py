"""R3D-18 (Tran et al. 2018): ResNet-18 with full 3x3x3 convolutions, one of VTDL's backbones.

torchvision's definition is used as it is, so its module names (stem, layer1..4, fc) stay and a
Kinetics state dict saved from torchvision loads unchanged from a local file (--tune_from).
"""
import torch.nn as nn
from torchvision.models.video.resnet import BasicBlock, BasicStem, Conv3DSimple, VideoResNet

from ops.model_api import clip_input_spec, clip_spec_from_cfg
from ops.registry import MODELS


class R3D18(VideoResNet):
    """[B, 3, T, H, W] -> logits [B, num_class]; `forward_features` -> [B, 512] (global average pool)."""

    feature_dim = 512

    def __init__(self, num_class, dropout=0.0, input_spec=None):
        super().__init__(BasicBlock, [Conv3DSimple] * 4, [2, 2, 2, 2], BasicStem, num_classes=num_class)
        self.num_class = num_class
        self.input_spec = input_spec or clip_input_spec(112, 128)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward_features(self, x):
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return self.avgpool(x).flatten(1)

    def forward(self, x):
        return self.fc(self.dropout(self.forward_features(x)))


@MODELS.register("r3d18", role="whole", defaults=dict(dropout=0.0, crop_size=112, frame_stride=1, clip_sampling="consecutive"))
def r3d18(cfg):
    return R3D18(cfg["num_class"], dropout=cfg["dropout"], input_spec=clip_spec_from_cfg(cfg))
