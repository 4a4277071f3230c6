"""test_models.py on a checkpoint written by main.py: multi-view scores, outputs, ensembles, DDP."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import main
import test_models
from tests.test_main import base_args, make_colour_dataset, run_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data = tmp_path_factory.mktemp("colours")
    lists = make_colour_dataset(str(data), per_class=(4, 3))
    out = tmp_path_factory.mktemp("run")
    main.main(base_args(data, lists, out, 1, "-j", "0"))
    ckpt = run_dir(out, "ckpt", 1) / "ckpt.pth"
    assert ckpt.is_file()
    return str(ckpt), lists[1]


def run_test(tmp_path, ckpt, test_list, *extra, name="out"):
    save = tmp_path / name
    test_models.main(["--weights", *ckpt, "--test_list", test_list, "--save_dir", str(save), "-j", "0",
                      "--no_progress", *extra])
    return save, np.load(save / "scores.npz"), json.loads((save / "metrics.json").read_text())


def test_two_clips_three_crops_writes_every_output(trained, tmp_path):
    ckpt, test_list = trained
    save, scores, metrics = run_test(tmp_path, [ckpt], test_list, "--num_clips", "2", "--test_crops", "3",
                                     "--softmax", "--batch_size", "3")
    with open(test_list) as f:
        lines = [line.split() for line in f]
    assert metrics["num_videos"] == len(lines) == scores["scores"].shape[0]
    assert scores["scores"].shape[1] == 4
    # One row per video, in list order, with its own id and label.
    assert scores["video_ids"].tolist() == [os.path.join(os.path.dirname(test_list), p) for p, _, _ in lines] or \
        [os.path.basename(v) for v in scores["video_ids"]] == [p for p, _, _ in lines]
    assert scores["labels"].tolist() == [int(label) for _, _, label in lines]
    assert np.allclose(scores["scores"].sum(1), 1, atol=1e-5)  # averaged softmax probabilities
    cm = np.load(save / "confusion.npy")
    assert cm.sum() == len(lines) and cm.shape == (4, 4)
    assert (save / "confusion.png").stat().st_size > 0
    assert len((save / "per_class_accuracy.csv").read_text().splitlines()) == 5
    pred = scores["scores"].argmax(1)
    assert metrics["top1"] == pytest.approx(100 * np.mean(pred == scores["labels"]), abs=1e-4)


def test_views_change_scores_and_evaluation_is_deterministic(trained, tmp_path):
    ckpt, test_list = trained
    _, one, _ = run_test(tmp_path, [ckpt], test_list, name="a")
    _, again, _ = run_test(tmp_path, [ckpt], test_list, name="b")
    _, many, _ = run_test(tmp_path, [ckpt], test_list, "--num_clips", "2", "--test_crops", "3", name="c")
    assert np.array_equal(one["scores"], again["scores"])
    assert not np.allclose(one["scores"], many["scores"])


def test_ensemble_sums_weighted_scores(trained, tmp_path):
    ckpt, test_list = trained
    _, single, _ = run_test(tmp_path, [ckpt], test_list, name="single")
    _, pair, _ = run_test(tmp_path, [ckpt, ckpt], test_list, "--coeff", "1", "0.5", name="pair")
    assert np.allclose(pair["scores"], 1.5 * single["scores"], atol=1e-5)


def test_checkpoint_without_config_is_refused(tmp_path, trained):
    _, test_list = trained
    bare = tmp_path / "bare.pth"
    torch.save({"model": {}}, bare)
    with pytest.raises(ValueError, match="no run configuration"):
        test_models.main(["--weights", str(bare), "--test_list", test_list, "-j", "0"])


def test_two_processes_score_every_video_once(trained, tmp_path):
    ckpt, test_list = trained
    _, single, _ = run_test(tmp_path, [ckpt], test_list, "--num_clips", "2", name="single")
    save = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           os.path.join(ROOT, "test_models.py"), "--weights", ckpt, "--test_list", test_list, "--num_clips", "2",
           "--save_dir", str(save), "-j", "0", "--no_progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    ddp = np.load(save / "scores.npz")
    assert ddp["indices"].tolist() == single["indices"].tolist()
    assert np.allclose(ddp["scores"], single["scores"], atol=1e-5)


@pytest.fixture(scope="module")
def trained_mlp(tmp_path_factory):
    """A checkpoint whose consensus sees the segments in order (and is sized by their number)."""
    data = tmp_path_factory.mktemp("colours_mlp")
    lists = make_colour_dataset(str(data), per_class=(4, 1))
    out = tmp_path_factory.mktemp("run_mlp")
    main.main(base_args(data, lists, out, 1, "-j", "0", "--consensus_type", "MLP", "--img_feature_dim", "16"))
    return str(next((out / "ckpt").glob("*/ckpt.pth"))), lists[1]


def test_other_segment_count_on_a_k_sized_model_is_a_clear_error(trained_mlp, tmp_path):
    ckpt, test_list = trained_mlp
    with pytest.raises(ValueError, match="sized for num_segments=2 as trained"):
        test_models.main(["--weights", ckpt, "--test_list", test_list, "--test_segments", "3", "-j", "0",
                          "--save_dir", str(tmp_path / "t"), "--no_progress"])


def test_reverse_time_changes_only_what_frame_order_changes(trained, trained_mlp, tmp_path):
    """Averaging consensus: the same frames backwards score the same; an MLP over the ordered
    segments scores them differently."""
    for (ckpt, test_list), blind in ((trained, True), (trained_mlp, False)):
        _, forward, _ = run_test(tmp_path, [ckpt], test_list, "--num_clips", "2", name=f"f{blind}")
        _, backward, metrics = run_test(tmp_path, [ckpt], test_list, "--num_clips", "2", "--reverse_time",
                                        name=f"b{blind}")
        assert metrics["reverse_time"] and np.array_equal(forward["indices"], backward["indices"])
        assert np.allclose(forward["scores"], backward["scores"], atol=1e-5) == blind


def test_sttnet_tested_at_another_segment_count(tmp_path, capsys):
    """STTNet's positional table is resampled on load, so --test_segments works on its checkpoints."""
    data = tmp_path / "colours"
    lists = make_colour_dataset(str(data), per_class=(2, 1), frames=4, size=(32, 40))
    out = tmp_path / "run"
    main.main(base_args(data, lists, out, 1, "-j", "0", "--model", "sttnet", "-b", "2"))
    ckpt = next((out / "ckpt").glob("*/ckpt.pth"))
    save, scores, metrics = run_test(tmp_path, [str(ckpt)], lists[1], "--test_segments", "3", "--num_clips", "2",
                                     "--test_crops", "3")
    assert metrics["num_videos"] == scores["scores"].shape[0] > 0 and np.isfinite(scores["scores"]).all()
    assert "TSNSampler(num_segments=3," in capsys.readouterr().out   # run at the new K, not the trained 2


def test_each_distinct_evaluation_has_its_own_folder_and_records_its_options(trained, tmp_path):
    """Dense sampling, reversed time and ensembles do not overwrite the plain 1x1 results."""
    ckpt, test_list = trained
    local = tmp_path / "ckpt.pth"
    local.write_bytes(open(ckpt, "rb").read())
    runs = {(): "test_1x1_data-", ("--dense_sample",): "test_1x1_dense_data-",
            ("--reverse_time",): "test_1x1_reversed_data-",
            ("--coeff", "1", "0.5"): "test_1x1_data-", ("--test_segments", "3"): "test_1x1_seg3_data-"}
    for extra, prefix in runs.items():
        weights = [str(local), str(local)] if "--coeff" in extra else [str(local)]
        test_models.main(["--weights", *weights, "--test_list", test_list, "-j", "0", "--no_progress", *extra])
    folders = sorted(os.listdir(tmp_path))
    assert len(folders) == 1 + len(runs)  # the checkpoint and one folder per evaluation
    metrics = {f: json.loads((tmp_path / f / "metrics.json").read_text()) for f in folders if f != "ckpt.pth"}
    assert sorted(m["dense_sample"] for m in metrics.values()) == [False] * 4 + [True]
    assert sorted(str(m["test_segments"]) for m in metrics.values()) == ["3"] + ["None"] * 4
    ensemble = [m for f, m in metrics.items() if "ensemble2-" in f]
    assert len(ensemble) == 1 and ensemble[0]["coeff"] == [1, 0.5] and len(ensemble[0]["weights"]) == 2
    assert all(m["test_list"] == os.path.abspath(test_list) and m["dataset"] == "custom" for m in metrics.values())
    for prefix in runs.values():
        assert any(f.startswith(prefix) for f in metrics), prefix


def test_command_line_errors_are_one_line(tmp_path, capsys):
    for argv in (["--weights", str(tmp_path / "nope.pth")], [], ["--weights", "a", "--num_clips", "x"]):
        with pytest.raises(SystemExit) as exit_info:
            test_models.main(argv)
        err = capsys.readouterr().err.strip()
        assert exit_info.value.code == 2 and len(err.splitlines()) == 1 and err.startswith(
            "test_models.py: error:"), err


def test_clip_models_are_labelled_by_their_name():
    from ops.models import model_label
    from tools.model_info import run_config
    assert model_label(run_config(["--arch", "i3d"])) == "i3d"
    assert model_label(run_config(["--model", "tsn", "--arch", "resnet18"])) == "tsn (resnet18, avg)"


def gpu_decoded_copy(ckpt, tmp_path):
    """The checkpoint as a run with --decode_device cuda (nvJPEG through torchcodec) would write it."""
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    state["config"].update(decode_device="cuda", jpeg_decoder="torchcodec", workers=0)
    path = tmp_path / "gpu_decoded.pth"
    torch.save(state, path)
    return str(path)


def test_a_run_that_decoded_on_the_gpu_is_tested_on_a_machine_without_one(trained, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    ckpt, test_list = trained
    gpu_ckpt = gpu_decoded_copy(ckpt, tmp_path)
    with pytest.raises(SystemExit):
        test_models.entry(["--weights", gpu_ckpt, "--test_list", test_list, "--save_dir", str(tmp_path / "x"),
                           "--no_progress"])
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs a CUDA GPU" in err, err
    _, cpu, _ = run_test(tmp_path, [gpu_ckpt], test_list, "--decode_device", "cpu", name="cpu")
    _, pil, _ = run_test(tmp_path, [gpu_ckpt], test_list, "--decode_device", "cpu", "--jpeg_decoder", "pil",
                         name="pil")
    _, ref, _ = run_test(tmp_path, [ckpt], test_list, name="ref")
    assert np.array_equal(cpu["scores"], ref["scores"]) and np.array_equal(pil["scores"], ref["scores"])


def test_decoding_on_the_gpu_loads_in_the_main_process_unless_told(trained, tmp_path, monkeypatch):
    ckpt, test_list = trained
    gpu_ckpt = gpu_decoded_copy(ckpt, tmp_path)
    dist = test_models.du.init_distributed(0)   # the CPU process, before CUDA is faked for the reader
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    asked = []

    def no_loader(dataset, mode, batch_size, workers, *args, **kwargs):
        asked.append((workers, dataset.reader.device))
        raise RuntimeError("stop before loading")

    monkeypatch.setattr(test_models, "build_loader", no_loader)
    parser = test_models.build_parser()

    def evaluate(path, *extra):
        args = test_models.check_args(parser.parse_args(["--weights", path, "--test_list", test_list, *extra]), parser)
        return test_models.evaluate_checkpoint(path, args, dist)

    for path, extra in ((gpu_ckpt, []), (gpu_ckpt, ["-j", "3"]), (gpu_ckpt, ["--decode_device", "cpu"]),
                        (ckpt, ["--decode_device", "cuda", "--jpeg_decoder", "torchcodec"])):
        with pytest.raises(RuntimeError, match="stop before loading"):
            evaluate(path, *extra)
    assert asked == [(0, "cuda"), (3, "cuda"), (test_models.TEST_WORKERS, "cpu"), (0, "cuda")]
    # a run that decoded with simplejpeg needs the decoder that has a GPU path, named in the error
    with pytest.raises(ValueError, match="nvJPEG through torchcodec"):
        evaluate(ckpt, "--decode_device", "cuda")
