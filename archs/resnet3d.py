"""3D ResNet-50s of the Kinetics model zoos: I3D R50 and SlowOnly R50 (Feichtenhofer et al. 2019,
"SlowFast Networks for Video Recognition": the Slow pathway alone).

ResNet-50 with each bottleneck's first 1x1 conv inflated to t x 1 x 1 where the recipe says so:
- slowonly_r50: stem 1x7x7, t = 1 in res2-res3 and 3 in res4-res5, no temporal striding
  (PySlowFast SLOW_8x8_R50, MMAction2 SlowOnly R50, PyTorchVideo slow_r50);
- i3d_r50: stem 5x7x7, t = 3 in every block of res2, alternately 3 and 1 in res3-res4, 1, 3, 1
  in res5, and a 2x1x1 max pool after res2 (PySlowFast I3D_8x8_R50, PyTorchVideo i3d_r50).
  MMAction2's i3d_r50 has the same weights but also strides its stem and first pool in time,
  so its 32-frame clips reach res3 as 4 frames; here 8-frame clips do.
From scratch both are initialised as PySlowFast (`init_weights`, its two configs setting
ZERO_INIT_FINAL_BN: True) and PyTorchVideo (`init_net_weights`) initialise them: `msra_init`
below, with the last BatchNorm of every bottleneck (bn3) at weight 0.
The parameter names follow torchvision's ResNet (conv1, bn1, layerI.J.convK/bnK/downsample, fc),
which the checkpoint layouts of those projects are renamed to (ops/checkpoint_formats.py).
Inputs are RGB in [0, 1] normalised with mean 0.45 and std 0.225, as in PySlowFast and
PyTorchVideo (MMAction2 trained with ImageNet statistics).
"""
import torch.nn as nn

from ops.model_api import clip_spec_from_cfg
from ops.registry import MODELS

SLOWFAST_SPEC = dict(mean=(0.45, 0.45, 0.45), std=(0.225, 0.225, 0.225), bgr=False, value_scale=1.0)

# name -> (stem temporal kernel, per-stage temporal kernels of each block's conv1, pool after res2)
RECIPES = {
    "slowonly_r50": (1, ((1,) * 3, (1,) * 4, (3,) * 6, (3,) * 3), False),
    "i3d_r50": (5, ((3, 3, 3), (3, 1, 3, 1), (3, 1, 3, 1, 3, 1), (1, 3, 1)), True),
}


def msra_init(model, zero_gamma=()):
    """The from-scratch initialisation of the ResNets of PySlowFast, PyTorchVideo and MMAction2:
    every Conv3d kaiming-normal with fan_out and gain sqrt(2) (Caffe2's MSRAFill), every BatchNorm
    weight 1 and bias 0, except the BatchNorms in `zero_gamma` at weight 0 (the last of each
    residual branch where the recipe says so: every block then starts as the identity), and the
    classifier `fc` normal with std 0.01 and bias 0. Returns `model`."""
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for bn in zero_gamma:
        nn.init.zeros_(bn.weight)
    nn.init.normal_(model.fc.weight, 0, 0.01)
    nn.init.zeros_(model.fc.bias)
    return model


class Bottleneck3d(nn.Module):
    """t x 1 x 1 conv (cin -> planes), 1 x 3 x 3 conv (spatial stride), 1 x 1 x 1 conv (-> 4 planes),
    each with BN, plus the shortcut (a strided 1x1x1 conv + BN when the shape changes)."""

    def __init__(self, cin, planes, t, stride):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, planes, (t, 1, 1), padding=(t // 2, 0, 0), bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != planes * 4:
            self.downsample = nn.Sequential(nn.Conv3d(cin, planes * 4, 1, stride=(1, stride, stride), bias=False),
                                            nn.BatchNorm3d(planes * 4))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet3d50(nn.Module):
    """[B, 3, T, H, W] -> logits [B, num_class]; `forward_features` -> [B, 2048]."""

    feature_dim = 2048

    def __init__(self, stem_t, stage_kernels, pool_after_res2, num_class, dropout=0.5, input_spec=None):
        super().__init__()
        self.num_class, self.input_spec = num_class, input_spec
        self.conv1 = nn.Conv3d(3, 64, (stem_t, 7, 7), stride=(1, 2, 2), padding=(stem_t // 2, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))
        self.pool2 = nn.MaxPool3d((2, 1, 1), (2, 1, 1)) if pool_after_res2 else nn.Identity()
        cin = 64
        for i, kernels in enumerate(stage_kernels):
            planes = 64 * 2 ** i
            blocks = [Bottleneck3d(cin if j == 0 else planes * 4, planes, t, 2 if i > 0 and j == 0 else 1)
                      for j, t in enumerate(kernels)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            cin = planes * 4
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(2048, num_class)
        msra_init(self, [m.bn3 for m in self.modules() if isinstance(m, Bottleneck3d)])

    def forward_features(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.pool2(self.layer1(x))
        return self.layer4(self.layer3(self.layer2(x))).mean(dim=(2, 3, 4))

    def forward(self, x):
        return self.fc(self.dropout(self.forward_features(x)))


def _register(name):
    @MODELS.register(name, role="whole", defaults=dict(dropout=0.5, crop_size=224, frame_stride=1, clip_sampling="consecutive"))
    def build(cfg):
        stem_t, kernels, pool2 = RECIPES[name]
        return ResNet3d50(stem_t, kernels, pool2, cfg["num_class"], dropout=cfg["dropout"],
                          input_spec=clip_spec_from_cfg(cfg, 224, 256, **SLOWFAST_SPEC))


for _name in RECIPES:
    _register(_name)
