"""Spatio-temporal blocks (ops/mlp.py, ops/trn.py, ops/rnn.py, ops/fcn.py) inside the TSN wrapper:
shapes for any K and backbone, every parameter trained, deterministic evaluation, dropout 0."""
import math

import pytest
import torch

from ops.models import BACKBONES, CONSENSUS, build_model
from ops.policies import build_param_groups
from ops.trn import EVAL_RELATIONS
from ops.tsn import TSN
from opts import default_config

BLOCKS = ["MLP", "TRN", "TRNmultiscale", "RNN_TANH", "RNN_RELU", "LSTM", "GRU", "BLSTM", "FCN", "FCN3D"]
NUM_CLASS = 5


MAP_BLOCKS = {"FCN3D"}


def make_tsn(block, k, dropout=0.5, partial_bn=True):
    """TSN on resnet18 through build_model, the path main.py takes (block options from the cfg)."""
    torch.manual_seed(0)
    return build_model(default_config(model="tsn", arch="resnet18", num_class=NUM_CLASS, num_segments=k,
                                      consensus_type=block, img_feature_dim=32, dropout=dropout,
                                      partial_bn=partial_bn, crop_size=32))


def frames(b, k, size=32):
    return torch.randn(b, k, 3, size, size)


def test_every_block_is_registered():
    assert set(BLOCKS) <= set(CONSENSUS.names())
    for block in BLOCKS:
        net = CONSENSUS.create(block, num_segments=3, in_dim=8, num_class=NUM_CLASS, img_feature_dim=4)
        assert getattr(net, "needs_maps", False) == (block in MAP_BLOCKS)


def block_input(block, b, k, channels=64):
    """What the block gets from TSN: pooled features [B, K, F], or maps [B, K, F, h, w] for FCN3D."""
    return torch.randn(b, k, channels, 2, 2) if block in MAP_BLOCKS else torch.randn(b, k, channels)


@pytest.mark.parametrize("arch", ["resnet18", "BNInception", "squeezenet1_1"])
def test_blocks_give_logits_in_tsn_for_any_k_and_backbone(arch):
    backbone = BACKBONES.create(arch)
    for k in (3, 8, 16):
        x = frames(1, k)
        for block in BLOCKS:
            model = TSN(backbone, NUM_CLASS, k, consensus=block, img_feature_dim=32, crop_size=32).eval()
            with torch.no_grad():
                assert model(x).shape == (1, NUM_CLASS), (arch, k, block)


@pytest.mark.parametrize("block", BLOCKS)
def test_block_trains_and_evaluates_deterministically_for_any_k(block):
    for k in (1, 3, 8, 16):
        torch.manual_seed(k)
        net = CONSENSUS.create(block, num_segments=k, in_dim=64, num_class=NUM_CLASS, img_feature_dim=16)
        x = block_input(block, 2, k)
        net.train()(x).sum().backward()
        with torch.no_grad():
            first, second = net.eval()(x), net(x)
        assert first.shape == (2, NUM_CLASS) and torch.equal(first, second), (block, k)


@pytest.mark.parametrize("block", BLOCKS)
def test_every_block_parameter_is_in_one_group_and_trained(block):
    torch.manual_seed(0)
    net = CONSENSUS.create(block, num_segments=4, in_dim=64, num_class=NUM_CLASS, img_feature_dim=16).double()
    groups = build_param_groups(net, lr=1.0, weight_decay=0.0, fc_lr5=True)
    grouped = [id(p) for g in groups for p in g["params"]]
    assert len(grouped) == len(set(grouped)) and set(grouped) == {id(p) for p in net.parameters()}
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    optimizer = torch.optim.SGD(groups, lr=1.0)
    x, y = block_input(block, 4, 4).double(), torch.arange(4) % NUM_CLASS
    torch.nn.functional.cross_entropy(net.train()(x), y).backward()
    optimizer.step()
    unchanged = [name for name, p in net.named_parameters() if torch.equal(p.detach(), before[name])]
    assert not unchanged, f"{block}: not updated by a step: {unchanged}"


def test_whole_tsn_model_is_grouped_and_trained():
    model = make_tsn("FCN3D", 3, partial_bn=False).double()
    groups = build_param_groups(model, lr=1.0, weight_decay=0.0)
    grouped = [id(p) for g in groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(groups, lr=1.0)
    torch.nn.functional.cross_entropy(model.train()(frames(2, 3).double()), torch.tensor([0, 1])).backward()
    optimizer.step()
    assert not any(torch.equal(p.detach(), b) for p, b in zip(model.parameters(), before))


def test_recurrent_weights_and_both_blstm_directions_are_grouped():
    model = make_tsn("BLSTM", 3)
    groups = build_param_groups(model, lr=0.1, weight_decay=1e-4)
    names = {id(p): n for n, p in model.named_parameters()}
    grouped = {names[id(p)]: g["name"] for g in groups for p in g["params"]}
    for name in ("weight_ih_l0", "weight_hh_l0", "weight_ih_l0_reverse", "weight_hh_l0_reverse"):
        assert grouped[f"consensus.rnn.{name}"] == "normal_weight"
    for name in ("bias_ih_l0", "bias_hh_l0", "bias_ih_l0_reverse", "bias_hh_l0_reverse"):
        assert grouped[f"consensus.rnn.{name}"] == "normal_bias"


def test_fcn_batch_norms_are_grouped():
    model = make_tsn("FCN", 3)
    groups = {g["name"]: {id(p) for p in g["params"]} for g in build_param_groups(model, 0.1, 1e-4)}
    bns = [m for m in model.consensus.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 5
    assert all(id(bn.weight) in groups["bn"] and id(bn.bias) in groups["bn"] for bn in bns)


def test_tsn_eval_is_deterministic_with_trn_multiscale():
    model = make_tsn("TRNmultiscale", 8).eval()
    x = frames(1, 8)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def test_trn_multiscale_draws_relations_in_training_only():
    torch.manual_seed(0)
    block = CONSENSUS.create("TRNmultiscale", num_segments=8, in_dim=16, num_class=NUM_CLASS, img_feature_dim=8)
    x = torch.randn(2, 8, 16)
    with torch.no_grad():
        first, second = block.train()(x), block(x)
        assert torch.equal(block.eval()(x), block(x))
    assert not torch.allclose(first, second)


@pytest.mark.parametrize("k", [4, 16])
def test_trn_multiscale_eval_relations_are_fixed_ordered_subsets(k):
    block = CONSENSUS.create("TRNmultiscale", num_segments=k, in_dim=16, num_class=NUM_CLASS, img_feature_dim=8)
    assert block.scales == list(range(k, 1, -1))
    for s in block.scales:
        relations = getattr(block, f"eval_relations_{s}")
        assert relations.shape == (min(math.comb(k, s), EVAL_RELATIONS), s)
        assert len({tuple(r) for r in relations.tolist()}) == len(relations)
        assert (relations.diff(dim=1) > 0).all() and relations.min() >= 0 and relations.max() < k
    again = CONSENSUS.create("TRNmultiscale", num_segments=k, in_dim=16, num_class=NUM_CLASS, img_feature_dim=8)
    assert all(torch.equal(getattr(block, f"eval_relations_{s}"), getattr(again, f"eval_relations_{s}"))
               for s in block.scales)


def test_trn_multiscale_eval_matches_training_when_every_relation_is_drawn():
    """K = 3: training draws all 3 pairs of scale 2, so eval (3 x their mean) must give the same logits."""
    torch.manual_seed(0)
    block = CONSENSUS.create("TRNmultiscale", num_segments=3, in_dim=16, num_class=NUM_CLASS, img_feature_dim=8)
    x = torch.randn(2, 3, 16)
    with torch.no_grad():
        assert torch.allclose(block.train()(x), block.eval()(x), atol=1e-6)


@pytest.mark.parametrize("block", ["MLP", "FCN3D"])
def test_dropout_zero_trains(block):
    """Dropout lives in TSN (pooled features) or in the block that takes maps (FCN3D); 0 removes it."""
    model = make_tsn(block, 3, dropout=0.0)
    assert not any(isinstance(m, torch.nn.Dropout) for m in (model.dropout, getattr(model.consensus, "dropout", None)))
    out = model.train()(frames(2, 3))
    out.sum().backward()
    assert out.shape == (2, NUM_CLASS)


@pytest.mark.parametrize("dim", [7, 100, 256])
def test_fcn_takes_any_feature_size_and_keeps_negative_logits(dim):
    torch.manual_seed(0)
    block = CONSENSUS.create("FCN", num_segments=5, in_dim=64, num_class=NUM_CLASS, img_feature_dim=dim)
    out = block.eval()(torch.randn(3, 5, 64) * 1000)
    assert out.shape == (3, NUM_CLASS) and (out < 0).any()


def test_new_fc_init():
    for name in BLOCKS:
        block = CONSENSUS.create(name, num_segments=3, in_dim=512, num_class=NUM_CLASS, img_feature_dim=64)
        w, b = block.new_fc.weight, block.new_fc.bias
        assert w.shape[:2] == (64, 512) and abs(w.std().item() - 0.001) < 2e-4 and (b == 0).all(), name


def test_block_options_come_from_the_run_configuration():
    cfg = default_config(model="tsn", arch="resnet18", num_class=NUM_CLASS, num_segments=3, consensus_type="LSTM",
                         rnn_hidden_size=48, rnn_layer=2, rnn_dropout=0.1, img_feature_dim=32, dropout=0.3,
                         crop_size=64)
    rnn = build_model(cfg).consensus.rnn
    assert (rnn.hidden_size, rnn.num_layers, rnn.dropout) == (48, 2, 0.1)
    blstm = build_model(dict(cfg, consensus_type="BLSTM")).consensus
    assert blstm.rnn.hidden_size == 24 and blstm.rnn.bidirectional and blstm.classifier.in_features == 48
    fcn3d = build_model(dict(cfg, consensus_type="FCN3D")).consensus
    assert fcn3d.needs_maps and fcn3d.dropout.p == 0.3
