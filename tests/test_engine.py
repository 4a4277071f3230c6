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
    assert forward_input(x, None, keep_views=False).shape == (2, 3, 4)
    assert forward_input(torch.zeros(2, 3, 3, 4), None, keep_views=True).shape == (2, 3, 3, 4)
    with pytest.raises(ValueError, match="one view"):
        forward_input(torch.zeros(2, 3, 3, 4), None, keep_views=False)
    assert torch.equal(forward_input(x, lambda t: t + 1, keep_views=False), torch.ones(2, 3, 4))
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


def test_training_on_frames_the_loader_normalised_is_the_same_run():
    """A CPU run hands the step frames its loader's workers normalised (ops.transforms.place_normalize):
    the same epoch, weight for weight, as normalising uint8 frames in the step."""
    from ops.engine import train_one_epoch
    from ops.models import BACKBONES
    from ops.policies import build_param_groups
    from ops.tsn import TSN
    from ops.transforms import DeviceNormalize

    frames = torch.randint(0, 256, (2, 1, 2, 32, 32, 3), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(1))
    results = []
    for in_step in (True, False):
        torch.manual_seed(0)
        model = TSN(BACKBONES.create("resnet18"), num_class=3, num_segments=2, crop_size=32, partial_bn=False)
        normalize = DeviceNormalize.from_spec(model.input_spec)
        x = frames if in_step else normalize(frames)
        batches = [(x, torch.tensor([0, 2]), torch.tensor([0, 1]), []),
                   (x, torch.tensor([1, 1]), torch.tensor([2, 3]), [])]
        opt = torch.optim.SGD(build_param_groups(model, 0.1, 1e-4), lr=0.1, momentum=0.9)
        stats, _ = train_one_epoch(model, batches, opt, LRSchedule(opt, 0.1, "step", 1, 2),
                                   torch.amp.GradScaler("cpu", enabled=False), normalize if in_step else None,
                                   torch.device("cpu"), 0, 3, progress=False)
        results.append((stats["loss"], model.state_dict()))
    (loss_a, state_a), (loss_b, state_b) = results
    assert loss_a == loss_b and all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def test_epoch_meter_sums_are_exact_however_the_steps_are_folded():
    """Values near 2^20 in steps of 1/8, weighted by batch sizes 1..7: their sums need 31 bits,
    more than float32 holds, so a running float32 sum rounds them; the meter's equal the
    direct float64 sums whether it folds every 3 steps or once."""
    torch.manual_seed(0)
    steps = [(int(n), 2 ** 20 + int(k) / 8, int(k) / 8) for n, k in zip(torch.randint(1, 8, (40,)),
                                                                      torch.randint(0, 64, (40,)))]
    count = sum(n for n, _, _ in steps)
    direct = {"loss": sum(n * v for n, v, _ in steps) / count, "m": sum(n * m for n, _, m in steps) / count}
    assert direct["loss"] != torch.tensor([n * v for n, v, _ in steps], dtype=torch.float32).cumsum(0)[-1].item() / count
    for fold_every in (3, 1000):
        meter = EpochMeter(num_class=2, device=torch.device("cpu"), fold_every=fold_every)
        for n, v, m in steps:
            meter.update(n, torch.tensor(v), {}, {"m": torch.tensor(m)}, None, torch.zeros(n, dtype=torch.long))
        assert meter.read() == direct


class Probe(torch.nn.Module):
    """Logits from the frames' mean colour, an extra loss and a metric: all recomputable from a batch."""

    def __init__(self, num_class):
        super().__init__()
        self.fc = torch.nn.Linear(3, num_class)

    def forward(self, x):
        logits = self.fc(x.mean(dim=(1, 3, 4)))
        return {"logits": logits, "losses": {"aux": logits.square().mean()},
                "metrics": {"margin": logits.max(dim=1).values.mean()}}


def test_logged_values_are_those_of_a_direct_computation():
    """The log lines' running loss and the epoch's averages (loss, its parts, the metric, top-1/5,
    mean class accuracy) equal the same quantities computed directly, batch by batch (lr 0 keeps
    the model fixed, so its outputs can be computed again)."""
    from ops.engine import train_one_epoch
    from ops.model_api import InputSpec
    from ops.transforms import DeviceNormalize

    torch.manual_seed(0)
    num_class, model = 12, Probe(12)
    normalize = DeviceNormalize.from_spec(InputSpec(layout="frames", crop_size=4))
    batches = [(torch.randint(0, 256, (n, 1, 2, 4, 4, 3), dtype=torch.uint8), torch.randint(0, num_class, (n,)),
                torch.arange(n), []) for n in [4] * 6 + [3]]
    opt = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9, weight_decay=1e-4)
    lines = []

    class Log:
        def text(self, line, echo=True):
            lines.append(line)

    stats, _ = train_one_epoch(model, batches, opt, LRSchedule(opt, 0.0, "step", 1, len(batches)),
                               torch.amp.GradScaler("cpu", enabled=False), normalize, torch.device("cpu"), 0,
                               num_class, print_freq=3, progress=False, log=Log())
    sums, count, top1, top5, per_class, running = {}, 0, 0, 0, {}, []
    with torch.no_grad():
        for it, (frames, labels, _, _) in enumerate(batches):
            out = model(normalize(frames)[:, 0])
            parts = {"loss_ce": torch.nn.functional.cross_entropy(out["logits"], labels), **out["losses"]}
            values = {"loss": parts["loss_ce"] + parts["aux"], **parts, **out["metrics"]}
            for name, value in values.items():
                sums[name] = sums.get(name, 0.0) + len(labels) * value.item()
            count += len(labels)
            ranked = out["logits"].argsort(dim=1, descending=True).tolist()
            for row, label in zip(ranked, labels.tolist()):
                top1, top5 = top1 + (row[0] == label), top5 + (label in row[:5])
                per_class.setdefault(label, []).append(row[0] == label)
            if (it + 1) % 3 == 0:
                running.append(f"loss {sums['loss'] / count:.4f} ")
    direct = {name: total / count for name, total in sums.items()}
    direct.update(top1=100 * top1 / count, top5=100 * top5 / count,
                  mean_class_acc=100 * sum(sum(h) / len(h) for h in per_class.values()) / len(per_class))
    assert {name: stats[name] for name in direct} == direct and stats["samples"] == count
    assert len(lines) == len(running) == 2 and all(want in line for want, line in zip(running, lines))
