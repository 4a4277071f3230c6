"""TSN wrapper, output contract, partial BN, model building, backbones and pretrained loading."""
import pytest
import torch
import torch.nn as nn
import torchvision

from ops.model_api import InputSpec, as_output, load_pretrained
from ops.models import BACKBONES, CONSENSUS, MODELS, build_model
from ops.tsn import TSN
from opts import default_config


def tsn(**kwargs):
    args = dict(num_class=5, num_segments=3, crop_size=32)
    args.update(kwargs)
    return TSN(BACKBONES.create("resnet18"), **args)


@pytest.mark.parametrize("name,dim", [("resnet18", 512), ("resnet50", 2048)])
def test_backbone_returns_maps_and_dims(name, dim):
    net = BACKBONES.create(name).eval()
    maps = net(torch.randn(2, 3, 64, 64))
    assert maps.shape == (2, dim, 2, 2) and net.feature_dim == dim
    assert set(net.input_spec) == {"mean", "std", "bgr", "value_scale"}


def test_tsn_shapes_and_new_fc_init():
    model = tsn().eval()
    assert model(torch.randn(2, 3, 3, 32, 32)).shape == (2, 5)
    fc = model.consensus.new_fc
    assert fc.bias.abs().max() == 0 and 0.0005 < fc.weight.std() < 0.002
    assert isinstance(tsn(dropout=0).dropout, nn.Identity)
    assert model.input_spec == InputSpec(layout="frames", crop_size=32, scale_size=36)


def test_tsn_identity_consensus_and_new_length():
    model = tsn(consensus="identity", new_length=2).eval()
    assert model(torch.randn(2, 6, 3, 32, 32)).shape == (2, 3, 5)
    with pytest.raises(ValueError, match="K=3 x L=2"):
        model(torch.randn(2, 3, 3, 32, 32))


def test_new_length_averages_the_frames_of_a_segment():
    model = tsn(new_length=2).eval()
    x = torch.randn(1, 3, 3, 32, 32)
    doubled = x.repeat_interleave(2, dim=1)  # every segment's two frames are the same frame
    single = tsn(new_length=1)
    single.load_state_dict(model.state_dict())
    assert torch.allclose(single.eval()(x), model(doubled), atol=1e-5)


def test_partial_bn_freezes_all_but_first():
    model = tsn(partial_bn=True).train()
    bns = [m for m in model.base_model.modules() if isinstance(m, nn.BatchNorm2d)]
    first, rest = bns[0], bns[1:]
    assert first.training and first.weight.requires_grad
    assert all(not b.training and not b.weight.requires_grad and not b.bias.requires_grad for b in rest)
    before_first, before_rest = first.running_mean.clone(), rest[-1].running_mean.clone()
    model(torch.randn(2, 3, 3, 32, 32))
    assert not torch.equal(first.running_mean, before_first)
    assert torch.equal(rest[-1].running_mean, before_rest)
    full = tsn(partial_bn=False).train()
    assert all(m.training and m.weight.requires_grad for m in full.modules() if isinstance(m, nn.BatchNorm2d))


@pytest.mark.parametrize("new_length", [1, 2])
def test_per_frame_head_is_the_segment_layout_path_to_the_bit(new_length):
    """Plain TSN with `avg` pools, drops out and classifies every frame flat, then averages the
    segments' scores (TSM's order); a subclass with a maps hook goes through [B, K, C, h, w]. Same
    weights, same dropout draws: the same logits and gradients, bit for bit."""
    class WithHook(TSN):
        def process_maps(self, maps):
            return maps, {}

    torch.manual_seed(0)
    plain = tsn(new_length=new_length, dropout=0.5, partial_bn=False).train()
    hooked = WithHook(BACKBONES.create("resnet18"), num_class=5, num_segments=3, crop_size=32,
                      new_length=new_length, dropout=0.5, partial_bn=False).train()
    hooked.load_state_dict(plain.state_dict())
    assert plain.per_frame_head and not hooked.per_frame_head
    x = torch.randn(2, 3 * new_length, 3, 32, 32)
    results = []
    for model in (plain, hooked):
        torch.manual_seed(1)
        logits = model(x)
        logits.square().sum().backward()
        results.append((logits, [p.grad for p in model.parameters()]))
    (logits_a, grads_a), (logits_b, grads_b) = results
    assert torch.equal(logits_a, logits_b) and all(torch.equal(a, b) for a, b in zip(grads_a, grads_b))
    assert not tsn(consensus="TRN", img_feature_dim=16).per_frame_head


def test_process_maps_hook_adds_losses():
    class WithAux(TSN):
        def process_maps(self, maps):
            return maps * 2, {"losses": {"aux": maps.mean() * 0 + 1.5}, "metrics": {"m": torch.tensor(3.0)}}

    model = WithAux(BACKBONES.create("resnet18"), num_class=4, num_segments=2).eval()
    out = as_output(model(torch.randn(2, 2, 3, 32, 32)))
    assert out["logits"].shape == (2, 4) and out["losses"]["aux"].item() == 1.5 and float(out["metrics"]["m"]) == 3


def test_as_output_contract():
    t = torch.zeros(2, 3)
    assert as_output(t)["logits"] is t and as_output(t)["losses"] == {}
    assert as_output({"losses": {"a": t.sum()}})["logits"] is None
    with pytest.raises(TypeError, match="logits/losses/metrics"):
        as_output({"logit": t})
    with pytest.raises(TypeError):
        as_output((t, t))


def test_build_model_dispatch_and_block_options(monkeypatch):
    for registry in (CONSENSUS, MODELS):  # the entries below vanish with this test (others list every model)
        for table in ("_builders", "_roles", "_defaults"):
            monkeypatch.setattr(registry, table, dict(getattr(registry, table)))

    @CONSENSUS.register("_test_block")
    def _block(num_segments, in_dim, num_class, img_feature_dim, rnn_hidden_size=1):
        block = nn.Linear(in_dim, num_class)
        block.hidden = rnn_hidden_size
        return block

    @MODELS.register("_test_clip", role="whole")
    def _clip(cfg):
        return nn.Linear(1, cfg["num_class"])
    cfg = default_config(model="tsn", arch="resnet18", num_class=3, num_segments=2, consensus_type="_test_block",
                         rnn_hidden_size=77)
    model = build_model(cfg)
    assert isinstance(model, TSN) and model.consensus.hidden == 77
    assert isinstance(build_model(dict(cfg, arch="_test_clip")), nn.Linear)
    with pytest.raises(KeyError, match="unknown model"):
        build_model(dict(cfg, model="nope"))


def test_load_pretrained_torchvision_format(tmp_path):
    reference = torchvision.models.resnet18(weights=None, num_classes=1000)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    model = build_model(default_config(model="tsn", arch="resnet18", num_class=3, num_segments=2, pretrain="imagenet",
                             pretrained_weights=str(path)))
    assert torch.equal(model.base_model.conv1.weight, reference.conv1.weight)
    assert torch.equal(model.base_model.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var)
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match="does not fit"):
        load_pretrained(BACKBONES.create("resnet18"), str(path))
    with pytest.raises(FileNotFoundError):
        load_pretrained(BACKBONES.create("resnet18"), str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="nothing is downloaded"):
        load_pretrained(BACKBONES.create("resnet18"), None)


def test_model_from_checkpoint_rebuilds_the_trained_model(tmp_path):
    from ops.checkpoint import make_checkpoint, save_checkpoint
    from ops.models import model_from_checkpoint

    cfg = default_config(model="tsn", arch="resnet18", num_class=4, num_segments=2, consensus_type="MLP",
                         img_feature_dim=8, crop_size=32, pretrain="imagenet",
                         pretrained_weights=str(tmp_path / "gone.pth"))
    trained = build_model(dict(cfg, pretrain="none")).eval()
    path = save_checkpoint(make_checkpoint(trained, config=cfg), str(tmp_path / "ckpt.pth"))
    model, got = model_from_checkpoint(path)     # the ImageNet file of the run is not read again
    x = torch.randn(1, 2, 3, 32, 32)
    assert not model.training and got["pretrain"] == "none" and torch.equal(model(x), trained(x))
    torch.manual_seed(1)
    fresh, _ = model_from_checkpoint(path, random_init=True)
    assert not torch.equal(fresh(x), trained(x))
    with pytest.raises(ValueError, match="sized for num_segments=2 as trained"):
        model_from_checkpoint(path, {"num_segments": 3})     # the MLP block is sized by K
    ssl = save_checkpoint(make_checkpoint(trained, config=dict(cfg, ssl="cpc_trans")), str(tmp_path / "ssl.pth"))
    with pytest.raises(ValueError, match="self-supervised pre-training checkpoint"):
        model_from_checkpoint(ssl, needs_logits=True)
