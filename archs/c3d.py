"""C3D (Tran et al. 2015, "Learning Spatiotemporal Features with 3D Convolutional Networks").

Eight 3x3x3 convolutions and three fully connected layers on 112x112 clips; the layout of the
STTS project's baseline (78,409,573 parameters with 101 classes). Two of the reference's slips
are fixed without changing the parameter count: every conv is followed by a ReLU (the reference
has none after conv5b and some others), and the fc activations use ordinary Dropout (the
reference's Dropout3d on a [B, 4096] tensor drops whole samples instead of units).
From scratch the conv weights start as the reference starts them: kaiming-normal with
`kaiming_normal_`'s defaults (fan_in, gain sqrt(2)); the conv biases and the three fully
connected layers keep PyTorch's default initialisation, as there.
"""
import torch.nn as nn

from ops.model_api import STTS_PROJECT, clip_input_spec, clip_spec_from_cfg
from ops.registry import MODELS


def conv_relu(cin, cout):
    return [nn.Conv3d(cin, cout, kernel_size=3, padding=1), nn.ReLU(inplace=True)]


class C3D(nn.Module):
    """[B, 3, T, H, W] -> logits [B, num_class]; any T >= 8 and H, W >= 32 (the last pool is adaptive).

    `forward_features` gives the global average of conv5b (512-d), the feature VTDL uses; the
    classifier itself reads the (1, 4, 4) max-pooled conv5b map through fc6 and fc7.
    """

    feature_dim = 512

    def __init__(self, num_class, dropout=0.5, input_spec=None):
        super().__init__()
        self.num_class = num_class
        self.input_spec = input_spec or clip_input_spec(112, 128)
        self.features = nn.Sequential(
            *conv_relu(3, 64), nn.MaxPool3d((1, 2, 2), (1, 2, 2)),
            *conv_relu(64, 128), nn.MaxPool3d(2, 2),
            *conv_relu(128, 256), *conv_relu(256, 256), nn.MaxPool3d(2, 2),
            *conv_relu(256, 512), *conv_relu(512, 512), nn.MaxPool3d(2, 2),
            *conv_relu(512, 512), *conv_relu(512, 512))
        self.pool = nn.AdaptiveMaxPool3d((1, 4, 4))
        self.fc6 = nn.Linear(512 * 16, 4096)
        self.fc7 = nn.Linear(4096, 4096)
        self.fc = nn.Linear(4096, num_class)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight)

    def forward_features(self, x):
        """[B, 3, T, H, W] -> [B, 512]: conv5b averaged over time and space."""
        return self.features(x).mean(dim=(2, 3, 4))

    def forward(self, x):
        x = self.pool(self.features(x)).flatten(1)
        x = self.dropout(self.relu(self.fc6(x)))
        x = self.dropout(self.relu(self.fc7(x)))
        return self.fc(x)


@MODELS.register("c3d", role="whole", defaults=dict(STTS_PROJECT, dropout=0.5))
def c3d(cfg):
    return C3D(cfg["num_class"], dropout=cfg["dropout"], input_spec=clip_spec_from_cfg(cfg))
