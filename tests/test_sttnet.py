"""STTNet end to end: shapes for any batch and segment count, the output contract, deterministic
evaluation, every new parameter trained and in an optimizer group, the switches, the published
command lines, and a 2-process DDP run of main.py."""
import os
import shlex
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from ops.model_api import as_output
from ops.models import build_model
from opts import build_train_parser, default_config
from ops.policies import build_param_groups
from ops.sttnet import STTNet
from opts import build_train_parser, default_config
from tests.test_main import base_args, make_colour_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_CLASS = 5


def build(**options):
    cfg = default_config(model="sttnet", arch="resnet18", num_class=NUM_CLASS, num_segments=3, crop_size=64,
                         dropout=0.5)
    cfg.update(options)
    torch.manual_seed(0)
    return build_model(cfg)


def clips(b, k, side=64):
    return torch.randn(b, k, 3, side, side, generator=torch.Generator().manual_seed(b * 100 + k))


def new_parts(model):
    return {"aggregator": model.aggregator, "rbrf_head": model.rbrf_head, "rbrc_head": model.rbrc_head}


def test_pretext_accuracy_is_in_percent_like_top1():
    losses, metrics = {}, {}
    labels = torch.tensor([0, 1, 1, 0])
    logits = torch.nn.functional.one_hot(torch.tensor([0, 1, 0, 0]), 2).float()  # 3 of 4 right
    STTNet._pretext(logits, labels, "rbrf", 0.5, losses, metrics)
    assert metrics["rbrf_acc"].item() == 75.0 and set(losses) == {"rbrf"}


@pytest.mark.parametrize("b,k,side", [(1, 1, 64), (2, 3, 64), (3, 5, 32), (4, 16, 64)])
def test_any_batch_and_segments(b, k, side):
    model = build(num_segments=k, crop_size=side)
    x = clips(b, k, side)
    with torch.no_grad():
        out = as_output(model.train()(x))
        assert out["logits"].shape == (b, NUM_CLASS)
        assert set(out["losses"]) == {"rbrc", "rbrf"} and set(out["metrics"]) == {"rbrc_acc", "rbrf_acc"}
        assert all(v.dim() == 0 and torch.isfinite(v) for v in out["losses"].values())
        assert all(0 <= v <= 100 for v in out["metrics"].values())
        logits = model.eval()(x)
    assert torch.is_tensor(logits) and logits.shape == (b, NUM_CLASS)


def test_eval_is_deterministic_and_the_aggregator_sees_untransformed_maps():
    model = build().eval()
    seen = []
    model.aggregator.register_forward_hook(lambda m, args, out: seen.append(args))
    x = clips(2, 3)
    with torch.no_grad():
        torch.manual_seed(1)
        first = model(x)
        torch.manual_seed(2)
        second = model(x)
    assert torch.equal(first, second)
    maps, x_rbrc, x_rbrf = seen[0]
    assert torch.equal(maps, x_rbrc) and torch.equal(maps, x_rbrf)


def test_training_feeds_the_transformed_maps_to_the_aggregator():
    model = build(rbrc_ratio=1.0).train()
    seen = []
    model.aggregator.register_forward_hook(lambda m, args, out: seen.append(args))
    torch.manual_seed(0)
    with torch.no_grad():
        model(clips(8, 3))
    maps, x_rbrc, x_rbrf = seen[0]
    reversed_clips = [b for b in range(8) if not torch.equal(x_rbrc[b], maps[b])]
    assert reversed_clips and all(torch.equal(x_rbrc[b], maps[b].flip(0)) for b in reversed_clips)
    assert not torch.equal(x_rbrf, maps)


def test_clean_query_keeps_the_reversed_maps_for_the_rbrc_head_only():
    model = build(rbrc_ratio=1.0, rbrc_query="clean").train()
    seen, head_inputs = [], []
    model.aggregator.register_forward_hook(lambda m, args, out: seen.append(args))
    model.rbrc_head.register_forward_hook(lambda m, args, out: head_inputs.append(args[0]))
    torch.manual_seed(0)
    with torch.no_grad():
        model(clips(8, 3))
    maps, x_rbrc, x_rbrf = seen[0]
    assert torch.equal(x_rbrc, maps) and not torch.equal(x_rbrf, maps)
    assert not torch.equal(head_inputs[0], maps)   # the pretext still sees reversed clips
    with pytest.raises(ValueError, match="rbrc_query"):
        build(rbrc_query="forward")


def test_one_training_step_trains_every_new_parameter():
    model = build().train()
    parts = new_parts(model)
    before = {(p, n): t.detach().clone() for p, m in parts.items() for n, t in m.named_parameters()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(0)
    out = as_output(model(clips(4, 3)))
    loss = F.cross_entropy(out["logits"], torch.arange(4) % NUM_CLASS) + sum(out["losses"].values())
    loss.backward()
    opt.step()
    for p, m in parts.items():
        for n, t in m.named_parameters():
            assert t.grad is not None and t.grad.abs().sum() > 0, f"{p}.{n} has no gradient"
            assert not torch.equal(t, before[(p, n)]), f"{p}.{n} did not change"
    assert model.aggregator.g1.down.weight is model.aggregator.w6.weight


def test_losses_are_weighted():
    outs = {}
    for lam in (0.0, 0.1, 0.2):
        model = build(lambda_rbrc=lam, lambda_rbrf=lam / 10).train()
        torch.manual_seed(3)
        with torch.no_grad():
            outs[lam] = as_output(model(clips(4, 3)))["losses"]
    for name in ("rbrc", "rbrf"):
        assert outs[0.0][name] == 0 and outs[0.1][name] > 0
        torch.testing.assert_close(outs[0.2][name], 2 * outs[0.1][name])


def test_every_parameter_in_exactly_one_group():
    model = build(scsa_norm=True, scsa_ffn=True, scsa_heads=2)
    groups = build_param_groups(model, lr=0.01, weight_decay=5e-4)
    filed = [id(p) for g in groups for p in g["params"]]
    assert len(filed) == len(set(filed)) == len({id(p) for p in model.parameters()})
    by_name = {g["name"]: {id(p) for p in g["params"]} for g in groups}
    agg = model.aggregator
    for p in (agg.gamma, agg.gamma_ffn, agg.pos_time, agg.pos_space):
        assert id(p) in by_name["no_decay"]


def test_switches_from_the_command_line():
    def model_for(*flags):
        args = build_train_parser().parse_args(["synthetic", "RGB", "--model", "sttnet", "--arch", "resnet18",
                                                "--num_segments", "3", "--crop_size", "32", *flags])
        torch.manual_seed(0)
        return build_model(default_config(**dict(vars(args), num_class=NUM_CLASS)))

    full = model_for()
    assert isinstance(full, STTNet) and all(m is not None for m in new_parts(full).values())
    assert full.lambda_rbrf == 0.01 and full.lambda_rbrc == 0.1 and full.aggregator.gamma.item() == pytest.approx(0.01)
    some = model_for("--no_rbrf", "--rbrc_ratio", "0.25", "--scsa_dim", "64", "--scsa_heads", "4")
    assert some.rbrf_head is None and some.rbrc_ratio == 0.25 and some.aggregator.num_heads == 4
    five = model_for("--rbrf_kinds", "5", "--rbrf_grid", "1")
    assert five.rbrf_head.mlp[-1].out_features == 5
    bare = model_for("--no_aggregator", "--no_rbrf", "--no_rbrc")
    tsn = model_for("--model", "tsn")
    x = clips(2, 3, 32)
    with torch.no_grad():
        assert torch.equal(bare.eval()(x), tsn.eval()(x))     # everything off is TSN
        assert torch.is_tensor(bare.train()(x))


def test_autocast_training_step():
    model = build(crop_size=32).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = as_output(model(clips(2, 3, 32)))
        loss = F.cross_entropy(out["logits"], torch.tensor([0, 1])) + sum(out["losses"].values())
    loss.backward()
    assert torch.isfinite(loss) and model.aggregator.gamma.grad is not None


@pytest.mark.parametrize("script", ["hmdb51_sttnet.sh", "ucf101_sttnet.sh", "something_sttnet.sh"])
@pytest.mark.parametrize("launcher", ["launch", "torchrun"])
def test_published_scripts_parse(script, launcher):
    env = dict(os.environ, DRY_RUN="1", LAUNCHER=launcher, NGPU="2")
    res = subprocess.run(["bash", os.path.join(ROOT, "scripts", script)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    words = shlex.split(res.stdout.strip().splitlines()[-1])
    assert "--nproc_per_node=2" in words and ("torch.distributed.launch" in words) == (launcher == "launch")
    args = build_train_parser().parse_args(words[words.index("main.py") + 1:])
    assert args.model == "sttnet" and args.num_segments == 16 and args.clip_gradient == 20
    assert args.dropout == 0.8 and args.consensus_type == "avg" and args.eval_freq == 1 and args.workers == 4
    assert args.batch_size == (8 if script.startswith("something") else 4)


def test_ddp_two_processes_train_sttnet(tmp_path):
    """torchrun, gloo, 2 processes: main.py trains STTNet and saves a checkpoint that rebuilds."""
    lists = make_colour_dataset(str(tmp_path / "data"), per_class=(2, 1), frames=4, size=(32, 40))
    args = base_args(tmp_path / "data", lists, tmp_path, 1, "--model", "sttnet", "-j", "0", "-b", "2",
                     "--print-freq", "1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           os.path.join(ROOT, "main.py"), *args]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    name = "STTNet_custom_RGB_resnet18_avg_segment2_e1"
    log = (tmp_path / "log" / name / "log.txt").read_text()
    assert "on 2 process(es)" in log and "rbrc_acc" in log and "rbrf_acc" in log
    state = torch.load(tmp_path / "ckpt" / name / "ckpt.pth", weights_only=True)
    model = build_model(state["config"])
    model.load_state_dict(state["model"])
    assert isinstance(model, STTNet) and model.aggregator.g2.down.weight is model.aggregator.w6.weight
