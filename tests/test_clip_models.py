"""3D clip models: exact published parameter counts, shapes, features, structure, and learning."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from archs.c3d import C3D
from archs.i3d import I3D
from archs.r2plus1d import FactoredConv, mid_channels
from archs.stts import AttentionGate, STTSConv
from ops.models import MODELS, build_model
from ops.policies import build_param_groups
from opts import default_config
from tools.model_info import count_parameters

CLIP_MODELS = ["c3d", "r2plus1d", "stts", "stts_a", "r3d18", "i3d"]

# clip_models.md: the parameter counts are the test.
PUBLISHED = {
    "c3d": {101: 78_409_573, 51: 78_204_723},
    "r2plus1d": {101: 33_220_990, 51: 33_195_340},
    "stts": {101: 33_208_373, 51: 33_182_723},
    "stts_a": {101: 37_344_339, 51: 37_318_689},
}


def numel(module):
    return sum(p.numel() for p in module.parameters())


def build_on_meta(name, num_class, **cfg):
    """Build without allocating or initialising weights: counting needs no forward."""
    with torch.device("meta"):
        return MODELS.create(name, default_config(arch=name, num_class=num_class, **cfg))


@pytest.mark.parametrize("name", sorted(PUBLISHED))
@pytest.mark.parametrize("num_class", [101, 51])
def test_published_parameter_counts(name, num_class):
    assert numel(build_on_meta(name, num_class)) == PUBLISHED[name][num_class]



# The zoos' own figures for their R(2+1)D ResNets with the Kinetics-400 head, as they round them:
# MMAction2's R(2+1)D README 63.8M, PyTorchVideo's model zoo 28.11M.
@pytest.mark.parametrize("name,millions,digits", [("r2plus1d_r34", 63.8, 1), ("r2plus1d_r50", 28.11, 2)])
def test_zoo_r2plus1d_parameter_counts_match_the_published_figures(name, millions, digits):
    total, _ = count_parameters(build_on_meta(name, 400))
    assert round(total / 1e6, digits) == millions

def test_stts_attention_adds_exactly_the_published_parameters():
    assert numel(build_on_meta("stts_a", 101)) - numel(build_on_meta("stts", 101)) == 4_135_966
    gates = [m for m in build_on_meta("stts_a", 101).modules() if isinstance(m, AttentionGate)]
    assert len(gates) == 30                      # 15 convs of stages 3-5 (shortcuts included) x 2 branches


def test_factored_conv_matches_the_spec_example():
    # clip_models.md: one 64->64 factored conv = 82,944 + 288 + 27,648 + 128 parameters, M = 144.
    assert mid_channels(64, 64, 9, 3) == 144
    conv = FactoredConv(64, 64, 3, 3)
    assert numel(conv) == 82_944 + 288 + 27_648 + 128
    assert [m.kernel_size for m in conv if isinstance(m, nn.Conv3d)] == [(1, 3, 3), (3, 1, 1)]


def test_stems_keep_the_published_bottlenecks():
    r2p1d = build_on_meta("r2plus1d", 10)
    assert r2p1d.stem[0].out_channels == 45       # fixed M = 45, not the formula's 44
    stts = build_on_meta("stts", 10)
    st, ts = stts.stem.branches
    assert st[0].kernel_size == (1, 7, 7) and ts[0].kernel_size == (1, 1, 1)
    assert ts[0].out_channels == 2                # the TS branch's 2-channel bottleneck


def test_stts_branches_factor_in_opposite_orders_and_concatenate():
    conv = STTSConv(16, 32, 3, 3, stride=(2, 2))
    st, ts = conv.branches
    assert [m.kernel_size for m in st if isinstance(m, nn.Conv3d)] == [(1, 3, 3), (3, 1, 1)]
    assert [m.kernel_size for m in ts if isinstance(m, nn.Conv3d)] == [(3, 1, 1), (1, 3, 3)]
    assert conv(torch.randn(2, 16, 8, 12, 12)).shape == (2, 32, 4, 6, 6)


def test_attention_gate_resizes_the_input_to_the_output():
    gate = AttentionGate(8, 6)
    out = gate(torch.randn(2, 8, 4, 10, 10), torch.randn(2, 6, 2, 5, 5))
    assert out.shape == (2, 6, 2, 5, 5)
    with pytest.raises(ValueError, match="even"):
        STTSConv(8, 7, 3, 3)


def test_i3d_built_directly_takes_its_published_input_size():
    spec = I3D(5).input_spec
    assert (spec.crop_size, spec.scale_size, spec.mean) == (224, 256, (0.5, 0.5, 0.5))


def test_c3d_has_a_relu_after_every_conv():
    layers = list(C3D(5).features)
    convs = [i for i, m in enumerate(layers) if isinstance(m, nn.Conv3d)]
    assert len(convs) == 8
    assert all(isinstance(layers[i + 1], nn.ReLU) for i in convs)


@pytest.mark.parametrize("name", CLIP_MODELS)
def test_output_and_feature_shapes(name):
    torch.manual_seed(0)
    model = build_model(default_config(arch=name, num_class=7, dropout=0.5)).eval()
    x = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        logits, feats = model(x), model.forward_features(x)
    assert logits.shape == (2, 7)
    assert feats.shape == (2, model.feature_dim)
    assert model.feature_dim == (1024 if name == "i3d" else 512)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", CLIP_MODELS)
def test_input_spec_and_param_groups(name):
    model = build_on_meta(name, 10)
    spec = model.input_spec
    assert spec.layout == "clip"
    assert (spec.crop_size, spec.scale_size) == ((224, 256) if name == "i3d" else (112, 128))
    resized = build_on_meta(name, 10, crop_size=160).input_spec
    assert (resized.crop_size, resized.scale_size) == (160, 182)   # the default ratio: short side 8/7 of the crop
    groups = build_param_groups(model, 0.1, 1e-4)        # every parameter filed exactly once
    assert sum(p.numel() for g in groups for p in g["params"]) == numel(model)


def test_attention_gates_receive_gradients():
    torch.manual_seed(0)
    model = MODELS.create("stts_a", default_config(arch="stts_a", num_class=3))
    # 32 px: on smaller clips stage 5 is 1 x 1 x 1 and BatchNorm over 2 values leaves dead units
    F.cross_entropy(model(torch.randn(2, 3, 8, 32, 32)), torch.tensor([0, 1])).backward()
    gates = [m for m in model.modules() if isinstance(m, AttentionGate)]
    for gate in gates:
        for name, p in gate.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def moving_square_clips(n, frames=4, size=16, square=4):
    """Label 0: a square crossing left to right; label 1: the same clip played backwards. The
    frames are identical as a set, so only the temporal order tells the classes apart."""
    x = torch.zeros(n, 3, frames, size, size)
    labels = torch.arange(n) % 2
    for i in range(n):
        row = (3 * i) % (size - square)
        for t in range(frames):
            col = t * (size - square) // (frames - 1)
            col = col if labels[i] == 0 else size - square - col
            x[i, :, t, row:row + square, col:col + square] = 1.0
    return x, labels


def test_r3d18_learns_direction_of_motion():
    torch.manual_seed(0)
    model = MODELS.create("r3d18", default_config(arch="r3d18", num_class=2, dropout=0.0)).train()
    x, labels = moving_square_clips(4)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(5):
        loss = F.cross_entropy(model(x), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0], losses


def conv_std_ratios(model, fan):
    """Empirical std of every Conv3d weight with >= 4096 entries over kaiming's sqrt(2 / fan)."""
    ratios = []
    for m in model.modules():
        if isinstance(m, nn.Conv3d) and m.weight.numel() >= 4096:
            receptive = m.weight[0, 0].numel()
            n = receptive * (m.out_channels if fan == "fan_out" else m.in_channels)
            ratios.append(m.weight.std().item() / (2 / n) ** 0.5)
    return ratios


# Zero-initialised BatchNorms: PySlowFast (ZERO_INIT_FINAL_BN: True) and PyTorchVideo
# (block_final_bn) zero each bottleneck's last BN; MMAction2's r2plus1d_r34 config turns its
# zero_init_residual off.
ZOO_FINAL_BN_AT_ZERO = {"r2plus1d_r34": False, "r2plus1d_r50": True, "i3d_r50": True}


@pytest.mark.parametrize("name", sorted(ZOO_FINAL_BN_AT_ZERO))
def test_zoo_resnets_start_as_their_zoos_initialise_them(name):
    torch.manual_seed(0)
    model = MODELS.create(name, default_config(arch=name, num_class=400))
    ratios = conv_std_ratios(model, "fan_out")
    assert len(ratios) > 30 and all(abs(r - 1) < 0.1 for r in ratios), ratios
    bns = {n: m for n, m in model.named_modules() if isinstance(m, nn.BatchNorm3d)}
    assert all((m.bias == 0).all() for m in bns.values())
    at_zero = sorted(n for n, m in bns.items() if (m.weight == 0).all())
    assert all((m.weight == 1).all() for n, m in bns.items() if n not in at_zero)
    expected = sorted(n for n in bns if n.endswith(".bn3")) if ZOO_FINAL_BN_AT_ZERO[name] else []
    assert at_zero == expected and (len(expected) == 16) == ZOO_FINAL_BN_AT_ZERO[name]
    assert abs(model.fc.weight.std().item() / 0.01 - 1) < 0.05 and (model.fc.bias == 0).all()


@pytest.mark.parametrize("name", ["c3d", "r2plus1d"])
def test_stts_project_models_start_as_the_reference_initialises_them(name):
    # the reference calls kaiming_normal_ with its defaults (fan_in) on the conv weights only
    torch.manual_seed(0)
    model = MODELS.create(name, default_config(arch=name, num_class=101))
    ratios = conv_std_ratios(model, "fan_in")
    assert len(ratios) > 7 and all(abs(r - 1) < 0.1 for r in ratios), ratios
    for m in model.modules():
        if isinstance(m, (nn.Conv3d, nn.Linear)) and m.bias is not None:   # PyTorch's default: U(+-1/sqrt(fan_in))
            bound = m.weight[0].numel() ** -0.5
            assert m.bias.abs().max() <= bound and m.bias.abs().max() > bound / 2
        if isinstance(m, nn.BatchNorm3d):
            assert (m.weight == 1).all() and (m.bias == 0).all()
    assert model.fc.weight.abs().max() <= model.fc.in_features ** -0.5


def test_zoo_r2plus1d_stays_finite_in_evaluation_after_a_training_step_from_scratch():
    # On these clips res5 is 2 x 1 x 1 and its BatchNorms see 4 values: after one step from PyTorch's
    # default init the evaluation logits are nan, from the published init without the zero BNs ~1e32.
    torch.manual_seed(0)
    model = MODELS.create("r2plus1d_r50", default_config(arch="r2plus1d_r50", num_class=3, dropout=0.0))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x, labels = torch.randn(2, 3, 8, 32, 32), torch.tensor([0, 1])
    loss = F.cross_entropy(model.train()(x), labels)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        logits = model.eval()(x)
    assert torch.isfinite(logits).all() and logits.abs().max() < 10, logits
