"""main.py under faults and bad input (docs/reliability.md): each failure is one line, before an
epoch is spent where it can be checked at start, and no checkpoint is ever lost."""
import errno
import json
import os
import re
import shutil
import socket
import subprocess
import sys

import pytest
import torch

import main
import test_models
from ops import checkpoint as ckpt
from ops.dataset import VideoList
from ops.models import build_model
from opts import default_config
from tests.test_main import make_colour_dataset

FULL = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("colours")
    return root, make_colour_dataset(str(root), per_class=(3, 1), frames=4, size=(32, 40))


def args(root, lists, out, epochs, *extra):
    return ["custom", "RGB", "--root_path", str(root), "--train_list", lists[0], "--val_list", lists[1],
            "--num_class", "4", "--model", "tsn", "--arch", "tinynet", "--num_segments", "2", "--crop_size", "32",
            "--scale_size", "32",
            "-b", "4", "--epochs", str(epochs), "--lr_steps", "10", "--root_log", str(out / "log"),
            "--root_model", str(out / "ckpt"), "--no_progress", "-j", "0", *extra]


def run_dir(out, kind, epochs):
    return out / kind / f"TSN_custom_RGB_tinynet_avg_segment2_e{epochs}"


def one_line(capsys, argv, code=1):
    """Run main.py's entry point: it must exit with `code` and say one line on stderr."""
    with pytest.raises(SystemExit) as exit_info:
        main.entry(argv)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == code and len(err.splitlines()) == 1, err
    return err


def trained_epochs(out, epochs):
    log = run_dir(out, "log", epochs) / "log.txt"
    return log.read_text().count(" train: loss ") if log.exists() else 0


def write_list(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


# ---- checkpoints -----------------------------------------------------------------------------------

def fail_second_best_write(step, monkeypatch):
    """Make the write of ckpt.best.pth in epoch 2 fail at `step`, as a full disk or a kill does."""
    calls = {"n": 0}

    def is_best_target(name):
        if ".ckpt.best.pth" not in name and not name.endswith("ckpt.best.pth"):
            return False
        calls["n"] += 1
        return calls["n"] == 2

    if step == "write":
        monkeypatch.setattr(ckpt, "save_checkpoint", _failing_save(ckpt.save_checkpoint, is_best_target))
    elif step == "fsync":
        real = os.fsync
        monkeypatch.setattr(ckpt.os, "fsync", lambda fd: (_ for _ in ()).throw(FULL)
                            if is_best_target(os.readlink(f"/proc/self/fd/{fd}")) else real(fd))
    else:
        real = os.replace
        monkeypatch.setattr(ckpt.os, "replace", lambda a, b: (_ for _ in ()).throw(FULL)
                            if is_best_target(str(b)) else real(a, b))


def _failing_save(save, is_target):
    """save_checkpoint whose target file takes half the bytes and then the disk is full."""
    def failing(state, path):
        if not is_target(path):
            return save(state, path)
        tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp{os.getpid()}")
        with open(tmp, "wb") as f:
            f.write(b"half a checkpoint")
        os.remove(tmp)
        raise ckpt.CheckpointError(f"cannot write checkpoint {path}: {FULL.strerror}")
    return failing


@pytest.mark.parametrize("step", ["write", "fsync", "rename"])
def test_best_checkpoint_is_never_lost_when_its_write_fails(data, tmp_path, monkeypatch, capsys, step):
    """Every epoch improves (validation is made to say so); the best write of epoch 2 fails. What
    ckpt.pth records must exist, and a resumed run ends with both files of the last epoch."""
    root, lists = data
    real_validate = main.validate
    rising = iter(range(10, 100, 10))

    def validate(*a, **k):
        stats, skipped = real_validate(*a, **k)
        return dict(stats, top1=float(next(rising))), skipped

    monkeypatch.setattr(main, "validate", validate)
    fail_second_best_write(step, monkeypatch)
    err = one_line(capsys, args(root, lists, tmp_path, 2))
    best, last = run_dir(tmp_path, "ckpt", 2) / "ckpt.best.pth", run_dir(tmp_path, "ckpt", 2) / "ckpt.pth"
    assert f"cannot write checkpoint {best}: No space left on device" in err
    assert sorted(os.listdir(best.parent)) == ["ckpt.best.pth", "ckpt.pth"]   # no temporary file left
    state = ckpt.load_checkpoint(str(last))
    assert state["epoch"] == 1 and state["best_epoch"] == 1
    assert ckpt.load_checkpoint(str(best))["epoch"] == state["best_epoch"]
    monkeypatch.undo()
    monkeypatch.setattr(main, "validate", validate)
    main.main(args(root, lists, tmp_path, 2, "--auto_resume"))
    state = ckpt.load_checkpoint(str(last))
    assert state["epoch"] == 2 and state["best_epoch"] == 2 and ckpt.load_checkpoint(str(best))["epoch"] == 2


def test_resume_repairs_a_missing_best_and_start_removes_stale_temporaries(data, tmp_path):
    root, lists = data
    main.main(args(root, lists, tmp_path, 1))
    folder = run_dir(tmp_path, "ckpt", 1)
    os.remove(folder / "ckpt.best.pth")       # as an interrupted write of the former order left it
    (folder / ".ckpt.pth.tmp4242").write_bytes(b"x" * 1000)   # a write killed by kill -9
    state = ckpt.load_checkpoint(str(folder / "ckpt.pth"))
    assert state["best_epoch"] == 1
    resumed = tmp_path / "resumed"
    main.main(args(root, lists, resumed, 2, "--resume", str(folder / "ckpt.pth")))
    new = run_dir(resumed, "ckpt", 2)
    assert ckpt.load_checkpoint(str(new / "ckpt.best.pth"))["epoch"] in (1, 2)
    log = (run_dir(resumed, "log", 2) / "log.txt").read_text()
    assert "ckpt.best.pth was missing: rewritten from epoch 1" in log
    main.main(args(root, lists, tmp_path, 1, "--auto_resume", "--epochs", "1"))   # nothing left to train
    assert sorted(os.listdir(folder)) == ["ckpt.best.pth", "ckpt.pth"]
    assert "removed 1 temporary file(s) of interrupted checkpoint writes: .ckpt.pth.tmp4242" in \
        (run_dir(tmp_path, "log", 1) / "log.txt").read_text()


@pytest.mark.parametrize("content", ["empty", "text", "truncated", "weights"])
def test_unreadable_resume_file_is_one_line(data, tmp_path, capsys, content):
    root, lists = data
    bad = tmp_path / "bad.pth"
    if content == "truncated":
        torch.save({"model": {"w": torch.zeros(1000)}, "epoch": 1, "config": {}}, bad)
        bad.write_bytes(bad.read_bytes()[:500])
    elif content == "weights":
        torch.save({"conv.weight": torch.zeros(2)}, bad)   # a state dict, not a run checkpoint
    else:
        bad.write_bytes(b"" if content == "empty" else b"not a checkpoint\n")
    for flag in ("--resume", "--tune_from"):
        if flag == "--tune_from" and content == "weights":
            continue
        err = one_line(capsys, args(root, lists, tmp_path, 1, flag, str(bad)), code=2)
        assert f"error: {flag}: {bad}" in err
    folder = run_dir(tmp_path, "ckpt", 1)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(bad, folder / "ckpt.pth")
    assert "error: --auto_resume: " in one_line(capsys, args(root, lists, tmp_path, 1, "--auto_resume"), code=2)
    assert trained_epochs(tmp_path, 1) == 0


def test_resume_of_another_architecture_names_both(data, tmp_path, capsys):
    root, lists = data
    main.main(args(root, lists, tmp_path, 1))
    other = args(root, lists, tmp_path / "other", 2, "--consensus_type", "MLP", "--img_feature_dim", "16",
                 "--resume", str(run_dir(tmp_path, "ckpt", 1) / "ckpt.pth"))
    err = one_line(capsys, other, code=2)
    assert "the checkpoint holds a tsn/tinynet avg, 4 classes, 2 segments model, this run builds a " \
           "tsn/tinynet MLP, 4 classes, 2 segments model" in err


# ---- pre-flight ------------------------------------------------------------------------------------

def test_unwritable_checkpoint_folder_fails_before_training(data, tmp_path, capsys):
    root, lists = data
    (tmp_path / "taken").write_text("a file where the checkpoint folder should be")
    argv = args(root, lists, tmp_path, 1)
    argv[argv.index("--root_model") + 1] = str(tmp_path / "taken")
    err = one_line(capsys, argv)
    assert f"cannot write to the checkpoint folder {tmp_path / 'taken'}/" in err and "Not a directory" in err
    assert trained_epochs(tmp_path, 1) == 0


def test_full_disk_fails_before_training(data, tmp_path, monkeypatch, capsys):
    root, lists = data
    monkeypatch.setattr(ckpt.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(1 << 30, 1 << 30, 1 << 10))
    err = one_line(capsys, args(root, lists, tmp_path, 1))
    assert f"checkpoint folder {run_dir(tmp_path, 'ckpt', 1)}: No space left on device: 0 MB free" in err
    assert trained_epochs(tmp_path, 1) == 0
    monkeypatch.undo()
    real = os.fsync
    monkeypatch.setattr(ckpt.os, "fsync", lambda fd: (_ for _ in ()).throw(FULL))
    err = one_line(capsys, args(root, lists, tmp_path / "again", 1))
    monkeypatch.setattr(ckpt.os, "fsync", real)
    assert f"cannot write to the log folder {run_dir(tmp_path / 'again', 'log', 1)}: No space left on device" in err


def test_bad_validation_sample_fails_before_training(data, tmp_path, capsys):
    root, lists = data
    val = write_list(tmp_path / "val.txt", ["gone_video 4 0"] + open(lists[1]).read().split("\n")[:2])
    err = one_line(capsys, args(root, [lists[0], val], tmp_path, 1))
    assert f"bad sample: {root}/gone_video: no such frame folder ({val}:1)" in err
    assert trained_epochs(tmp_path, 1) == 0


def test_wrong_root_with_skip_fails_before_training(data, tmp_path, capsys):
    root, lists = data
    argv = args(root, lists, tmp_path, 1, "--on_bad_sample", "skip")
    argv[argv.index("--root_path") + 1] = str(tmp_path / "elsewhere")
    err = one_line(capsys, argv)
    assert f"pre-flight: the first 2 sample(s) of {lists[0]} are all bad" in err and "wrong --root_path" in err
    assert trained_epochs(tmp_path, 1) == 0


# ---- skip ceiling ----------------------------------------------------------------------------------

def test_skip_ceiling_stops_an_epoch_of_bad_samples(data, tmp_path, capsys):
    root, lists = data
    good = open(lists[0]).read().split("\n")[:12]
    train = write_list(tmp_path / "train.txt", good[:1] + [f"gone_{i} 4 {i % 4}" for i in range(7)] + good[1:4])
    err = one_line(capsys, args(root, [train, lists[1]], tmp_path, 1, "--on_bad_sample", "skip"))
    assert "epoch 1: " in err and "of 8 samples were bad, more than the ceiling --max_skip_fraction 0.1" in err
    assert "gone_" in err and trained_epochs(tmp_path, 1) == 0
    # A ceiling that allows them: the epoch trains on what is good and reports the skipped ones.
    main.main(args(root, [train, lists[1]], tmp_path, 1, "--on_bad_sample", "skip", "--max_skip_fraction", "1"))
    assert trained_epochs(tmp_path, 1) == 1


def test_an_epoch_that_trains_on_nothing_is_an_error(data, tmp_path, monkeypatch, capsys):
    root, lists = data
    train = write_list(tmp_path / "train.txt", [f"gone_{i} 4 {i % 4}" for i in range(4)])
    monkeypatch.setattr(main, "preflight", lambda dataset, fraction: 0)
    err = one_line(capsys, args(root, [train, lists[1]], tmp_path, 1, "--on_bad_sample", "skip",
                                "--max_skip_fraction", "1"))
    assert "epoch 1 trained on nothing: every sample was skipped as bad; first: gone_" in err


# ---- data-loading workers ----------------------------------------------------------------------------

def list_with_an_empty_frame(data, tmp_path):
    """(the broken video's folder, a training list with it on line 6): its frame 1 is an empty file."""
    root, lists = data
    broken = tmp_path / "broken"
    shutil.copytree(root / "train_1_0", broken)
    (broken / "img_00002.jpg").write_bytes(b"")
    lines = open(lists[0]).read().split("\n")[:8]
    return broken, write_list(tmp_path / "train.txt", lines[:5] + [f"{broken} 4 1"] + lines[5:])


def test_worker_error_is_one_line_naming_video_frame_and_list_line(data, tmp_path, capsys):
    root, lists = data
    broken, train = list_with_an_empty_frame(data, tmp_path)
    argv = args(root, [train, lists[1]], tmp_path, 1, "--num_segments", "4")
    argv[argv.index("-j") + 1] = "2"
    err = one_line(capsys, argv)
    assert err.startswith(f"main.py: error: bad sample: {broken}: frame 1 (0-based): img_00002.jpg: empty file")
    assert f"({train}:6)" in err


# ---- test_models.py ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def moved_run(tmp_path_factory):
    """A custom-dataset checkpoint whose data then moved to another root."""
    old = tmp_path_factory.mktemp("old_root")
    lists = make_colour_dataset(str(old), per_class=(1, 1), frames=4, size=(32, 40))
    out = tmp_path_factory.mktemp("run")
    main.main(args(old, lists, out, 1, "-b", "2"))
    new = tmp_path_factory.mktemp("new_root") / "data"
    shutil.move(str(old), new)
    return str(run_dir(out, "ckpt", 1) / "ckpt.pth"), new


def run_test_models(capsys, *argv, code=None):
    if code is None:
        test_models.main([*argv, "--no_progress", "-j", "0"])
        return None
    with pytest.raises(SystemExit) as exit_info:
        test_models.entry([*argv, "--no_progress", "-j", "0"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == code and len(err.splitlines()) == 1, err
    return err


def test_custom_checkpoint_retargeted_with_root_and_test_list(moved_run, tmp_path, capsys):
    weights, new = moved_run
    save = tmp_path / "out"
    run_test_models(capsys, "--weights", weights, "--root_path", str(new), "--test_list", str(new / "val.txt"),
                    "--save_dir", str(save))
    metrics = json.loads((save / "metrics.json").read_text())
    assert metrics["num_videos"] == 4 and metrics["skipped"] == 0
    # The trained val list moved with its data: the root alone does not find it, and says so.
    err = run_test_models(capsys, "--weights", weights, "--root_path", str(new), code=1)
    assert "test list not found" in err


def test_test_models_counts_skips_and_stops_at_the_ceiling(moved_run, tmp_path, capsys):
    weights, new = moved_run
    lines = (new / "val.txt").read_text().split("\n")[:4]
    test_list = write_list(tmp_path / "test.txt", lines[:3] + ["gone 4 3"])
    save = tmp_path / "out"
    common = ["--weights", weights, "--root_path", str(new), "--test_list", test_list, "--save_dir", str(save)]
    err = run_test_models(capsys, *common, "--on_bad_sample", "skip", code=1)
    assert f"test of {weights}: 1 of 4 samples were bad, more than the ceiling --max_skip_fraction 0.1" in err
    run_test_models(capsys, *common, "--on_bad_sample", "skip", "--max_skip_fraction", "0.5")
    metrics = json.loads((save / "metrics.json").read_text())
    assert metrics["num_videos"] == 3 and metrics["skipped"] == 1
    assert metrics["skipped_samples"][0].startswith("gone: ")
    err = run_test_models(capsys, *common, code=1)
    assert err.startswith(f"test_models.py: error: {new}/gone: no such frame folder ({test_list}:4)")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\x00" * 10)
    assert f"{bad} is not a checkpoint" in run_test_models(capsys, *common[2:], "--weights", str(bad), code=1)


# ---- list files --------------------------------------------------------------------------------------

def test_list_file_with_byte_order_mark_or_another_encoding(tmp_path):
    (tmp_path / "bom.txt").write_text("\ufeffa/b 3 0\r\nc/d 4 1\r\n", encoding="utf-8")
    videos = VideoList(str(tmp_path / "bom.txt"))
    assert [videos.name(i) for i in range(2)] == ["a/b", "c/d"] and videos.where(1).endswith("bom.txt:2")
    (tmp_path / "latin.txt").write_bytes("a/b 3 0\ncaf\xe9/d 4 1\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin.txt:2: not UTF-8 text \(invalid continuation byte\)"):
        VideoList(str(tmp_path / "latin.txt"))


def test_worker_error_under_torchrun_is_one_line_from_the_failing_rank(data, tmp_path):
    root, lists = data
    broken, train = list_with_an_empty_frame(data, tmp_path)
    argv = args(root, [train, lists[1]], tmp_path, 1, "--num_segments", "4", "-b", "2")
    argv[argv.index("-j") + 1] = "1"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
           os.path.join(ROOT, "main.py"), *argv]
    done = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode != 0
    ours = [line for line in done.stderr.splitlines() if line.startswith("main.py: error: ")]
    assert len(ours) == 1 and re.fullmatch(rf"main.py: error: \[rank [01]\] bad sample: {broken}: frame 1 \(0-based\): "
                                           rf"img_00002.jpg: empty file \(0 bytes\) \({train}:6\).*", ours[0]), ours
    assert "BadSampleError" not in done.stderr and "DataLoader worker" not in done.stderr


def test_tune_from_another_architecture_is_one_line_unless_partial_loading_is_asked(data, tmp_path, capsys):
    """Issue 14's strict loader, seen from the command line: one line naming what did not fit."""
    root, lists = data
    other = tmp_path / "resnet18.pth"
    resnet18 = build_model(default_config(model="tsn", arch="resnet18", num_class=4, num_segments=2))
    torch.save({"model": resnet18.state_dict()}, other)
    err = one_line(capsys, args(root, lists, tmp_path, 1, "--tune_from", str(other)), code=2)
    assert f"error: --tune_from: {other} " in err and "does not fit TSN" in err
    assert "--allow_partial_load" in err and trained_epochs(tmp_path, 1) == 0
    main.main(args(root, lists, tmp_path, 1, "--tune_from", str(other), "--allow_partial_load"))
    log = (run_dir(tmp_path, "log", 1) / "log.txt").read_text()
    assert trained_epochs(tmp_path, 1) == 1 and f"{other} (own layout): loaded 1/50 tensors" in log
