"""Checkpoints: weights_only loading, atomic writes, exact RNG restore."""
import errno
import io
import os
import random
import shutil

import numpy as np
import pytest
import torch
import torch.nn as nn

from ops import checkpoint as ckpt
from ops.engine import LRSchedule
from ops.models import BACKBONES
from ops.policies import build_param_groups
from ops.tsn import TSN


def small_tsn(num_class=4):
    return TSN(BACKBONES.create("resnet18"), num_class=num_class, num_segments=2, crop_size=32)


def test_full_checkpoint_is_weights_only_loadable_and_restores(tmp_path):
    model = small_tsn()
    opt = torch.optim.SGD(build_param_groups(model, 0.1, 1e-4), lr=0.1, momentum=0.9)
    model(torch.randn(2, 2, 3, 32, 32)).sum().backward()
    opt.step()
    schedule = LRSchedule(opt, 0.1, "plateau", 5, 10)
    schedule.observe(1.0)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    config = {"arch": "resnet18", "lr_steps": (20, 40), "spec": object(), "nested": {"a": (1, 2)}}
    path = tmp_path / "ckpt.pth"
    ckpt.save_checkpoint(ckpt.make_checkpoint(nn.parallel.DataParallel(model), opt, schedule, scaler, 3, 55.5,
                                              config), str(path))
    state = torch.load(path, weights_only=True)
    assert state["epoch"] == 3 and state["best_metric"] == 55.5
    assert state["config"]["lr_steps"] == [20, 40] and state["config"]["nested"] == {"a": [1, 2]}
    assert not any(k.startswith("module.") for k in state["model"])

    expected = (torch.rand(3), np.random.rand(3), random.random())
    model2 = small_tsn()
    opt2 = torch.optim.SGD(build_param_groups(model2, 0.1, 1e-4), lr=0.1, momentum=0.9)
    schedule2 = LRSchedule(opt2, 0.1, "plateau", 5, 10)
    ckpt.resume(str(path), model2, opt2, schedule2, scaler)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values()))
    momentum = [o.state_dict()["state"][0]["momentum_buffer"] for o in (opt, opt2)]
    assert torch.equal(*momentum)
    assert schedule2.state_dict() == schedule.state_dict()
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1]) and expected[2] == again[2]


def _fail_at(step, monkeypatch):
    """Make one step of a checkpoint write fail as a full disk does (ENOSPC)."""
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if step == "write":
        real_open = open

        class FullDisk(io.FileIO):
            def write(self, data):
                super().write(bytes(data[:100]))
                raise full

        monkeypatch.setattr("builtins.open", lambda p, mode="r", **kw: FullDisk(p, "wb") if "tmp" in str(p)
                            else real_open(p, mode, **kw))
    elif step == "fsync":
        monkeypatch.setattr(ckpt.os, "fsync", lambda fd: (_ for _ in ()).throw(full))
    else:
        monkeypatch.setattr(ckpt.os, "replace", lambda a, b: (_ for _ in ()).throw(full))


@pytest.mark.parametrize("step", ["write", "fsync", "rename"])
def test_failed_write_keeps_previous_checkpoint_and_names_file(tmp_path, monkeypatch, step):
    path = str(tmp_path / "ckpt.pth")
    ckpt.save_checkpoint({"epoch": 1}, path)
    _fail_at(step, monkeypatch)
    with pytest.raises(ckpt.CheckpointError) as err:
        ckpt.save_checkpoint({"epoch": 2}, path)
    assert str(err.value).startswith(f"cannot write checkpoint {path}: ") and len(str(err.value).splitlines()) == 1
    assert str(err.value).endswith("No space left on device")
    monkeypatch.undo()
    assert ckpt.load_checkpoint(path)["epoch"] == 1
    assert os.listdir(tmp_path) == ["ckpt.pth"]


def test_temporary_files_of_killed_writes_are_removed(tmp_path):
    for name in (".ckpt.pth.tmp123", ".ckpt.best.pth.tmp9", "ckpt.pth", "notes.tmp"):
        (tmp_path / name).write_bytes(b"x")
    assert ckpt.remove_temporary(str(tmp_path)) == [".ckpt.best.pth.tmp9", ".ckpt.pth.tmp123"]
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pth", "notes.tmp"]


@pytest.mark.parametrize("content, expected", [
    (b"", "empty file (0 bytes)"),
    (b"hello world\n", "not a checkpoint (truncated, or not a torch.save file)"),
    ("truncated", "not a checkpoint (truncated, or not a torch.save file): RuntimeError: PytorchStreamReader"),
])
def test_unreadable_checkpoint_is_one_line(tmp_path, content, expected):
    path = tmp_path / "bad.pth"
    if content == "truncated":
        torch.save({"model": {"w": torch.zeros(1000)}}, path)
        content = path.read_bytes()[:600]
    path.write_bytes(content)
    with pytest.raises(ckpt.CheckpointError) as err:
        ckpt.load_checkpoint(str(path))
    assert expected in str(err.value) and str(path) in str(err.value) and len(str(err.value).splitlines()) == 1


def test_repair_best_from_the_resumed_checkpoint_or_its_neighbour(tmp_path):
    best = str(tmp_path / "run" / "ckpt.best.pth")
    state = {"epoch": 3, "best_epoch": 3, "best_metric": 50.0, "model": {}}
    assert ckpt.repair_best(state, str(tmp_path / "ckpt.pth"), best)[:2] == (50.0, 3)
    assert ckpt.load_checkpoint(best)["epoch"] == 3
    os.remove(best)
    # The best epoch was an earlier one: only a ckpt.best.pth of that epoch beside the resumed file will do.
    ckpt.save_checkpoint({"epoch": 2, "model": {}}, str(tmp_path / "ckpt.best.pth"))
    state = dict(state, epoch=4, best_epoch=2)
    assert ckpt.repair_best(state, str(tmp_path / "ckpt.pth"), best)[:2] == (50.0, 2)
    assert ckpt.load_checkpoint(best)["epoch"] == 2
    os.remove(best)
    metric, epoch, message = ckpt.repair_best(dict(state, best_epoch=1), str(tmp_path / "ckpt.pth"), best)
    assert (metric, epoch) == (None, None) and "tracked anew from epoch 5" in message and not os.path.exists(best)


def test_check_writable_names_folder_and_reason(tmp_path, monkeypatch):
    ckpt.check_writable(str(tmp_path / "new"), 1000)
    assert os.listdir(tmp_path / "new") == []  # the probe is gone
    (tmp_path / "file").write_text("")
    with pytest.raises(ckpt.CheckpointError, match=f"cannot write to the folder {tmp_path}/file/sub: "):
        ckpt.check_writable(str(tmp_path / "file" / "sub"))
    monkeypatch.setattr(ckpt.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10 << 30, 10 << 30, 5 << 20))
    with pytest.raises(ckpt.CheckpointError, match="No space left on device: 5 MB free, a checkpoint needs about 40"):
        ckpt.check_writable(str(tmp_path), 40 << 20)


def test_code_carrying_file_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": nn.Linear(2, 2)}, path)  # a pickled module, not plain data
    with pytest.raises(ValueError, match="weights-only"):
        ckpt.load_checkpoint(str(path))
    with pytest.raises(FileNotFoundError):
        ckpt.load_checkpoint(str(tmp_path / "missing.pth"))
