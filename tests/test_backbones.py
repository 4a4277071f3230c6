"""2D backbones of archs/bninception.py, archs/squeezenet.py, archs/mobilenet.py: structure, feature
sizes, the input each expects, and loading a local weights file."""
import pytest
import torch
import torch.nn as nn

from ops.model_api import load_pretrained
from ops.models import BACKBONES, build_model
from ops.transforms import DeviceNormalize
from opts import default_config

# Input channels of each BN-Inception module, worked out by hand from the branch widths of the
# paper's table (1x1 + 3x3 + double 3x3 + pool branch; stride-2 modules pass their input through):
# 3a 64+64+96+32 = 256, 3b 64+96+96+64 = 320, 3c 160+96+320 = 576, 4a 224+96+128+128 = 576,
# 4b 192+128+128+128 = 576, 4c 160+160+160+128 = 608, 4d 96+192+192+128 = 608,
# 4e 192+256+608 = 1056, 5a 352+320+224+128 = 1024, 5b 1024.
MODULE_INPUTS = {"3a": 192, "3b": 256, "3c": 320, "4a": 576, "4b": 576, "4c": 576, "4d": 608, "4e": 608,
                 "5a": 1056, "5b": 1024}
# Parameters of the released BN-Inception ImageNet model without its Linear(1024, 1000): 11,295,240
# in all (the figure torchsummary-style counts give for that model) minus 1,025,000 for the classifier.
BNINCEPTION_PARAMS = 11_295_240 - 1_025_000


def test_bninception_layers_follow_the_paper_table():
    net = BACKBONES.create("BNInception")
    convs = {name: m for name, m in net.named_modules() if isinstance(m, nn.Conv2d)}
    bns = {name: m for name, m in net.named_modules() if isinstance(m, nn.BatchNorm2d)}
    # 3 stem convs, 7 per ordinary module (8 of them), 5 per stride-2 module (3c, 4e)
    assert len(convs) == 3 + 7 * 8 + 5 * 2 and set(bns) == {f"{name}_bn" for name in convs}
    assert (convs["conv1_7x7_s2"].kernel_size, convs["conv1_7x7_s2"].stride) == ((7, 7), (2, 2))
    assert convs["conv2_3x3"].out_channels == 192
    for module, cin in MODULE_INPUTS.items():
        first = f"inception_{module}_3x3_reduce"
        assert convs[first].in_channels == cin, module
        stride2 = module in ("3c", "4e")
        assert (f"inception_{module}_1x1" in convs) == (not stride2)
        assert (f"inception_{module}_pool_proj" in convs) == (not stride2)
        assert convs[f"inception_{module}_3x3"].stride == ((2, 2) if stride2 else (1, 1))
        assert convs[f"inception_{module}_double_3x3_2"].stride == ((2, 2) if stride2 else (1, 1))
    assert sum(p.numel() for p in net.parameters()) == BNINCEPTION_PARAMS


def test_bninception_gives_1024_channels_at_7x7_for_224_and_works_at_odd_sizes():
    net = BACKBONES.create("BNInception").eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 224, 224)).shape == (1, 1024, 7, 7)
        # 112 px makes 7x7 maps before module 4e, where Caffe's pooling would not match the convs
        assert net(torch.randn(1, 3, 112, 112)).shape == (1, 1024, 4, 4)
    assert net.feature_dim == 1024


@pytest.mark.parametrize("arch, dim, side", [("squeezenet1_1", 512, 13), ("mobilenet_v2", 1280, 7)])
def test_torchvision_backbones_feature_maps(arch, dim, side):
    net = BACKBONES.create(arch).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 224, 224)).shape == (1, dim, side, side)
    assert net.feature_dim == dim


def test_input_specs_reach_the_normalisation():
    cfg = default_config(model="tsn", num_class=4, num_segments=2, crop_size=64)
    bgr = build_model(dict(cfg, arch="BNInception")).input_spec
    assert (bgr.bgr, bgr.value_scale, bgr.mean, bgr.std) == (True, 255, (104.0, 117.0, 128.0), (1.0, 1.0, 1.0))
    frames = torch.tensor([10, 20, 30], dtype=torch.uint8).expand(1, 1, 1, 2, 2, 3)
    x = DeviceNormalize.from_spec(bgr)(frames)
    assert x[0, 0, 0, :, 0, 0].tolist() == [30 - 104, 20 - 117, 10 - 128]
    for arch in ("squeezenet1_1", "mobilenet_v2"):
        spec = build_model(dict(cfg, arch=arch)).input_spec
        assert (spec.bgr, spec.value_scale, spec.mean) == (False, 1.0, (0.485, 0.456, 0.406))


@pytest.mark.parametrize("arch", ["BNInception", "squeezenet1_1", "mobilenet_v2"])
def test_local_weights_file_loads_by_layer_name(arch, tmp_path):
    torch.manual_seed(1)
    source = BACKBONES.create(arch)
    state = dict(source.state_dict(), **{"classifier.weight": torch.zeros(3)})
    path = tmp_path / f"{arch}.pth"
    torch.save(state, path)
    net = BACKBONES.create(arch, pretrained_weights=str(path))
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in source.state_dict().items())
    torch.save({"conv_other.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="does not fit"):
        load_pretrained(BACKBONES.create(arch), str(path))


def test_bninception_uses_the_released_model_layer_names():
    keys = set(BACKBONES.create("BNInception").state_dict())
    assert {"conv1_7x7_s2.weight", "conv1_7x7_s2.bias", "conv1_7x7_s2_bn.running_var",
            "inception_3c_double_3x3_2.weight", "inception_5b_pool_proj_bn.bias"} <= keys
