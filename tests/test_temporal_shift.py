"""TSM's temporal shift: exact channel movement both ways in time, zero padding, the in-place
variant equal to it, TSM's parameter names, temporal pooling, and training and testing through
main.py / test_models.py."""
import json

import pytest
import torch
from torchvision.models.resnet import BasicBlock

import main
import test_models
from ops import temporal_shift as shift_module
from archs.resnet import ResNetFeatures, resnet18
from ops.models import build_model
from ops.temporal_shift import TemporalPool, TemporalShift, make_temporal_shift, temporal_shift, temporal_shift_
from tests.test_main import base_args, make_colour_dataset
from tools import model_info
from tools.model_info import count_parameters, run_config

N, T, C, DIV = 2, 4, 16, 8
FOLD = C // DIV


def frames():
    """[N * T, C, 1, 1] with every value distinct (value = 1 + index)."""
    return (torch.arange(N * T * C, dtype=torch.float) + 1).view(N * T, C, 1, 1)


def test_first_fold_moves_backward_second_forward_rest_stays_zero_at_the_ends():
    x = frames()
    out = temporal_shift(x, T, DIV).view(N, T, C)
    x = x.view(N, T, C)
    for t in range(T):
        back = x[:, t + 1, :FOLD] if t + 1 < T else torch.zeros(N, FOLD)
        fwd = x[:, t - 1, FOLD:2 * FOLD] if t > 0 else torch.zeros(N, FOLD)
        assert torch.equal(out[:, t, :FOLD], back)
        assert torch.equal(out[:, t, FOLD:2 * FOLD], fwd)
        assert torch.equal(out[:, t, 2 * FOLD:], x[:, t, 2 * FOLD:])
    # nothing crosses from one clip of the batch to the next
    assert not set(out[0].flatten().tolist()) & set(x[1].flatten().tolist())


def test_gradient_moves_the_opposite_way():
    x = frames().requires_grad_()
    g = torch.randn(N * T, C, 1, 1)
    (temporal_shift(x, T, DIV) * g).sum().backward()
    grad, g = x.grad.view(N, T, C), g.view(N, T, C)
    assert torch.equal(grad[:, 1:, :FOLD], g[:, :-1, :FOLD]) and not grad[:, 0, :FOLD].any()
    assert torch.equal(grad[:, :-1, FOLD:2 * FOLD], g[:, 1:, FOLD:2 * FOLD]) and not grad[:, -1, FOLD:2 * FOLD].any()
    assert torch.equal(grad[:, :, 2 * FOLD:], g[:, :, 2 * FOLD:])


def test_a_batch_that_is_not_whole_clips_is_refused():
    with pytest.raises(ValueError, match="not a multiple of 4"):
        temporal_shift(torch.zeros(6, C, 1, 1), T, DIV)


def shapes():
    """(clips, segments, channels, shift_div): random ones, and the edges (one frame, fold 0 from
    shift_div > C, C not divisible by shift_div, 2 folds covering every channel)."""
    g = torch.Generator().manual_seed(0)
    drawn = [tuple(int(torch.randint(lo, hi, (), generator=g)) for lo, hi in ((1, 4), (1, 9), (1, 40), (2, 12)))
             for _ in range(12)]
    return drawn + [(2, 1, 16, 8), (2, 4, 5, 8), (3, 3, 13, 4), (1, 5, 6, 2)]


@pytest.mark.parametrize("n, t, c, div", shapes())
def test_inplace_shift_equals_the_out_of_place_one_forward_and_backward(n, t, c, div):
    x = torch.randn(n * t, c, 3, 2, requires_grad=True)
    out = temporal_shift(x, t, div)
    y = x.clone()
    before = y.data_ptr()
    shifted = temporal_shift_(y, t, div)
    assert shifted is y and y.data_ptr() == before  # written into its input
    assert torch.equal(shifted, out)
    g = torch.randn_like(out)
    assert torch.equal(torch.autograd.grad(shifted, x, g)[0], torch.autograd.grad(out, x, g)[0])


def test_inplace_shift_of_a_tensor_autograd_still_needs_is_an_error():
    """As in `block` placement with gradients on: the block input is a ReLU output that the ReLU's
    backward reads. Shifting it in place must fail, not give the gradient of shifted values."""
    x = torch.randn(N * T, C, 2, 2, requires_grad=True)
    y = torch.relu(x)
    temporal_shift_(y, T, DIV)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()
    with pytest.raises(RuntimeError, match="leaf Variable"):
        temporal_shift_(torch.randn(N * T, C, 1, 1, requires_grad=True), T, DIV)


def test_block_place_evaluates_identically_with_the_inplace_shift(monkeypatch):
    """`block` placement shifts in place exactly when gradients are off; the outputs are those of
    the out-of-place shift. `blockres` never shifts in place."""
    calls = []

    def counted(*a):
        calls.append(a[1])
        return temporal_shift_(*a)

    monkeypatch.setattr(shift_module, "temporal_shift_", counted)
    cfg = run_config(["--model", "tsn", "--arch", "resnet18", "--shift", "--shift_place", "block",
                      "--num_segments", "4", "--shift_div", "4"], num_class=3)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    shifts = [m for m in model.modules() if isinstance(m, TemporalShift)]
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        inplace = model(x)
    assert calls == [4] * 8
    with_grad = model(x)
    assert len(calls) == 8  # gradients on: out of place
    for m in shifts:
        m.inplace = False
    with torch.no_grad():
        out_of_place = model(x)
    assert len(calls) == 8
    assert torch.equal(inplace, out_of_place) and torch.equal(with_grad, out_of_place)
    blockres = build_model(dict(cfg, shift_place="blockres"))
    assert not any(m.inplace for m in blockres.modules() if isinstance(m, TemporalShift))


def test_blockres_keeps_tsm_parameter_names_and_imagenet_weights(tmp_path):
    plain = resnet18()
    torch.save(plain.state_dict(), tmp_path / "r18.pth")
    cfg = run_config(["--arch", "resnet18", "--shift", "--num_segments", "4", "--pretrain", "imagenet",
                      "--pretrained_weights", str(tmp_path / "r18.pth")], num_class=5)
    model = build_model(cfg)
    keys = set(model.state_dict())
    assert "base_model.layer1.0.conv1.net.weight" in keys and "base_model.layer4.1.conv1.net.weight" in keys
    assert "base_model.layer1.0.conv2.weight" in keys and "base_model.layer1.0.conv1.weight" not in keys
    # ImageNet weights are loaded under torchvision's names before the convolutions are wrapped
    assert torch.equal(model.base_model.layer3[1].conv1.net.weight, plain.layer3[1].conv1.weight)
    shifts = [m for m in model.modules() if isinstance(m, TemporalShift)]
    assert len(shifts) == 8 and all(m.num_segments == 4 and m.shift_div == 8 for m in shifts)
    assert count_parameters(model) == count_parameters(build_model(dict(cfg, shift=False)))


def test_block_place_wraps_whole_blocks_and_deep_resnets_shift_every_other_block():
    net = make_temporal_shift(resnet18(), 4, place="block")
    assert "layer2.1.net.conv1.weight" in net.state_dict()
    deep = make_temporal_shift(ResNetFeatures(BasicBlock, [1, 1, 23, 1]), 4)
    assert [isinstance(b.conv1, TemporalShift) for b in deep.layer3[:4]] == [True, False, True, False]
    with pytest.raises(ValueError, match="ResNet"):
        make_temporal_shift(torch.nn.Sequential(), 4)


def test_shift_lets_a_frame_see_its_neighbours():
    """Without the shift each frame's features depend on that frame only; with it (eight shifted
    blocks, each reaching one frame further) on every frame of its clip, and never on another clip."""
    torch.manual_seed(0)
    for shift in (False, True):
        net = resnet18().eval()
        if shift:
            make_temporal_shift(net, T)
        x = torch.randn(N * T, 3, 32, 32)
        y = x.clone()
        y[2] += 1  # clip 0, frame 2
        with torch.no_grad():
            changed = (net(x) - net(y)).abs().flatten(1).amax(1) > 1e-6
        expected = [True] * T + [False] * T if shift else \
            [False, False, True, False, False, False, False, False]
        assert changed.tolist() == expected


def test_temporal_pool_halves_the_frames_and_keeps_tsm_names():
    cfg = run_config(["--model", "tsn", "--arch", "resnet18", "--shift", "--temporal_pool", "--num_segments", "4",
                      "--consensus_type", "TRN"], num_class=3)
    model = build_model(cfg).eval()
    assert isinstance(model.base_model.layer2, TemporalPool)
    assert "base_model.layer2.net.0.conv1.net.weight" in model.state_dict()
    assert [model.base_model.layer1[0].conv1.num_segments, model.base_model.layer3[0].conv1.num_segments] == [4, 2]
    assert model.out_segments == 2
    with torch.no_grad():
        assert model.extract_maps(torch.randn(3, 4, 3, 32, 32)).shape[:2] == (3, 2)
        assert model(torch.randn(3, 4, 3, 32, 32)).shape == (3, 3)


@pytest.mark.parametrize("flags, message", [
    (["--arch", "tinynet", "--shift"], "ResNet backbones"),
    (["--arch", "resnet18", "--temporal_pool"], "give --shift as well"),
    (["--arch", "resnet18", "--shift", "--temporal_pool", "--num_segments", "3"], "even --num_segments"),
    (["--arch", "resnet18", "--shift", "--shift_div", "1"], "--shift_div must be >= 2"),
])
def test_bad_shift_options_are_one_line_errors(flags, message, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main.main(["custom", "RGB", "--num_class", "2", *flags])
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_trains_and_tests_with_the_shift(tmp_path):
    """A shifted ResNet-18 trains through main.py (named as TSM names it), and test_models.py
    rebuilds it from the checkpoint with the shift in place."""
    root = tmp_path / "data"
    lists = make_colour_dataset(str(root), per_class=(3, 1), frames=4, size=(32, 32))
    main.main(base_args(root, lists, tmp_path, 1, "--shift", "--shift_div", "4", "-j", "0"))
    run = "TSN_custom_RGB_resnet18_shift4_blockres_avg_segment2_e1"
    ckpt = tmp_path / "ckpt" / run / "ckpt.pth"
    state = torch.load(ckpt, weights_only=True)
    assert "base_model.layer1.0.conv1.net.weight" in state["model"]
    assert state["config"]["shift"] and state["config"]["shift_div"] == 4
    save = tmp_path / "test"
    test_models.main(["--weights", str(ckpt), "--test_list", lists[1], "-j", "0", "--no_progress",
                      "--save_dir", str(save)])
    assert json.loads((save / "metrics.json").read_text())["num_videos"] == 4


def test_model_info_counts_a_shifted_model_like_the_plain_one(capsys):
    """The shift moves data and adds neither parameters nor FLOPs; the label says it is there."""
    flags = ["--model", "tsn", "--arch", "resnet18", "--num_segments", "8"]
    model_info.main(flags)
    plain = capsys.readouterr().out
    model_info.main(flags + ["--shift"])
    shifted = capsys.readouterr().out
    assert "| tsn (resnet18 + shift 1/8 blockres, avg) | 8x3x224x224 | 11,228,325 | 29.02 |" in shifted
    assert shifted.replace(" + shift 1/8 blockres", "") == plain
