"""ResNet-18/34/50/101 (torchvision's definitions) as per-frame feature extractors for TSN.

The torchvision module names are kept (conv1, bn1, layer1..layer4), so torchvision's ImageNet
state dicts load unchanged with `load_pretrained`; the pooling and classifier are dropped because
TSN pools and classifies after the segment-level processing.
"""
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from ops.model_api import IMAGENET_SPEC, load_pretrained
from ops.registry import BACKBONES

class ResNetFeatures(ResNet):
    """torchvision ResNet without avgpool/fc: forward(x [N, 3, H, W]) -> [N, C, H/32, W/32]."""

    def __init__(self, block, layers):
        super().__init__(block, layers)
        del self.avgpool, self.fc
        self.feature_dim = 512 * block.expansion
        self.input_spec = dict(IMAGENET_SPEC)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def _build(block, layers, pretrained_weights):
    net = ResNetFeatures(block, layers)
    if pretrained_weights:
        load_pretrained(net, pretrained_weights)
    return net


@BACKBONES.register("resnet18")
def resnet18(pretrained_weights=None):
    return _build(BasicBlock, [2, 2, 2, 2], pretrained_weights)


@BACKBONES.register("resnet34")
def resnet34(pretrained_weights=None):
    return _build(BasicBlock, [3, 4, 6, 3], pretrained_weights)


@BACKBONES.register("resnet50")
def resnet50(pretrained_weights=None):
    return _build(Bottleneck, [3, 4, 6, 3], pretrained_weights)


@BACKBONES.register("resnet101")
def resnet101(pretrained_weights=None):
    return _build(Bottleneck, [3, 4, 23, 3], pretrained_weights)
