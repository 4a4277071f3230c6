"""Published command lines resolve to the published system and settings."""
import shlex

import pytest

import main
from opts import build_train_parser, check_args

STTNET_HMDB51 = ("python -m torch.distributed.launch --nproc_per_node=1 main.py hmdb51 RGB --arch resnet50 "
                 "--num_segments 16 --gd 20 --lr 0.00015 --lr_steps 25 35 --epochs 50 --batch-size 4 --dropout 0.8 "
                 "--consensus_type=avg --eval-freq=1 -j 4")


def resolve(command):
    """check_args' view of a command line (everything after main.py)."""
    words = shlex.split(command)
    words = words[words.index("main.py") + 1:] if "main.py" in words else words
    parser = main.one_line_errors(build_train_parser())
    return check_args(parser.parse_args(words), parser)


@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "kinetics.pth"
    path.write_bytes(b"")
    return path


def test_the_published_sttnet_command_trains_sttnet_under_an_sttnet_name():
    args = resolve(STTNET_HMDB51)
    assert args.model == "sttnet"
    assert main.run_name(args) == "STTNet_hmdb51_RGB_resnet50_avg_segment16_e50"
    tsn = resolve(STTNET_HMDB51 + " --model tsn")
    assert main.run_name(tsn) == "TSN_hmdb51_RGB_resnet50_avg_segment16_e50"


@pytest.mark.parametrize("model", ["sttnet", "tsn"])
def test_partial_bn_is_off_without_loaded_weights(model):
    assert resolve(f"{STTNET_HMDB51} --model {model}").partial_bn is False


def test_partial_bn_without_weights_is_an_error(capsys):
    with pytest.raises(SystemExit):
        resolve(STTNET_HMDB51 + " --model tsn --partialbn")
    assert "--partialbn" in capsys.readouterr().err


def test_partial_bn_follows_tsn_on_loaded_weights_and_never_sttnet(weights):
    assert resolve(f"{STTNET_HMDB51} --model tsn --tune_from={weights}").partial_bn is True
    assert resolve(f"{STTNET_HMDB51} --model tsn --tune_from={weights} --npb").partial_bn is False
    # the STTNet reference's switch could never turn on: it trains every BatchNorm from any start
    assert resolve(f"{STTNET_HMDB51} --tune_from={weights}").partial_bn is False
    assert resolve(f"{STTNET_HMDB51} --tune_from={weights} --partialbn").partial_bn is True


def test_the_published_sttnet_command_runs_as_printed(tmp_path):
    """The published STTNet command, run as printed from scratch on tiny generated frames. Added only
    what a tiny run needs: the data flags (custom lists), 32 px crops, one epoch instead of 50,
    -j 0, and the output folders; one process instead of torch.distributed.launch."""
    import torch
    from ops.checkpoint import load_checkpoint
    from tests.test_main import make_colour_dataset

    lists = make_colour_dataset(str(tmp_path / "data"), per_class=(2, 1), frames=4, size=(32, 40))
    tiny = (f" --root_path {tmp_path / 'data'} --train_list {lists[0]} --val_list {lists[1]} --num_class 4 "
            f"--crop_size 32 --scale_size 32 --epochs 1 -j 0 --no_progress "
            f"--root_log {tmp_path / 'log'} --root_model {tmp_path / 'ckpt'}")
    command = STTNET_HMDB51.replace("main.py hmdb51", "main.py custom") + tiny
    words = shlex.split(command)
    main.main(words[words.index("main.py") + 1:])
    state = load_checkpoint(tmp_path / "ckpt" / "STTNet_custom_RGB_resnet50_avg_segment16_e1" / "ckpt.pth")
    assert state["config"]["model"] == "sttnet" and state["config"]["partial_bn"] is False
    weights = state["model"]
    for part in ("aggregator.", "rbrf_head.", "rbrc_head."):
        assert any(k.startswith(part) for k in weights), part
    means = [k for k in weights if k.endswith("running_mean")]
    assert len(means) >= 53
    for key in means:   # from scratch: initial mean 0, variance 1; every BatchNorm trained
        assert not torch.equal(weights[key], torch.zeros_like(weights[key])), key
        var = weights[key.replace("running_mean", "running_var")]
        assert not torch.equal(var, torch.ones_like(var)), key

    words = shlex.split(command + " --model tsn")
    main.main(words[words.index("main.py") + 1:])
    state = load_checkpoint(tmp_path / "ckpt" / "TSN_custom_RGB_resnet50_avg_segment16_e1" / "ckpt.pth")
    assert state["config"]["model"] == "tsn"
    assert not any(k.startswith(("aggregator.", "rbrf_head.", "rbrc_head.")) for k in state["model"])


# --- golden recipes: every published command line of scripts/, resolved as main.py resolves it ---

def script_commands(script, tmp_path, **env):
    """The main.py command lines `scripts/<script>` runs (with PYTHON=echo: printed, not run), each
    as the words after main.py. Checkpoints the scripts look for between stages are faked in OUT."""
    import os
    import subprocess
    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"")
    for stage in ("pre", "probe", "ft"):
        (tmp_path / "out" / stage / "run").mkdir(parents=True, exist_ok=True)
        (tmp_path / "out" / stage / "run" / "ckpt.best.pth").write_bytes(b"")
    env = dict(os.environ, PYTHON="echo", DRY_RUN="1", ROOT=str(tmp_path / "data"), STTNET_DATA=str(tmp_path),
               OUT=str(tmp_path / "out"), LOGS=str(tmp_path / "logs"), PRE=str(weights), **env)
    env = {k: str(weights) if v == "WEIGHTS" else v for k, v in env.items()}
    out = subprocess.run(["bash", os.path.join(main.__file__.rsplit("/", 1)[0], "scripts", script)], env=env,
                         capture_output=True, text=True, timeout=60).stdout
    return [shlex.split(line)[shlex.split(line).index("main.py") + 1:] for line in out.splitlines()
            if "main.py" in shlex.split(line)]


def recipe(words, num_class):
    """(args, model on the meta device, optimizer, schedule) as main.py builds them, the classifier
    taken as new when fine-tuning (x5 / x10), without reading data or weights."""
    import torch
    from ops.models import build_model
    from ops.policies import build_param_groups
    args = resolve(shlex.join(words))
    cfg = dict(vars(args), num_class=num_class, pretrain="none")
    try:
        with torch.device("meta"):
            model = build_model(cfg)
    except NotImplementedError:   # reads a tensor's values while building (TRN's relation draws)
        model = build_model(cfg)
    groups = build_param_groups(model, args.lr, args.weight_decay, fc_lr5=bool(args.tune_from))
    optimizer = main.make_optimizer(args, groups)
    return args, model, optimizer, main.make_schedule(args, optimizer, iters_per_epoch=10)


def lr_at(schedule, epochs):
    lrs = []
    for epoch in epochs:
        schedule.step(epoch, 0)
        lrs.append(schedule.lr)
    return pytest.approx(lrs, rel=1e-6)


def trained_bns(model):
    """(BatchNorms that learn, all BatchNorms)."""
    import torch.nn as nn
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    frozen = set(model.frozen_bns()) if hasattr(model, "frozen_bns") else set()
    learn = [m for m in bns if m not in frozen and all(p.requires_grad for p in m.parameters())]
    return len(learn), len(bns)


def group_lrs(optimizer):
    return {g["name"]: (pytest.approx(g["lr"]), pytest.approx(g["weight_decay"])) for g in optimizer.param_groups}


def val_indices(model, args, num_frames=100):
    import numpy as np
    from ops.data import default_sampler
    sampler = model.make_sampler("val") if hasattr(model, "make_sampler") else \
        default_sampler(vars(args), model.input_spec, "val")
    return sampler, sampler(num_frames, np.random.default_rng(0))


@pytest.mark.parametrize("script, dataset, lr, steps, epochs, batch", [
    ("hmdb51_sttnet.sh", "hmdb51", 1.5e-4, [25, 35], 50, 4),
    ("ucf101_sttnet.sh", "ucf101", 1.5e-4, [25, 35], 50, 4),
    ("something_sttnet.sh", "something", 1.3e-3, [35, 45, 55], 65, 8),
])
def test_sttnet_recipes(tmp_path, script, dataset, lr, steps, epochs, batch):
    (words,) = script_commands(script, tmp_path, TUNE_FROM="WEIGHTS")
    args, model, optimizer, schedule = recipe(words, 51)
    assert main.run_name(args).startswith(f"STTNet_{dataset}_RGB_resnet50_avg_segment16_e{epochs}")
    assert type(model).__name__ == "STTNet" and model.aggregator is not None
    assert (model.lambda_rbrf, model.lambda_rbrc) == (0.01, 0.1)
    assert (args.num_segments, args.batch_size, args.clip_gradient, args.dropout) == (16, batch, 20, 0.8)
    assert args.partial_bn is False and trained_bns(model)[0] == trained_bns(model)[1] >= 53
    groups = group_lrs(optimizer)
    assert groups["lr5_weight"] == (pytest.approx(5 * lr), pytest.approx(5e-4))    # new classifier, fine-tuned
    assert groups["bn"] == (pytest.approx(lr), pytest.approx(0))
    assert schedule.lr_steps == steps
    assert lr_at(schedule, [0, steps[0], epochs - 1]) == [lr, lr * 0.1, lr * 0.1 ** len(steps)]
    sampler, indices = val_indices(model, args)
    assert "TSNSampler(num_segments=16" in repr(sampler) and indices[0, :3].tolist() == [3, 9, 15]


@pytest.mark.parametrize("script, dataset, lr, steps, epochs, env, partial", [
    ("ucf101_tsn.sh", "ucf101", 1e-3, [10, 20], 25, dict(KINETICS_CKPT="WEIGHTS"), True),
    ("hmdb51_tsn.sh", "hmdb51", 1e-3, [10, 20], 25, dict(KINETICS_CKPT="WEIGHTS"), True),
    ("something_tsn.sh", "something", 1e-2, [20, 40], 50, dict(IMAGENET_WEIGHTS="WEIGHTS"), False),
])
def test_tsn_recipes(tmp_path, script, dataset, lr, steps, epochs, env, partial):
    (words,) = script_commands(script, tmp_path, NGPU="8", **env)
    args, model, optimizer, schedule = recipe(words, 51)
    assert main.run_name(args) == f"TSN_{dataset}_RGB_resnet50_avg_segment8_e{epochs}"
    assert type(model).__name__ == "TSN" and args.batch_size == 8      # 8 processes x 8 = 64
    learn, total = trained_bns(model)
    assert args.partial_bn is partial and learn == (1 if partial else total)
    assert group_lrs(optimizer)["normal_weight"] == (pytest.approx(lr), pytest.approx(5e-4))
    assert lr_at(schedule, [0, steps[-1]]) == [lr, lr * 0.01]


@pytest.mark.parametrize("script, block, arch, k, dropout, batch", [
    ("jester_stmodeling.sh", "MLP", "squeezenet1_1", 8, 0.5, 16),
    ("somethingv2_stmodeling.sh", "TRNmultiscale", "BNInception", 16, 0.8, 8),
])
def test_stmodeling_recipes(tmp_path, script, block, arch, k, dropout, batch):
    (words,) = script_commands(script, tmp_path)
    args, model, optimizer, schedule = recipe(words, 27)
    assert type(model).__name__ == "TSN" and type(model.consensus).__name__ == block
    assert (args.arch, args.num_segments, args.dropout, args.batch_size, args.clip_gradient) == (arch, k, dropout,
                                                                                              batch, 20)
    assert args.partial_bn is False                              # from scratch unless PRETRAINED is given
    assert lr_at(schedule, [0, 25, 40]) == [1e-3, 1e-4, 1e-5]


@pytest.mark.parametrize("script", ["ucf101_stts.sh", "hmdb51_stts.sh"])
@pytest.mark.parametrize("arch, dropout", [("stts", 0.0), ("r2plus1d", 0.0), ("c3d", 0.5)])
def test_stts_recipes(tmp_path, script, arch, dropout):
    words = script_commands(script, tmp_path, ARCH=arch)[0]
    args, model, optimizer, schedule = recipe(words, 101)
    assert (args.clip_len, args.clip_sampling, args.dropout, args.batch_size) == (32, "chunks", dropout, 16)
    assert (args.optimizer, args.lr, args.lr_type) == ("adam", 1e-4, "plateau")
    sampler, indices = val_indices(model, args)
    assert repr(sampler).startswith("ChunkSampler(clip_len=32")
    assert indices[0, :4].tolist() == [1, 4, 7, 10] and indices[0, -1] == 98   # spread over all 100 frames


def test_cpc_trans_recipes(tmp_path):
    pre, probe, ft = script_commands("ucf101_cpc_trans.sh", tmp_path)
    args, model, optimizer, schedule = recipe(pre, 101)
    assert main.run_name(args).startswith("cpc_trans_ucf101") and (args.crop_size, args.batch_size) == (128, 32)
    assert lr_at(schedule, [0, 250]) == [1e-3, 1e-4]
    args, model, optimizer, schedule = recipe(probe, 101)
    from ops.policies import linear_probe_parameters
    assert args.train_what == "last" and set(linear_probe_parameters(model, None)) == {
        "bn.weight", "bn.bias", "fc.weight", "fc.bias"}
    args, model, optimizer, schedule = recipe(ft, 101)
    groups = group_lrs(optimizer)
    # the published fine-tuning lowers the encoder and the transformer to lr/10
    assert groups["encoder_weight"] == (pytest.approx(1e-4), pytest.approx(1e-3))
    lowered = {id(p) for g in optimizer.param_groups if g["lr_mult"] == 0.1 for p in g["params"]}
    for name, param in model.named_parameters():
        assert (id(param) in lowered) == name.startswith(("encoder.", "transformer.")), name
    (hmdb_ft,) = script_commands("hmdb51_cpc_trans.sh", tmp_path)[1:]
    assert resolve(shlex.join(hmdb_ft)).lr_steps == [100, 130]


def test_vtdl_recipes(tmp_path):
    pre, ft = script_commands("ucf101_vtdl.sh", tmp_path)
    args, model, optimizer, schedule = recipe(pre, 101)
    assert (args.ssl, args.arch, args.clip_len, args.frame_stride, args.moco_k) == ("vtdl", "i3d", 16, 4, 5000)
    assert args.bn_splits == 4 and model.bn_splits == 4          # one process: shuffling BN emulated
    assert lr_at(schedule, [0, 120, 160, 200]) == [3e-3, 3e-4, 3e-5, 3e-6]
    args, model, optimizer, schedule = recipe(ft, 101)
    assert type(model).__name__ == "I3D" and (args.clip_len, args.dropout, args.batch_size) == (64, 0.5, 4)
    # x0.3 per step: 5e-4 at 0, x0.3 after 10, x0.09 after 20, x0.3^6 after 40
    assert lr_at(schedule, [0, 10, 20, 40]) == [5e-4, 1.5e-4, 4.5e-5, 5e-4 * 0.3 ** 6]
    sampler, indices = val_indices(model, args)
    assert repr(sampler).startswith("ClipSampler(clip_len=64, stride=1")
    ft_hmdb = script_commands("hmdb51_vtdl.sh", tmp_path, NGPU="1")[1]
    assert resolve(shlex.join(ft_hmdb)).lr == 1e-3


# --- one test per defect of the issue ---

def test_chunk_sampler_spreads_the_clip_over_the_whole_video():
    import numpy as np
    from ops.sampling import ChunkSampler
    rng = np.random.default_rng(0)
    train = ChunkSampler(8, "train")(64, rng)[0]
    assert all(8 * t <= i < 8 * (t + 1) for t, i in enumerate(train))     # one frame of each chunk
    assert ChunkSampler(8, "val")(64, rng).tolist() == [[4, 12, 20, 28, 36, 44, 52, 60]]
    assert ChunkSampler(4, "test", num_clips=2)(8, rng).tolist() == [[0, 2, 4, 6], [1, 3, 5, 7]]
    assert ChunkSampler(8, "train")(3, rng).tolist() == [[0, 1, 2, 1, 0, 1, 2, 1]]   # ping-pong when short
    assert ChunkSampler(3, "val")(1, rng).tolist() == [[0, 0, 0]]


def test_model_defaults_apply_only_where_the_user_is_silent(capsys):
    from opts import default_config
    assert default_config(arch="stts")["dropout"] == 0.0 and default_config(arch="c3d")["dropout"] == 0.5
    assert default_config(arch="stts", dropout=0.3)["dropout"] == 0.3
    assert default_config(ssl="vtdl", arch="r3d18")["frame_stride"] == 4
    assert default_config(arch="r3d18")["frame_stride"] == 1
    assert default_config(model="cpc_trans_ft")["crop_size"] == 128
    printed = main.main(["custom", "RGB", "--num_class", "3", "--train_list", "t.txt", "--val_list", "v.txt",
                         "--arch", "stts", "--print_config"])   # the lists are not read
    assert printed["dropout"] == 0.0 and printed["clip_sampling"] == "chunks" and printed["trains"] == "stts"
    assert '"dropout": 0.0' in capsys.readouterr().out


def test_print_config_resolves_the_dataset_and_the_training_crop_without_data(tmp_path, monkeypatch):
    monkeypatch.setenv("STTNET_DATA", str(tmp_path))   # a root with no data in it
    published = main.main(["hmdb51", "RGB", "--arch", "resnet50", "--num_segments", "16", "--print_config"])
    assert (published["num_class"], published["data_format"], published["train_aug"]) == (51, "rawframes", "multiscale")
    assert published["train_list"] == str(tmp_path / "hmdb51" / "hmdb51_train_split_1_rawframes.txt")
    assert main.main(["ucf101", "RGB", "--arch", "stts", "--print_config"])["train_aug"] == "scale_crop"
    assert main.main(["synthetic", "RGB", "--print_config"])["train_aug"] == "center"   # the dataset's own
    assert main.main(["synthetic", "RGB", "--train_aug", "rrc", "--print_config"])["train_aug"] == "rrc"


def test_builders_read_the_configuration_without_fallbacks():
    from opts import default_config
    from ops.models import build_model
    cfg = default_config(model="tsn", arch="tinynet", num_class=3)
    del cfg["dropout"]
    with pytest.raises(KeyError, match="dropout"):
        build_model(cfg)


def test_single_scale_trn_has_the_published_512_bottleneck():
    from ops.registry import CONSENSUS
    trn = CONSENSUS.create("TRN", num_segments=3, in_dim=16, num_class=5, img_feature_dim=8)
    multi = CONSENSUS.create("TRNmultiscale", num_segments=3, in_dim=16, num_class=5, img_feature_dim=8)
    assert trn.g[1].out_features == 512
    assert {m.out_features for g in multi.modules() if isinstance(g, __import__("torch").nn.Sequential)
            for m in g[1:2]} == {256}


def test_fcn3d_applies_relu_before_its_first_3d_convolution():
    import torch
    from ops.registry import CONSENSUS
    block = CONSENSUS.create("FCN3D", num_segments=4, in_dim=6, num_class=3, img_feature_dim=5, dropout=0)
    torch.nn.init.normal_(block.new_fc.weight)
    seen = []
    block.features[0].register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0]))
    block(torch.randn(2, 4, 6, 3, 3))
    assert seen[0].min() >= 0 and seen[0].max() > 0


def test_fc_lr5_only_for_a_classifier_the_checkpoint_did_not_provide(tmp_path):
    import torch
    from opts import default_config
    from ops.checkpoint_formats import load_weights
    from ops.models import build_model
    from ops.policies import classifier_is_new
    source = build_model(default_config(model="tsn", arch="tinynet", num_class=4))
    path = str(tmp_path / "src.pth")
    torch.save({"model": source.state_dict()}, path)
    same = load_weights(build_model(default_config(model="tsn", arch="tinynet", num_class=4)), path)
    other = load_weights(build_model(default_config(model="tsn", arch="tinynet", num_class=5)), path)
    assert not classifier_is_new(same["missing"]) and classifier_is_new(other["missing"])


def test_every_rank_validates_rank_0s_batchnorm_statistics(tmp_path):
    """DDP leaves each rank its own BatchNorm statistics after the last step; validation (and the
    checkpoint) must use one set, rank 0's."""
    import socket
    import torch
    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from tests.ddp_workers import broadcast_bn_worker
    mp.spawn(broadcast_bn_worker, args=(port, str(tmp_path)), nprocs=2)
    assert torch.equal(torch.load(tmp_path / "mean0.pt"), torch.load(tmp_path / "mean1.pt"))


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_the_optimizer_runs_fused_and_a_checkpoint_does_not_change_its_kernels(name):
    """fused kernels on every device, and loading a state saved with other kernels (torch's
    default, or the per-tensor loop of earlier versions) keeps this run's choice."""
    import argparse

    import torch
    args = argparse.Namespace(optimizer=name, lr=0.1, momentum=0.9, weight_decay=1e-4)
    optimizer = main.make_optimizer(args, [dict(params=[torch.nn.Parameter(torch.zeros(2))])])
    assert [(g["fused"], g["foreach"]) for g in optimizer.param_groups] == [(True, None)]
    saved = optimizer.state_dict()
    saved["param_groups"][0].update(fused=None, foreach=False)
    optimizer.load_state_dict(saved)
    assert [(g["fused"], g["foreach"]) for g in optimizer.param_groups] == [(True, None)]


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_a_scaled_step_does_not_read_the_device(name, monkeypatch):
    """GradScaler (fp16) hands a fused optimizer its inf check as a device tensor; with any other
    optimizer it reads found_inf on the host at every step (a sync on a GPU)."""
    import argparse

    import torch
    args = argparse.Namespace(optimizer=name, lr=0.1, momentum=0.9, weight_decay=1e-4)
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = main.make_optimizer(args, [dict(params=[weight])])
    scaler = torch.amp.GradScaler("cpu", init_scale=4.0)
    reads = []
    item = torch.Tensor.item
    monkeypatch.setattr(torch.Tensor, "item", lambda t: reads.append(t) or item(t))
    for _ in range(2):
        scaler.scale((weight * torch.arange(3.0)).sum()).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad()
    assert reads == []
    assert not torch.equal(weight.detach(), torch.ones(3))  # the steps were taken
