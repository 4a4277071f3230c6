"""Checkpoints: weights_only loading, atomic writes, exact RNG restore, fine-tuning key surgery."""
import os
import random

import numpy as np
import pytest
import torch
import torch.nn as nn

from ops import checkpoint as ckpt
from ops.engine import LRSchedule
from ops.models import TSN, build_model
from ops.policies import build_param_groups
from ops.registry import BACKBONES
from ops.scsa import resize_time


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


def test_save_is_atomic(tmp_path, monkeypatch):
    path = str(tmp_path / "ckpt.pth")
    ckpt.save_checkpoint({"epoch": 1}, path)

    def crash(obj, f):
        with open(f, "wb") as out:
            out.write(b"half a checkpoint")
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        ckpt.save_checkpoint({"epoch": 2}, path)
    assert ckpt.load_checkpoint(path)["epoch"] == 1
    assert os.listdir(tmp_path) == ["ckpt.pth"]


def test_code_carrying_file_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": nn.Linear(2, 2)}, path)  # a pickled module, not plain data
    with pytest.raises(ValueError, match="weights-only"):
        ckpt.load_checkpoint(str(path))
    with pytest.raises(FileNotFoundError):
        ckpt.load_checkpoint(str(tmp_path / "missing.pth"))


def test_tune_from_strips_prefixes_and_drops_other_classifier(tmp_path, caplog):
    caplog.set_level("INFO")
    source = small_tsn(num_class=7)
    state = {"module." + k: v for k, v in source.state_dict().items()}
    state["module.extra.weight"] = torch.zeros(1)
    path = tmp_path / "other.pth"
    torch.save({"model": state}, path)
    target = small_tsn(num_class=4)
    report = ckpt.load_for_finetune(target, str(path))
    assert report["mismatched"] == ["consensus.new_fc.bias (7,) -> (4,)",
                                    "consensus.new_fc.weight (7, 512) -> (4, 512)"]
    assert report["missing"] == ["consensus.new_fc.bias", "consensus.new_fc.weight"]
    assert report["unexpected"] == ["module.extra.weight"]
    assert torch.equal(target.base_model.layer3[0].conv1.weight, source.base_model.layer3[0].conv1.weight)
    assert "loaded" in caplog.text


def test_tune_from_aligns_torchvision_and_tsm_style_keys(tmp_path):
    source = small_tsn(num_class=4)
    backbone_only = {k[len("base_model."):]: v for k, v in source.state_dict().items() if k.startswith("base_model.")}
    tsm_style = {"module.base_model." + k: v for k, v in backbone_only.items()}
    tsm_style.update({"module.new_fc.weight": source.consensus.new_fc.weight,
                      "module.new_fc.bias": source.consensus.new_fc.bias})
    for state in (backbone_only, tsm_style):
        path = tmp_path / "w.pth"
        torch.save(state, path)
        target = small_tsn(num_class=4)
        report = ckpt.load_for_finetune(target, str(path))
        assert report["unexpected"] == [] and report["mismatched"] == []
        assert torch.equal(target.base_model.bn1.running_mean, source.base_model.bn1.running_mean)
    assert torch.equal(target.consensus.new_fc.weight, source.consensus.new_fc.weight)


def test_tune_from_resamples_sttnet_positional_tables_to_another_segment_count(tmp_path):
    """Fine-tuning an 8-segment STTNet into a 5-segment one on another dataset: the temporal table is
    resampled (not dropped), the classifier of the other class count is dropped."""
    cfg = dict(model="sttnet", arch="tinynet", num_class=7, num_segments=8, crop_size=64, scsa_dim=32)
    torch.manual_seed(0)
    source = build_model(cfg)
    path = tmp_path / "sttnet.pth"
    torch.save({"model": {"module." + k: v for k, v in source.state_dict().items()}}, path)
    target = build_model(dict(cfg, num_class=4, num_segments=5))
    report = ckpt.load_for_finetune(target, str(path))
    assert report["resampled"] == ["aggregator.pos_time (8, 128) -> (5, 128)"]
    assert all("new_fc" in m for m in report["mismatched"]) and report["unexpected"] == []
    torch.testing.assert_close(target.aggregator.pos_time, resize_time(source.aggregator.pos_time, 5))
    assert torch.equal(target.aggregator.w6.weight, source.aggregator.w6.weight)
