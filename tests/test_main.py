"""main.py end to end on tiny data made here: learning, exact resume, evaluation, one-line errors."""
import json
import os
import re

import numpy as np
import pytest
import torch

import main
from tests.videogen import write_frame_folder

COLOURS = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]])


def make_colour_dataset(root, per_class=(8, 3), frames=6, size=(36, 44), extra_val=0, seed=0):
    """Frame folders whose class is the (noisy) colour of the frames: learnable in a few steps, so
    the tests exercise the engine rather than the model. Returns (train list, val list)."""
    rng = np.random.default_rng(seed)
    lists = []
    for split, n in zip(("train", "val"), per_class):
        lines = []
        for label, colour in enumerate(COLOURS):
            for i in range(n):
                name = f"{split}_{label}_{i}"
                noise = rng.integers(-60, 60, size=(frames, *size, 3))
                write_frame_folder(os.path.join(root, name), np.clip(colour + noise, 0, 255).astype(np.uint8))
                lines.append(f"{name} {frames} {label}\n")
        if split == "val":
            lines += lines[:extra_val]
        path = os.path.join(root, f"{split}.txt")
        with open(path, "w") as f:
            f.writelines(lines)
        lists.append(path)
    return lists


def base_args(root, lists, out, epochs, *extra):
    return ["custom", "RGB", "--root_path", str(root), "--train_list", lists[0], "--val_list", lists[1],
            "--num_class", "4", "--model", "tsn", "--arch", "resnet18", "--num_segments", "2", "--crop_size", "32",
            "--scale_size", "32", "-b", "4", "--epochs", str(epochs), "--lr_steps", "10",
            "--root_log", str(out / "log"), "--root_model", str(out / "ckpt"), "--no_progress", *extra]


def run_dir(out, kind, epochs, suffix=None):
    name = f"TSN_custom_RGB_resnet18_avg_segment2_e{epochs}" + (f"_{suffix}" if suffix else "")
    return out / kind / name


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("colours")
    return root, make_colour_dataset(str(root))


def test_training_loss_falls_and_beats_chance(data, tmp_path):
    root, lists = data
    best = main.main(base_args(root, lists, tmp_path, 3, "--optimizer", "adam", "--lr", "3e-4",
                               "--dropout", "0", "-j", "0", "--print-freq", "4"))
    log = (run_dir(tmp_path, "log", 3) / "log.txt").read_text()
    train_acc = [float(x) for x in re.findall(r"train: loss [\d.]+ top1 ([\d.]+)", log)]
    val_loss = [float(x) for x in re.findall(r"videos: loss ([\d.]+)", log)]
    assert len(train_acc) == len(val_loss) == 3
    assert val_loss[-1] < val_loss[0] and train_acc[-1] > train_acc[0]
    assert best > 50  # chance is 25% on 4 classes
    assert "validation on 12 videos" in log
    folder = run_dir(tmp_path, "log", 3)
    assert (folder / "args.json").is_file() and any(f.startswith("events") for f in os.listdir(folder))
    epochs = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [1, 2, 3]  # one machine-readable line per epoch, as in log.txt
    assert [e["val"]["loss"] for e in epochs] == pytest.approx(val_loss, abs=1e-4)
    assert [e["train"]["top1"] for e in epochs] == pytest.approx(train_acc, abs=0.01)
    assert re.search(r"iter \d+/\d+ .* run eta \d+:\d\d:\d\d", log)
    recorded = json.loads((folder / "args.json").read_text())  # what the figures depend on (README)
    assert recorded["num_threads"] == torch.get_num_threads() and recorded["torch_version"] == torch.__version__
    assert recorded["train_aug"] == "multiscale"  # resolved: a 2D model's published crop, not the flag's None
    # --print_config shows what args.json records (all but the facts of the run itself), reading no data
    printed = json.loads(json.dumps(main.main(base_args(root, lists, tmp_path, 3, "--optimizer", "adam", "--lr", "3e-4",
                                                        "--dropout", "0", "-j", "0", "--print-freq", "4",
                                                        "--print_config"))))
    assert set(recorded) - set(printed) == {"world_size", "num_threads", "torch_version", "trainable", "fc_lr5"}
    shared = set(recorded) & set(printed) - {"print_config"}
    assert {k: printed[k] for k in shared} == {k: recorded[k] for k in shared}
    ckpts = run_dir(tmp_path, "ckpt", 3)
    assert (ckpts / "ckpt.pth").is_file() and (ckpts / "ckpt.best.pth").is_file()
    state = torch.load(ckpts / "ckpt.pth", weights_only=True)
    assert state["epoch"] == 3 and state["config"]["num_class"] == 4 and state["config"]["arch"] == "resnet18"


def subset(path, out, per_class):
    """The first `per_class` lines of every class of a list, as a new list file."""
    seen, keep = {}, []
    for line in open(path):
        label = line.split()[-1]
        seen[label] = seen.get(label, 0) + 1
        if seen[label] <= per_class:
            keep.append(line)
    out.write_text("".join(keep))
    return str(out)


def test_run_eta_counts_the_rest_of_this_epoch_and_the_later_ones():
    from ops.engine import run_eta
    # 2 s per iteration so far, 10 iterations per epoch, at iteration 4 of epoch 3 of 5
    assert run_eta(10.0, 4, 10, 2, 5) == "0:00:50"  # 5 left in this epoch + 2 epochs of 10
    assert run_eta(3.0, 2, 3, 0, 1) == "0:00:00"


def test_one_epoch_resume_one_epoch_equals_two_epochs(data, tmp_path):
    root, lists = data
    lists = [subset(lists[0], tmp_path / "train.txt", 3), subset(lists[1], tmp_path / "val.txt", 1)]
    sgd = ["--lr", "0.01", "--dropout", "0.5", "-j", "1"]
    main.main(base_args(root, lists, tmp_path, 2, *sgd, "--suffix", "straight"))
    main.main(base_args(root, lists, tmp_path, 1, *sgd, "--suffix", "first"))
    first = run_dir(tmp_path, "ckpt", 1, "first") / "ckpt.pth"
    main.main(base_args(root, lists, tmp_path, 2, *sgd, "--suffix", "resumed", "--resume", str(first)))
    straight = torch.load(run_dir(tmp_path, "ckpt", 2, "straight") / "ckpt.pth", weights_only=True)
    resumed = torch.load(run_dir(tmp_path, "ckpt", 2, "resumed") / "ckpt.pth", weights_only=True)
    assert resumed["epoch"] == 2 and straight["model"].keys() == resumed["model"].keys()
    for key, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    for pid, s in straight["optimizer"]["state"].items():
        assert torch.equal(s["momentum_buffer"], resumed["optimizer"]["state"][pid]["momentum_buffer"])
    assert torch.equal(straight["rng"][0]["torch"], resumed["rng"][0]["torch"])

    main.main(base_args(root, lists, tmp_path, 2, *sgd, "--suffix", "resumed", "--auto_resume"))
    log = (run_dir(tmp_path, "log", 2, "resumed") / "log.txt").read_text()
    assert f"resumed from {run_dir(tmp_path, 'ckpt', 2, 'resumed') / 'ckpt.pth'} after epoch 2" in log

    run_log = run_dir(tmp_path, "log", 2, "resumed")
    before = {f: (run_log / f).read_bytes() for f in os.listdir(run_log)}
    stats = main.main(base_args(root, lists, tmp_path, 2, "--evaluate", "-j", "0", "--suffix", "resumed",
                                "--resume", str(run_dir(tmp_path, "ckpt", 2, "resumed") / "ckpt.pth")))
    assert stats["num_videos"] == 4 and 0 <= stats["top1"] <= 100
    # the evaluation has a folder of its own; the training run's log, args and events are untouched
    folder = run_log / "evaluate_ckpt"
    assert (folder / "confusion_val.png").is_file() and (folder / "args.json").is_file()
    assert "validation on 4 videos" in (folder / "log.txt").read_text()
    assert any(f.startswith("events") for f in os.listdir(folder))
    assert {f: (run_log / f).read_bytes() for f in before} == before
    assert sorted(os.listdir(run_log)) == sorted([*before, "evaluate_ckpt"])


def test_compiled_training_matches_eager_and_saves_plain_keys(data, tmp_path):
    """--compile (torch.compile, inductor on the CPU): the same weights as eager training up to float
    rounding, and a checkpoint without the `_orig_mod.` wrapper prefix."""
    root, lists = data
    lists = [subset(lists[0], tmp_path / "train.txt", 2), subset(lists[1], tmp_path / "val.txt", 1)]
    tiny = ["--lr", "0.01", "-j", "0", "--dropout", "0"]
    weights = {}
    for suffix in ("eager", "compiled"):
        compile_flag = ["--compile"] if suffix == "compiled" else []
        args = base_args(root, lists, tmp_path, 1, *tiny, "--suffix", suffix, *compile_flag)
        args[args.index("resnet18")] = "tinynet"
        main.main(args)
        name = f"TSN_custom_RGB_tinynet_avg_segment2_e1_{suffix}"
        weights[suffix] = torch.load(tmp_path / "ckpt" / name / "ckpt.pth", weights_only=True)["model"]
    assert weights["compiled"].keys() == weights["eager"].keys()
    assert not any("_orig_mod" in k for k in weights["compiled"])
    for key, value in weights["eager"].items():
        assert torch.allclose(value.float(), weights["compiled"][key].float(), atol=1e-4), key


def test_fp16_with_a_scaler_and_persistent_prefetching_workers(data, tmp_path):
    """--amp fp16 (autocast + GradScaler, which also runs on the CPU) with one persistent worker
    loading one batch ahead: trains, and the scaler's state is in the checkpoint."""
    root, lists = data
    lists = [subset(lists[0], tmp_path / "train.txt", 2), subset(lists[1], tmp_path / "val.txt", 1)]
    args = base_args(root, lists, tmp_path, 1, "--lr", "0.01", "-j", "1", "--prefetch_factor", "1",
                     "--amp", "fp16")
    args[args.index("resnet18")] = "tinynet"
    main.main(args)
    state = torch.load(tmp_path / "ckpt" / "TSN_custom_RGB_tinynet_avg_segment2_e1" / "ckpt.pth",
                       weights_only=True)
    assert state["scaler"]["scale"] > 0 and state["config"]["amp"] == "fp16"


def test_a_cpu_run_normalises_in_its_loader_workers(data, tmp_path, monkeypatch):
    """On the CPU the loader's workers turn uint8 into float (ops.transforms.place_normalize), so the
    training process never runs DeviceNormalize: every call comes from a worker process."""
    from ops.transforms import DeviceNormalize
    root, lists = data
    lists = [subset(lists[0], tmp_path / "train.txt", 2), subset(lists[1], tmp_path / "val.txt", 1)]
    calls = tmp_path / "normalize_pids.txt"
    forward = DeviceNormalize.forward

    def recorded(self, frames):
        with open(calls, "a") as f:
            f.write(f"{os.getpid()}\n")
        return forward(self, frames)

    monkeypatch.setattr(DeviceNormalize, "forward", recorded)
    args = base_args(root, lists, tmp_path, 1, "--lr", "0.01", "-j", "1")
    args[args.index("resnet18")] = "tinynet"
    main.main(args)
    pids = calls.read_text().split()
    assert pids and str(os.getpid()) not in pids


def test_cuda_flags_follow_tf32_and_deterministic():
    cudnn = torch.backends.cudnn
    saved = torch.get_float32_matmul_precision(), cudnn.allow_tf32, cudnn.benchmark
    try:
        main.set_cuda_flags(tf32=True, deterministic=False)
        assert (torch.get_float32_matmul_precision(), cudnn.allow_tf32, cudnn.benchmark) == ("high", True, True)
        main.set_cuda_flags(tf32=False, deterministic=True)
        assert (torch.get_float32_matmul_precision(), cudnn.allow_tf32, cudnn.benchmark) == ("highest", False, False)
    finally:
        torch.set_float32_matmul_precision(saved[0])
        cudnn.allow_tf32, cudnn.benchmark = saved[1:]


def one_line_error(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        main.main(argv)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1
    return err


def test_errors_are_one_line(data, tmp_path, capsys):
    root, lists = data
    assert "unrecognized arguments: --bogus" in one_line_error(capsys, base_args(root, lists, tmp_path, 1, "--bogus"))
    missing = str(tmp_path / "nope.txt")
    err = one_line_error(capsys, base_args(root, [missing, lists[1]], tmp_path, 1))
    assert "train list file not found" in err and missing in err
    assert "--lr must be > 0" in one_line_error(capsys, base_args(root, lists, tmp_path, 1, "--lr", "0"))
    bad = tmp_path / "bad.txt"
    bad.write_text(open(lists[0]).readline() + "train_0_1 six 0\n")
    err = one_line_error(capsys, base_args(root, [str(bad), lists[1]], tmp_path, 1, "-j", "0"))
    assert f"{bad}:2: malformed line" in err
    err = one_line_error(capsys, base_args(root, lists, tmp_path, 1, "--consensus_type", "trn"))
    assert "--consensus_type 'trn' is not registered" in err and "TRN" in err
    assert "--arch 'resnet5'" in one_line_error(capsys, base_args(root, lists, tmp_path, 1, "--arch", "resnet5"))
    err = one_line_error(capsys, base_args(root, lists, tmp_path, 1, "--train_what", "last"))
    assert "--train_what last (linear probe) needs --tune_from" in err
    err = one_line_error(capsys, base_args(root, lists, tmp_path, 1, "--bn_splits", "5"))   # -b 4
    assert "--bn_splits 5 is more BatchNorm groups than clips per process" in err
    err = one_line_error(capsys, base_args(root, lists, tmp_path, 1, "--evaluate"))
    assert "--evaluate needs the weights to evaluate" in err
    err = one_line_error(capsys, base_args(root, lists, tmp_path, 1, "--evaluate", "--auto_resume"))
    assert "no checkpoint of this run" in err


def test_resumed_fine_tuned_linear_probe_keeps_groups_and_frozen_backbone(data, tmp_path):
    root, lists = data
    main.main(base_args(root, lists, tmp_path, 1, "-j", "0", "--suffix", "src"))
    src = torch.load(run_dir(tmp_path, "ckpt", 1, "src") / "ckpt.pth", weights_only=True)["model"]
    probe_args = ["-j", "0", "--num_class", "5", "--train_what", "last"]
    main.main(base_args(root, lists, tmp_path, 1, *probe_args, "--suffix", "probe",
                        "--tune_from", str(run_dir(tmp_path, "ckpt", 1, "src") / "ckpt.pth")))
    first = torch.load(run_dir(tmp_path, "ckpt", 1, "probe") / "ckpt.pth", weights_only=True)
    assert first["config"]["tune_from"] and first["config"]["trainable"]
    # Resuming rebuilds the fine-tuning groups (else the optimizer state would not load) and the probe.
    main.main(base_args(root, lists, tmp_path, 2, *probe_args, "--suffix", "probe",
                        "--resume", str(run_dir(tmp_path, "ckpt", 1, "probe") / "ckpt.pth")))
    second = torch.load(run_dir(tmp_path, "ckpt", 2, "probe") / "ckpt.pth", weights_only=True)
    assert second["epoch"] == 2 and second["config"]["trainable"] == first["config"]["trainable"]
    names = {g["name"] for g in second["optimizer"]["param_groups"]}
    assert {"lr5_weight", "lr10_bias"} <= names
    trainable = set(first["config"]["trainable"])
    for key, value in second["model"].items():
        if key in trainable:
            assert not torch.equal(value, first["model"][key]), key  # the classifier learned on
        elif key in src:
            assert torch.equal(value, src[key]), key                  # backbone and its BN statistics never moved


@pytest.mark.parametrize("flags, name", [
    (["--arch", "i3d", "--clip_len", "32"], "i3d_custom_RGB_clip32_e50"),
    (["--arch", "c3d", "--frame_stride", "2"], "c3d_custom_RGB_clip16_stride2_e50"),
    (["--arch", "resnet50", "--shift", "--shift_div", "4", "--shift_place", "block", "--temporal_pool"],
     "TSN_custom_RGB_resnet50_shift4_block_tpool_avg_segment8_e50"),
    (["--arch", "resnet18", "--model", "sttnet", "--num_segments", "4"], "STTNet_custom_RGB_resnet18_avg_segment4_e50"),
])
def test_run_names_say_what_shaped_the_model(flags, name):
    """Clip models are named by their clip, not by segments and a consensus they do not have."""
    args = main.build_train_parser().parse_args(["custom", "RGB", "--model", "tsn", *flags])
    assert main.run_name(args) == name


def test_help_states_each_default_once_and_lists_every_registered_arch():
    from ops.models import BACKBONES
    text = " ".join(main.build_train_parser().format_help().split())
    assert "(default: the dataset's)" in text and "(default: None)" not in text
    assert "(default: 8)" in text  # a plain default is still shown
    start = text.index("--arch ARCH 2D backbone")
    arch_help = text[start:text.index("--consensus_type", start)]
    assert all(name in arch_help for name in BACKBONES.names() + ["i3d", "stts"]) and "tinynet" in arch_help
    for line in main.build_train_parser().format_help().split("\n  -"):
        assert line.count("(default:") <= 1, line
