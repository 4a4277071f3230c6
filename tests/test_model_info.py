"""tools/model_info.py: parameter and FLOP counts of registered models at the pipeline's input."""
import pytest
import torch
import torch.nn as nn

from ops.models import BACKBONES, MODELS
from tools import model_info


def test_flops_follow_the_multiply_add_convention():
    # a Linear layer of 10 -> 5 on 3 rows is 150 multiply-adds = 300 FLOPs
    assert model_info.count_flops(nn.Linear(10, 5), torch.zeros(3, 10)) == 300
    conv = nn.Conv3d(2, 4, kernel_size=3, padding=1, bias=False)
    assert model_info.count_flops(conv, torch.zeros(1, 2, 4, 5, 5)) == 2 * (2 * 27) * 4 * (4 * 5 * 5)


def test_parameters_count_shared_tensors_once_and_split_trainable():
    shared = nn.Linear(4, 4)
    net = nn.Sequential(shared, shared, nn.Linear(4, 2))
    net[2].requires_grad_(False)
    assert model_info.count_parameters(net) == (20 + 10, 20)


@pytest.mark.parametrize("argv, shape", [
    (["--arch", "stts", "--clip_len", "32"], [1, 3, 32, 112, 112]),
    (["--arch", "i3d", "--clip_len", "64"], [1, 3, 64, 224, 224]),
    (["--arch", "c3d", "--clip_len", "16", "--crop_size", "96"], [1, 3, 16, 96, 96]),
    (["--model", "tsn", "--arch", "resnet18", "--num_segments", "3", "--crop_size", "64"], [1, 3, 3, 64, 64]),
])
def test_input_follows_the_model_and_the_flags(argv, shape):
    info = model_info.describe(model_info.run_config(argv))
    assert info["input"] == shape


def test_counts_are_exact_on_the_meta_device():
    info = model_info.describe(model_info.run_config(["--arch", "stts_a", "--num_class", "51"]))
    assert info["params"] == 37_318_689
    doubled = model_info.describe(model_info.run_config(["--arch", "stts_a", "--clip_len", "32"]))
    assert doubled["flops"] == pytest.approx(2 * info["flops"], rel=0.01)   # clip_len 16 -> 32


def test_cli_prints_one_model(capsys):
    assert model_info.main(["--arch", "c3d", "--num_class", "51", "--clip_len", "16"]) == 0
    out = capsys.readouterr().out
    assert "| c3d | 3x16x112x112 | 78,204,723 |" in out


def test_all_covers_every_registered_model(capsys):
    configs = model_info.registry_configs()
    labels = [model_info.model_label(cfg) for cfg in configs]
    for name in MODELS.names():
        if name == "tsn":
            assert all(f"tsn ({b}, avg)" in labels for b in BACKBONES.names())
        else:
            assert any(label.startswith(name) for label in labels), name
    assert model_info.main(["--all"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert len(rows) == 2 + len(configs)          # header, separator, one row per model, nothing else


def test_module_breakdown_adds_up_to_the_total():
    net = nn.Sequential(nn.Linear(10, 5), nn.ReLU(), nn.Linear(5, 2))
    parts = dict(model_info.module_flops(net, [3, 10], depth=2))
    assert parts["Sequential"] == model_info.count_flops(net, torch.zeros(3, 10)) == 2 * 3 * (50 + 10)
    assert parts["Sequential.0"] + parts["Sequential.2"] == parts["Sequential"]


def test_table_flops_are_per_item_whatever_the_batch(capsys):
    rows = []
    for batch in ("1", "3"):
        model_info.main(["--model", "tsn", "--arch", "tinynet", "--num_segments", "2", "--crop_size", "32",
                         "--batch", batch])
        rows.append([line for line in capsys.readouterr().out.splitlines() if line.startswith("| tsn")][0])
    assert rows[0].split("|")[4] == rows[1].split("|")[4]
