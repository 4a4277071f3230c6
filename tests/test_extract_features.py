"""tools/extract_features.py: one row per video in list order, ids and labels aligned, from a
supervised (TSN) and a pre-training (CPC-Trans) checkpoint."""
import numpy as np
import pytest
import torch

from ops.checkpoint import make_checkpoint, save_checkpoint
from ops.models import build_model
from opts import default_config
from tests.videogen import make_frames, write_frame_folder
from tools import extract_features

VIDEOS = [("rawframes/a", 12, 0), ("rawframes/b", 20, 2), ("rawframes/c", 9, 1), ("rawframes/d", 16, 2)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("feats")
    for seed, (name, frames, _) in enumerate(VIDEOS):
        write_frame_folder(str(root / name), make_frames(frames, 40, 48, seed=seed))
    lines = [f"{name} {frames} {label}\n" for name, frames, label in VIDEOS]
    (root / "list.txt").write_text("".join(lines))
    (root / "reversed.txt").write_text("".join(reversed(lines)))
    return root


def checkpoint(root, tmp_path, **cfg):
    cfg = default_config(dataset="custom", root_path=str(root), num_class=3, val_list=str(root / "list.txt"),
               crop_size=32, seed=0, **cfg)
    torch.manual_seed(0)
    model = build_model(cfg)
    return save_checkpoint(make_checkpoint(model, config=cfg), str(tmp_path / "ckpt.pth"))


@pytest.mark.parametrize("cfg,dim", [
    (dict(model="tsn", arch="resnet18", num_segments=2, consensus_type="avg", partial_bn=False), 512),
    (dict(ssl="cpc_trans", arch="resnet18", num_seq=3, pred_step=1, seq_stride=2, cpc_layers=1, cpc_ff_dim=32), 256),
])
def test_rows_follow_the_list_with_ids_and_labels(dataset, tmp_path, cfg, dim):
    path = checkpoint(dataset, tmp_path, **cfg)
    outs = []
    for name in ("list", "reversed"):
        out = str(tmp_path / f"{name}.npz")
        extract_features.main([path, "--list", str(dataset / f"{name}.txt"), "--out", out, "--clips", "2",
                               "-b", "3", "-j", "0", "--no_progress"])
        outs.append(np.load(out))
    fwd, rev = outs
    assert fwd["features"].shape == (len(VIDEOS), dim) and fwd["features"].dtype == np.float32
    assert list(fwd["video_ids"]) == [v[0] for v in VIDEOS]
    assert list(fwd["labels"]) == [v[2] for v in VIDEOS]
    assert list(fwd["indices"]) == list(range(len(VIDEOS)))
    assert list(rev["video_ids"]) == [v[0] for v in reversed(VIDEOS)]
    assert list(rev["labels"]) == [v[2] for v in reversed(VIDEOS)]
    # each video's row is the same whatever its position in the list (and the batch it falls in)
    np.testing.assert_allclose(rev["features"][::-1], fwd["features"], rtol=1e-4, atol=1e-5)
    assert not np.allclose(fwd["features"][0], fwd["features"][1])


def test_random_init_baseline_uses_fresh_weights(dataset, tmp_path):
    path = checkpoint(dataset, tmp_path, model="tsn", arch="resnet18", num_segments=2, consensus_type="avg",
                      partial_bn=False)
    feats = {}
    for name, extra in (("loaded", []), ("random", ["--random_init", "--seed", "1"])):
        out = str(tmp_path / f"{name}.npz")
        extract_features.main([path, "--list", str(dataset / "list.txt"), "--out", out, "-j", "0", "--no_progress",
                               *extra])
        feats[name] = np.load(out)["features"]
    assert feats["loaded"].shape == feats["random"].shape
    assert not np.allclose(feats["loaded"], feats["random"])


def test_linear_probe_fits_on_training_features(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8)) * 5
    labels = np.repeat(np.arange(3), 10)
    train = centres[labels] + rng.normal(size=(30, 8))
    np.savez(tmp_path / "train.npz", features=train, labels=labels)
    test = centres[labels] + rng.normal(size=(30, 8))
    assert extract_features.linear_probe(str(tmp_path / "train.npz"), test, labels) > 90
    assert extract_features.linear_probe(str(tmp_path / "train.npz"), test, (labels + 1) % 3) < 10


def test_a_file_that_is_no_checkpoint_is_one_line(tmp_path):
    bogus = tmp_path / "notes.txt"
    bogus.write_text("not a checkpoint\n")
    with pytest.raises(SystemExit) as stop:
        extract_features.main([str(bogus), "--out", str(tmp_path / "f.npz")])
    message = str(stop.value)
    assert "\n" not in message and "is not a checkpoint" in message and str(bogus) in message


def test_features_are_the_same_whoever_normalises():
    """On the CPU the loader's workers normalise (ops.transforms.place_normalize), on a GPU
    `extract` does: the same function, so the same features."""
    from ops.transforms import DeviceNormalize

    cfg = default_config(model="tsn", arch="resnet18", num_class=3, num_segments=2, crop_size=32, partial_bn=False)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    normalize = DeviceNormalize.from_spec(model.input_spec)
    frames = torch.randint(0, 256, (2, 1, 2, 32, 32, 3), dtype=torch.uint8)
    batch = (torch.tensor([0, 2]), torch.tensor([1, 0]), [])
    in_extract = extract_features.extract(model, [(frames, *batch)], normalize, torch.device("cpu"), progress=False)
    in_loader = extract_features.extract(model, [(normalize(frames), *batch)], None, torch.device("cpu"),
                                         progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(in_extract, in_loader))


def test_a_run_that_decoded_on_the_gpu_extracts_on_the_cpu(dataset, tmp_path):
    tsn = dict(model="tsn", arch="resnet18", num_segments=2, consensus_type="avg", partial_bn=False)
    gpu = dict(decode_device="cuda", jpeg_decoder="torchcodec")
    feats = {}
    for name, cfg, extra in (("cpu", {}, []), ("gpu", gpu, ["--decode_device", "cpu"])):
        (tmp_path / name).mkdir()
        path = checkpoint(dataset, tmp_path / name, **tsn, **cfg)
        out = str(tmp_path / f"{name}.npz")
        extract_features.main([path, "--list", str(dataset / "list.txt"), "--out", out, "--no_progress", *extra])
        feats[name] = np.load(out)["features"]
    np.testing.assert_array_equal(feats["gpu"], feats["cpu"])
