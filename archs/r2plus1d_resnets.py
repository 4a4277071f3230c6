"""The R(2+1)D ResNets of two model zoos (Tran et al. 2018, "A Closer Look at Spatiotemporal
Convolutions for Action Recognition"), built as those projects build them so that their
Kinetics-400 checkpoints compute here what they computed there.

Both factor a t x d x d convolution into a spatial (1, d, d) and a temporal (t, 1, 1) one with a
BatchNorm and a ReLU between them (`Conv2Plus1d`); they differ in everything else:

- r2plus1d_r34: MMAction2's `ResNet2Plus1d` (depth 34, `Conv2plus1d` convs; configs
  r2plus1d_r34_8xb8-8x8x1 / -32x2x1). Basic blocks (3, 4, 6, 3) of two 3x3x3 factored convs,
  spatial conv first, its middle width M = floor(3 d^2 cin cout / (d^2 cin + 3 cout)) (the 3 is
  written in MMAction2 for every kernel, so the 1x1x1 shortcut convs, also factored, get
  M = floor(3 cin cout / (cin + 3 cout))). Stem: a factored 3x7x7 conv (3 -> M = 83 -> 64,
  spatial stride 2), BN, ReLU, a 1x3x3 max pool of spatial stride 2. Stages 2-4 stride 2 in
  time and space in their first block, whose shortcut is a strided factored 1x1x1 conv + BN.
  The BatchNorms after each conv have eps 1e-3 (the config's SyncBN), the one inside each
  factored conv eps 1e-5 (Conv2plus1d builds its own BN3d); momentum 0.1. Head: global average,
  dropout 0.5, fc 512 -> classes (I3DHead). MMAction2 lists 63.8 M parameters.
- r2plus1d_r50: PyTorchVideo's hub `r2plus1d_r50` (`create_r2plus1d`, R2PLUS1D_16x4_R50).
  Bottleneck blocks (3, 4, 6, 3): 1x1x1 conv, a 3x3x3 factored conv on the inner width with the
  temporal conv first and M = the inner width (create_conv_2plus1d's default), 1x1x1 conv to 4x.
  Stem: 1x7x7 conv of spatial stride 2, BN, ReLU, no pool. Every stage strides 2 in space
  (res2 included) and res4-res5 also 2 in time, in the factored conv's own axes; the shortcut
  of a stage's first block is a 1x1x1 conv of the same stride + BN. All BatchNorms eps 1e-5,
  momentum 0.1. Head: PyTorchVideo averages 4x7x7 (all of a 16 x 224 x 224 clip), drops out
  (0.5), projects 2048 -> classes and applies a softmax; here the average is global (the same at
  that size) and the model returns the logits, the softmax's input, as every model here does.
  PyTorchVideo's model zoo lists 28.11 M parameters.

From scratch each starts as its zoo starts it (archs/resnet3d.msra_init: convs kaiming-normal
fan_out, BatchNorms weight 1 and bias 0, fc normal std 0.01 and bias 0), with one difference:
- r2plus1d_r34: MMAction2's ResNet3d.init_weights and I3DHead.init_weights. Its class default
  zero_init_residual=True is turned off by the r2plus1d_r34 config (zero_init_residual=False),
  so no BatchNorm starts at 0, and its recipe clips the gradient norm at 40 (--gd 40): without
  the clip, a from-scratch run on tiny clips (8 x 32 x 32, batch 2) explodes in its first steps.
- r2plus1d_r50: PyTorchVideo's init_net_weights (style "resnet"): the last BatchNorm of every
  bottleneck (bn3, PyTorchVideo's `block_final_bn`) starts at weight 0.

Parameter names follow torchvision's ResNet (conv1, bn1, layerI.J.convK / bnK / downsample.0-1,
fc), a factored conv's parts being `spatial`, `norm`, `temporal`; ops/checkpoint_formats.py
renames the MMAction2 and PyTorchVideo layouts onto them. Inputs: MMAction2 normalised with
ImageNet statistics, PyTorchVideo with mean 0.45 and std 0.225; both 224-px crops of frames whose
short side is 256.
"""
import torch.nn as nn

from archs.r2plus1d import mid_channels
from archs.resnet3d import SLOWFAST_SPEC, msra_init
from ops.model_api import IMAGENET_SPEC, clip_spec_from_cfg
from ops.registry import MODELS


class Conv2Plus1d(nn.Module):
    """A t x d x d conv as a spatial (1, d, d) and a temporal (t, 1, 1) conv to and from `mid`
    channels, with BN (eps `eps`) and ReLU between them and nothing after; no conv biases.
    `stride` = (temporal, spatial): each conv strides along its own axes. `spatial_first`: the
    order (MMAction2: spatial first; PyTorchVideo: temporal first)."""

    def __init__(self, cin, cout, t, d, mid, stride=(1, 1), spatial_first=True, eps=1e-5):
        super().__init__()
        self.spatial_first = spatial_first
        s_in, s_out = (cin, mid) if spatial_first else (mid, cout)
        t_in, t_out = (mid, cout) if spatial_first else (cin, mid)
        self.spatial = nn.Conv3d(s_in, s_out, (1, d, d), stride=(1, stride[1], stride[1]), padding=(0, d // 2, d // 2),
                                 bias=False)
        self.norm = nn.BatchNorm3d(mid, eps=eps)
        self.relu = nn.ReLU(inplace=True)
        self.temporal = nn.Conv3d(t_in, t_out, (t, 1, 1), stride=(stride[0], 1, 1), padding=(t // 2, 0, 0), bias=False)

    def forward(self, x):
        first, second = (self.spatial, self.temporal) if self.spatial_first else (self.temporal, self.spatial)
        return second(self.relu(self.norm(first(x))))


def mmaction2_conv(cin, cout, t, d, stride=(1, 1)):
    """MMAction2's Conv2plus1d: spatial first, M by the R(2+1)D formula with its temporal 3."""
    return Conv2Plus1d(cin, cout, t, d, mid_channels(cin, cout, d * d, 3), stride, spatial_first=True)


class BasicBlock2Plus1d(nn.Module):
    """MMAction2's BasicBlock3d over Conv2plus1d: factored 3x3x3 conv (stride), BN, ReLU,
    factored 3x3x3 conv, BN, plus the shortcut (a factored 1x1x1 conv + BN when the shape
    changes), then ReLU. BatchNorms eps `eps`."""

    def __init__(self, cin, planes, stride, eps):
        super().__init__()
        self.conv1 = mmaction2_conv(cin, planes, 3, 3, stride)
        self.bn1 = nn.BatchNorm3d(planes, eps=eps)
        self.conv2 = mmaction2_conv(planes, planes, 3, 3)
        self.bn2 = nn.BatchNorm3d(planes, eps=eps)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != (1, 1) or cin != planes:
            self.downsample = nn.Sequential(mmaction2_conv(cin, planes, 1, 1, stride), nn.BatchNorm3d(planes, eps=eps))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck2Plus1d(nn.Module):
    """PyTorchVideo's 2plus1d bottleneck: 1x1x1 conv, BN, ReLU, factored 3x3x3 conv (temporal
    first, M = inner width; stride), BN, ReLU, 1x1x1 conv, BN, plus the shortcut (a 1x1x1 conv of
    the same stride + BN when the shape changes), then ReLU."""

    def __init__(self, cin, inner, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, inner, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(inner)
        self.conv2 = Conv2Plus1d(inner, inner, 3, 3, inner, stride, spatial_first=False)
        self.bn2 = nn.BatchNorm3d(inner)
        self.conv3 = nn.Conv3d(inner, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != (1, 1) or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv3d(cin, cout, 1, stride=(stride[0], stride[1], stride[1]), bias=False), nn.BatchNorm3d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class R2Plus1dResNet(nn.Module):
    """Stem, four stages, global average, dropout, fc: [B, 3, T, H, W] -> logits [B, num_class];
    `forward_features` -> [B, feature_dim]. `stem`: the modules conv1, bn1 and pool (run with a
    ReLU between bn1 and pool); `stages`: the four stages' blocks."""

    def __init__(self, stem, stages, feature_dim, num_class, dropout, input_spec):
        super().__init__()
        self.num_class, self.feature_dim, self.input_spec = num_class, feature_dim, input_spec
        self.conv1, self.bn1, self.maxpool = stem
        self.relu = nn.ReLU(inplace=True)
        for i, blocks in enumerate(stages):
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(feature_dim, num_class)

    def forward_features(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x)))).mean(dim=(2, 3, 4))

    def forward(self, x):
        return self.fc(self.dropout(self.forward_features(x)))


BLOCKS = (3, 4, 6, 3)


def r2plus1d_r34(num_class, dropout, input_spec):
    """MMAction2's R(2+1)D-34 (config r2plus1d_r34.py: conv1_kernel (3, 7, 7), spatial and
    temporal strides (1, 2, 2, 2), BN eps 1e-3)."""
    eps = 1e-3
    stem = (mmaction2_conv(3, 64, 3, 7, (1, 2)), nn.BatchNorm3d(64, eps=eps),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)))
    stages, cin = [], 64
    for i, n in enumerate(BLOCKS):
        planes, stride = 64 * 2 ** i, (1, 1) if i == 0 else (2, 2)
        stages.append([BasicBlock2Plus1d(cin if j == 0 else planes, planes, stride if j == 0 else (1, 1), eps)
                       for j in range(n)])
        cin = planes
    return msra_init(R2Plus1dResNet(stem, stages, 512, num_class, dropout, input_spec))


def r2plus1d_r50(num_class, dropout, input_spec):
    """PyTorchVideo's r2plus1d_r50 (create_r2plus1d's defaults: spatial strides (2, 2, 2, 2),
    temporal strides (1, 1, 2, 2))."""
    stem = (nn.Conv3d(3, 64, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False), nn.BatchNorm3d(64),
            nn.Identity())
    stages, cin = [], 64
    for i, n in enumerate(BLOCKS):
        inner, stride = 64 * 2 ** i, (1 if i < 2 else 2, 2)
        stages.append([Bottleneck2Plus1d(cin if j == 0 else inner * 4, inner, inner * 4, stride if j == 0 else (1, 1))
                       for j in range(n)])
        cin = inner * 4
    return msra_init(R2Plus1dResNet(stem, stages, 2048, num_class, dropout, input_spec),
                     [block.bn3 for blocks in stages for block in blocks])


# name -> (builder, normalisation)
ZOO = {"r2plus1d_r34": (r2plus1d_r34, IMAGENET_SPEC), "r2plus1d_r50": (r2plus1d_r50, SLOWFAST_SPEC)}


ZOO_DEFAULTS = dict(dropout=0.5, crop_size=224, frame_stride=1, clip_sampling="consecutive")


def _register(name):
    @MODELS.register(name, role="whole", defaults=ZOO_DEFAULTS)
    def build(cfg):
        builder, norm = ZOO[name]
        return builder(cfg["num_class"], cfg["dropout"], clip_spec_from_cfg(cfg, 224, 256, **norm))


for _name in ZOO:
    _register(_name)
