"""MLP consensus (Köpüklü et al. 2021, "Comparative Analysis of CNN-based Spatiotemporal
Reasoning in Videos"): the K projected frame features, concatenated in time order, go through a
two-layer perceptron, so the classifier sees which feature came when (unlike averaging)."""
import torch.nn as nn

from ops.model_api import make_new_fc
from ops.registry import CONSENSUS


class MLP(nn.Module):
    """[B, K, F] -> new_fc -> [B, K*D] -> ReLU -> Linear(K*D, 512) -> Dropout(0.2) -> ReLU -> Linear(512, C)."""

    def __init__(self, num_segments, in_dim, num_class, img_feature_dim=256, hidden=512):
        super().__init__()
        self.new_fc = make_new_fc(in_dim, img_feature_dim)
        self.classifier = nn.Sequential(
            nn.ReLU(), nn.Linear(num_segments * img_feature_dim, hidden), nn.Dropout(0.2), nn.ReLU(),
            nn.Linear(hidden, num_class))

    def forward(self, x):
        return self.classifier(self.new_fc(x).flatten(1))


@CONSENSUS.register("MLP")
def mlp(num_segments, in_dim, num_class, img_feature_dim):
    return MLP(num_segments, in_dim, num_class, img_feature_dim)
