"""Fully convolutional consensus blocks (Köpüklü et al. 2021), which the paper finds stronger than
recurrent ones. `FCN` convolves the [K, D] matrix of projected frame features as a one-channel
image; `FCN3D` keeps the spatial maps and convolves [D, K, h, w] in 3D."""
import torch
import torch.nn as nn

from ops.model_api import make_new_fc
from ops.registry import CONSENSUS


def conv_bn_relu(conv, bn, cin, cout, stride):
    return nn.Sequential(conv(cin, cout, 3, stride=stride, padding=1, bias=False), bn(cout), nn.ReLU())


class FCN(nn.Module):
    """[B, K, F] -> new_fc -> [B, 1, K, D] -> ReLU -> five 3x3 conv-BN-ReLU with stride (1, 2)
    (1->64->64->128->128->256; time kept, feature axis halved, so any D works) -> 1x1 conv to C
    -> average over what is left -> [B, C]. The logits are not passed through a ReLU."""

    def __init__(self, num_segments, in_dim, num_class, img_feature_dim=256, widths=(64, 64, 128, 128, 256)):
        super().__init__()
        self.new_fc = make_new_fc(in_dim, img_feature_dim)
        layers = [nn.ReLU()]
        for cin, cout in zip((1,) + widths[:-1], widths):
            layers.append(conv_bn_relu(nn.Conv2d, nn.BatchNorm2d, cin, cout, (1, 2)))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Conv2d(widths[-1], num_class, 1)

    def forward(self, x):
        x = self.features(self.new_fc(x).unsqueeze(1))
        return self.classifier(x).mean(dim=(-2, -1))


class FCN3D(nn.Module):
    """Spatial maps [B, K, C_backbone, h, w] -> dropout -> per-frame 1x1 conv to D (`new_fc`) -> ReLU
    (as the published module) -> [B, D, K, h, w] -> three 3x3x3 conv-BN-ReLU with stride (2, 1, 1) (D->64->128->256) ->
    1x1x1 conv to C -> global average pool -> [B, C]."""

    needs_maps = True

    def __init__(self, num_segments, in_dim, num_class, img_feature_dim=256, dropout=0.5, widths=(64, 128, 256)):
        super().__init__()
        # TSN applies its dropout to pooled features; a block on maps applies it here.
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.new_fc = nn.Conv2d(in_dim, img_feature_dim, 1)
        nn.init.normal_(self.new_fc.weight, 0, 0.001)
        nn.init.zeros_(self.new_fc.bias)
        self.features = nn.Sequential(*(conv_bn_relu(nn.Conv3d, nn.BatchNorm3d, cin, cout, (2, 1, 1))
                                        for cin, cout in zip((img_feature_dim,) + widths[:-1], widths)))
        self.classifier = nn.Conv3d(widths[-1], num_class, 1)

    def forward(self, maps):
        b, k = maps.shape[:2]
        x = torch.relu(self.new_fc(self.dropout(maps.flatten(0, 1))))
        x = x.view(b, k, *x.shape[1:]).transpose(1, 2)
        return self.classifier(self.features(x)).mean(dim=(-3, -2, -1))


@CONSENSUS.register("FCN")
def fcn(num_segments, in_dim, num_class, img_feature_dim):
    return FCN(num_segments, in_dim, num_class, img_feature_dim)


@CONSENSUS.register("FCN3D")
def fcn3d(num_segments, in_dim, num_class, img_feature_dim, dropout=0.5):
    return FCN3D(num_segments, in_dim, num_class, img_feature_dim, dropout)
