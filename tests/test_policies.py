"""Parameter groups: every parameter in exactly one group, with the multipliers of conventions.md,
and the groups really drive the optimizer."""
import copy

import pytest
import torch
import torch.nn as nn

from ops.models import BACKBONES
from ops.policies import build_param_groups, merge_equal_groups, regroup_optimizer_state
from ops.tsn import TSN

LR, WD = 0.1, 1e-3


def group_of(groups):
    """{id(param): group} after checking that no parameter is in two groups."""
    owner = {}
    for g in groups:
        for p in g["params"]:
            assert id(p) not in owner, "a parameter is in two groups"
            owner[id(p)] = g
    return owner


def lr_wd(owner, param):
    g = owner[id(param)]
    return round(g["lr"] / LR, 6), round(g["weight_decay"] / WD, 6)


@pytest.mark.parametrize("fc_lr5", [False, True])
def test_tsn_every_parameter_once_with_expected_multipliers(fc_lr5):
    model = TSN(BACKBONES.create("resnet18"), num_class=4, num_segments=2, partial_bn=True)
    owner = group_of(build_param_groups(model, LR, WD, fc_lr5=fc_lr5))
    assert set(owner) == {id(p) for p in model.parameters()}
    base = model.base_model
    assert owner[id(base.conv1.weight)]["name"] == "first_conv_weight" and lr_wd(owner, base.conv1.weight) == (1, 1)
    assert lr_wd(owner, base.layer2[0].conv1.weight) == (1, 1)
    assert lr_wd(owner, base.layer2[0].downsample[1].weight) == (1, 0)
    assert lr_wd(owner, base.bn1.bias) == (1, 0)
    fc = model.consensus.new_fc
    assert lr_wd(owner, fc.weight) == ((5, 1) if fc_lr5 else (1, 1))
    assert lr_wd(owner, fc.bias) == ((10, 0) if fc_lr5 else (2, 0))


def test_first_conv_bias_rnn_weights_and_tied_parameters():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 4, 3, bias=True)
            self.conv = nn.Conv2d(4, 4, 1, bias=True)
            self.rnn = nn.LSTM(4, 5, num_layers=2, bidirectional=True)
            self.norm = nn.LayerNorm(4)
            self.a = nn.Linear(4, 4)
            self.b = nn.Linear(4, 4)
            self.b.weight = self.a.weight  # tied

    net = Net()
    groups = build_param_groups(net, LR, WD)
    owner = group_of(groups)
    assert set(owner) == {id(p) for p in net.parameters()}
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))
    assert lr_wd(owner, net.stem.weight) == (1, 1) and lr_wd(owner, net.stem.bias) == (2, 0)
    assert lr_wd(owner, net.conv.bias) == (2, 0)
    for name, p in net.rnn.named_parameters():  # recurrent, reverse-direction weights included
        assert lr_wd(owner, p) == ((1, 1) if name.startswith("weight") else (2, 0)), name
    assert lr_wd(owner, net.norm.weight) == (1, 0)


class Gate(nn.Module):
    def __init__(self, policy=None):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(3))
        self.fc = nn.Linear(3, 3)
        if policy is not None:
            self.param_policy = lambda: policy


def test_unmatched_parameter_is_an_error():
    with pytest.raises(ValueError, match=r"scale \(Gate\)"):
        build_param_groups(nn.Sequential(Gate()), LR, WD)


def test_param_policy_named_and_custom_groups():
    net = Gate({"scale": "no_decay"})
    assert lr_wd(group_of(build_param_groups(net, LR, WD)), net.scale) == (1, 0)
    net = Gate({"scale": ("slow", 0.1, 1)})
    owner = group_of(build_param_groups(net, LR, WD))
    assert owner[id(net.scale)]["name"] == "slow" and lr_wd(owner, net.scale) == (0.1, 1)
    with pytest.raises(ValueError, match="unknown group"):
        build_param_groups(Gate({"scale": "nonsense"}), LR, WD)


def test_optimizer_uses_groups_and_every_trainable_parameter_moves():
    torch.manual_seed(0)
    model = TSN(BACKBONES.create("resnet18"), num_class=3, num_segments=2, partial_bn=False, dropout=0)
    groups = build_param_groups(model, LR, WD, fc_lr5=True)
    opt = torch.optim.SGD(groups, lr=LR, momentum=0.9)
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs["lr5_weight"] == pytest.approx(5 * LR) and lrs["lr10_bias"] == pytest.approx(10 * LR)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    loss = nn.functional.cross_entropy(model(torch.randn(4, 2, 3, 32, 32)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    opt.step()
    frozen = [n for n, p in model.named_parameters() if torch.equal(p, before[n])]
    assert frozen == []


def _steps(model, opt, steps, x_shape):
    """The model's parameters after `steps` steps of `opt` on fixed data."""
    torch.manual_seed(1)
    x = torch.randn(x_shape)
    for _ in range(steps):
        opt.zero_grad()
        model(x).square().sum().backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


def _sgd(groups):
    return torch.optim.SGD(groups, lr=LR, momentum=0.9, weight_decay=WD, foreach=False)


def test_merged_groups_train_exactly_as_the_declared_groups():
    torch.manual_seed(0)
    model = TSN(BACKBONES.create("resnet18"), num_class=5, num_segments=2, crop_size=32, dropout=0)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    declared = build_param_groups(model, LR, WD, fc_lr5=True)
    merged = merge_equal_groups(declared)
    assert len(merged) < len(declared)
    assert [g["name"] for g in merged] == ["first_conv_weight+normal_weight", "bn", "lr5_weight", "lr10_bias"]
    owner, merged_owner = group_of(declared), group_of(merged)
    assert owner.keys() == merged_owner.keys()
    for pid, g in owner.items():
        m = merged_owner[pid]
        assert (m["lr"], m["weight_decay"], m["lr_mult"], m["decay_mult"]) == \
            (g["lr"], g["weight_decay"], g["lr_mult"], g["decay_mult"]) and g["name"] in m["name"].split("+")
    separate = _steps(model, _sgd(declared), 3, (2, 2, 3, 32, 32))
    model.load_state_dict(start)
    together = _steps(model, _sgd(merge_equal_groups(build_param_groups(model, LR, WD, fc_lr5=True))), 3,
                      (2, 2, 3, 32, 32))
    assert all(torch.equal(a, b) for a, b in zip(separate, together))


def test_old_separate_group_optimizer_state_resumes_into_merged_groups():
    """A checkpoint written with one optimizer group per declared name continues exactly in a run
    whose optimizer merges them (here the merge reorders the parameters: first conv weight and
    bias, other weights and biases -> weights, biases); a state that is neither layout is refused
    with the names."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    shape = (4, 3, 12, 12)
    declared = build_param_groups(model, LR, WD)
    assert [g["name"] for g in declared] == ["first_conv_weight", "first_conv_bias", "normal_weight",
                                             "normal_bias", "bn"]
    start = {k: v.clone() for k, v in model.state_dict().items()}
    old_opt = _sgd(declared)
    _steps(model, old_opt, 2, shape)
    saved = copy.deepcopy(old_opt.state_dict())
    after_two = {k: v.clone() for k, v in model.state_dict().items()}
    reference = _steps(model, old_opt, 1, shape)   # a third step in the old layout

    model.load_state_dict(after_two)
    new_opt = _sgd(merge_equal_groups(build_param_groups(model, LR, WD)))
    assert [g["name"] for g in new_opt.param_groups] == ["first_conv_weight+normal_weight",
                                                         "first_conv_bias+normal_bias", "bn"]
    new_opt.load_state_dict(regroup_optimizer_state(saved, new_opt))
    state = new_opt.state_dict()
    assert regroup_optimizer_state(state, new_opt) is state
    resumed = _steps(model, new_opt, 1, shape)
    assert all(torch.equal(a, b) for a, b in zip(reference, resumed))

    model.load_state_dict(start)
    other = torch.optim.SGD([dict(params=list(model.parameters()), name="everything")], lr=LR)
    with pytest.raises(ValueError, match="everything"):
        regroup_optimizer_state(saved, other)
