"""Learning-rate schedule (per group, per iteration) and the engine's small contracts."""
import pytest
import torch

from ops.engine import EpochMeter, LRSchedule, compute_loss, forward_input


def optimizer():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    return torch.optim.SGD([dict(params=[a], lr=0.1, lr_mult=1), dict(params=[b], lr=0.5, lr_mult=5)], lr=0.1)


def lrs(opt):
    return [round(g["lr"], 8) for g in opt.param_groups]


def test_step_schedule_scales_every_group():
    opt = optimizer()
    s = LRSchedule(opt, 0.1, "step", epochs=10, iters_per_epoch=4, lr_steps=[3, 6])
    s.step(0, 0)
    assert lrs(opt) == [0.1, 0.5]
    s.step(2, 3)
    assert lrs(opt) == [0.1, 0.5]
    s.step(3, 0)
    assert lrs(opt) == [0.01, 0.05]
    s.step(7, 2)
    assert lrs(opt) == [0.001, 0.005]


def test_cosine_with_linear_warmup():
    opt = optimizer()
    s = LRSchedule(opt, 0.1, "cos", epochs=5, iters_per_epoch=10, warmup_epochs=1)
    s.step(0, 0)
    assert lrs(opt)[0] == pytest.approx(0.01)
    s.step(0, 9)
    assert lrs(opt)[0] == pytest.approx(0.1)
    s.step(3, 0)  # half way through the 4 post-warm-up epochs
    assert lrs(opt) == [pytest.approx(0.05), pytest.approx(0.25)]
    s.step(4, 9)
    assert 0 < lrs(opt)[0] < 0.001


def test_plateau_reduces_after_patience_and_round_trips():
    opt = optimizer()
    s = LRSchedule(opt, 0.1, "plateau", epochs=10, iters_per_epoch=1, patience=1)
    for loss in (1.0, 0.9, 0.95, 0.95):
        s.observe(loss)
    s.step(4, 0)
    assert lrs(opt)[0] == pytest.approx(0.01)
    again = LRSchedule(optimizer(), 0.1, "plateau", epochs=10, iters_per_epoch=1, patience=1)
    again.load_state_dict(s.state_dict())
    assert again.factor(5) == s.factor(5)


def test_views_and_loss_contract():
    x = torch.zeros(2, 1, 3, 4)
    assert forward_input(x, keep_views=False).shape == (2, 3, 4)
    assert forward_input(torch.zeros(2, 3, 3, 4), keep_views=True).shape == (2, 3, 3, 4)
    with pytest.raises(ValueError, match="one view"):
        forward_input(torch.zeros(2, 3, 3, 4), keep_views=False)
    logits, labels = torch.randn(3, 4), torch.tensor([0, 1, 2])
    total, parts = compute_loss({"logits": logits, "losses": {"aux": torch.tensor(0.5)}, "metrics": {}}, labels)
    assert torch.allclose(total, torch.nn.functional.cross_entropy(logits, labels) + 0.5)
    assert set(parts) == {"loss_ce", "aux"}
    with pytest.raises(ValueError, match="neither logits nor losses"):
        compute_loss({"logits": None, "losses": {}, "metrics": {}}, labels)


def test_epoch_meter_mean_class_accuracy_over_present_classes():
    meter = EpochMeter(num_class=5, device=torch.device("cpu"))
    logits = torch.eye(5)[[0, 0, 1, 1]]  # predictions 0, 0, 1, 1
    meter.update(4, torch.tensor(1.0), {}, {"m": torch.tensor(2.0)}, logits, torch.tensor([0, 0, 1, 2]))
    meter.update(2, torch.tensor(4.0), {}, {"m": torch.tensor(5.0)}, torch.eye(5)[[3, 3]], torch.tensor([3, 4]))
    assert meter.read() == {"loss": 2.0, "m": 3.0, "top1": pytest.approx(100 * 4 / 6), "top5": 100.0}
    stats = meter.reduce()
    assert stats["top1"] == pytest.approx(100 * 4 / 6) and stats["m"] == 3.0
    assert stats["mean_class_acc"] == pytest.approx(100 * 3 / 5)  # classes 0..4: 1, 1, 0, 1, 0
    with pytest.raises(ValueError, match="must not change"):
        meter.update(1, torch.tensor(1.0), {}, {}, torch.eye(5)[[0]], torch.tensor([0]))


def test_train_and_validate_with_cpu_amp_and_clipping():
    from ops.engine import train_one_epoch, validate
    from ops.models import BACKBONES
    from ops.policies import build_param_groups
    from ops.tsn import TSN
    from ops.transforms import DeviceNormalize

    torch.manual_seed(0)
    model = TSN(BACKBONES.create("resnet18"), num_class=3, num_segments=2, crop_size=32, partial_bn=False)
    frames = torch.randint(0, 256, (2, 1, 2, 32, 32, 3), dtype=torch.uint8)
    batches = [(frames, torch.tensor([0, 2]), torch.tensor([0, 1]), []),
               (None, torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), ["bad: unreadable"]),
               (frames, torch.tensor([1, 1]), torch.tensor([2, 3]), [])]
    opt = torch.optim.SGD(build_param_groups(model, 0.1, 0), lr=0.1)
    schedule = LRSchedule(opt, 0.1, "step", 1, len(batches))
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    normalize = DeviceNormalize.from_spec(model.input_spec)
    before = model.base_model.conv1.weight.detach().clone()
    stats, skipped = train_one_epoch(model, batches, opt, schedule, scaler, normalize, torch.device("cpu"), 0, 3,
                                     amp="bf16", clip_gradient=1.0, progress=False)
    assert skipped == ["bad: unreadable"] and 0 <= stats["top1"] <= 100 and stats["loss"] > 0
    assert not torch.equal(before, model.base_model.conv1.weight)
    stats, _ = validate(model, batches[::2], normalize, torch.device("cpu"), 3, amp="bf16", progress=False)
    assert stats["num_videos"] == 4 and stats["confusion"].sum() == 4
