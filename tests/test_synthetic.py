import json
import os

import av
import numpy as np
import pytest

from tools import synthetic as syn

SIZE = (32, 42)
FRAMES = (6, 9)
N_APP = len(syn.APPEARANCE)
PAIR_FIRSTS = range(N_APP, len(syn.CLASSES), 2)


def video(label, seed, size=SIZE, frames=FRAMES):
    return syn.generate_video(label, np.random.default_rng(seed), size, frames)


def test_classes_layout():
    assert len(syn.CLASSES) == 12 and len(set(syn.CLASSES)) == 12
    assert syn.CLASSES[:N_APP] == syn.APPEARANCE
    assert [syn.CLASSES[i:i + 2] for i in PAIR_FIRSTS] == [tuple(p) for p in syn.PAIRS]


@pytest.mark.parametrize("label", range(12))
def test_deterministic_from_seed(label):
    a, b = video(label, 5), video(label, 5)
    assert a.dtype == np.uint8 and a.shape[1:] == (*SIZE, 3) and FRAMES[0] <= len(a) <= FRAMES[1]
    assert a.tobytes() == b.tobytes()
    assert video(label, 6).tobytes() != a.tobytes()


def test_length_is_first_draw():
    for seed in range(5):
        assert syn.num_frames(np.random.default_rng(seed), FRAMES) == len(video(4, seed))


@pytest.mark.parametrize("first", PAIR_FIRSTS)
def test_pair_is_time_reversal(first):
    for seed in range(3):
        a, b = video(first, seed), video(first + 1, seed)
        assert np.array_equal(b, a[::-1])
        assert not np.array_equal(a, b)  # the content really changes over time


@pytest.mark.parametrize("first", PAIR_FIRSTS)
def test_pair_members_change_over_time(first):
    a = video(first, 11, size=(64, 84)).astype(np.int16)
    assert np.abs(a[0] - a[-1]).max() > 60  # the object moved, grew, turned or faded


def object_x(frames):
    """Horizontal centre of what differs from the per-pixel median over time (the moving object)."""
    diff = np.abs(frames.astype(np.int16) - np.median(frames, 0)).max(-1) > 40
    return [np.nonzero(d)[1].mean() for d in diff]


def test_flip_map_swaps_directional_classes():
    assert {(syn.CLASSES[a], syn.CLASSES[b]) for a, b in syn.FLIP_MAP.items()} == {
        ("moving_left", "moving_right"), ("moving_right", "moving_left"),
        ("rotating_clockwise", "rotating_anticlockwise"), ("rotating_anticlockwise", "rotating_clockwise")}
    left = video(syn.CLASSES.index("moving_left"), 2, size=(64, 84))
    x, x_flipped = object_x(left), object_x(left[:, :, ::-1])
    assert x[0] - x[-1] > 10 and x_flipped[-1] - x_flipped[0] > 10


def test_appearance_classes_differ_in_one_frame():
    """With the same seed (same background, colour, place), the first frames differ by shape."""
    firsts = [video(label, 3, size=(64, 84))[0].astype(np.int16) for label in range(N_APP)]
    for i in range(N_APP):
        for j in range(i + 1, N_APP):
            assert (np.abs(firsts[i] - firsts[j]).max(-1) > 60).sum() > 20, (i, j)


def test_mean_colour_does_not_tell_appearance_classes():
    """Leave-one-out nearest class mean on the mean colour stays near chance (25%)."""
    feats, labels = [], []
    for label in range(N_APP):
        for seed in range(12):
            feats.append(video(label, [100, label, seed], size=(24, 32), frames=(2, 2)).mean((0, 1, 2)))
            labels.append(label)
    feats, labels = np.array(feats), np.array(labels)
    correct = 0
    for i in range(len(feats)):
        keep = np.arange(len(feats)) != i
        means = [feats[keep & (labels == c)].mean(0) for c in range(N_APP)]
        correct += int(np.argmin([np.linalg.norm(feats[i] - m) for m in means]) == labels[i])
    assert correct / len(feats) < 0.5


def test_object_stands_out_in_brightness():
    """An `appearing` video starts on the bare background and ends with the opaque object, which
    is much brighter or darker than the background (what makes the shapes quick to learn)."""
    luma = np.array([0.299, 0.587, 0.114])
    contrasts = []
    for seed in range(20):
        v = video(syn.CLASSES.index("appearing"), [200, seed], size=(48, 64)).astype(np.float32)
        contrasts.append(np.abs((v[-1] - v[0]) @ luma).max())
    assert np.median(contrasts) > 100 and min(contrasts) > 60


def test_bad_arguments():
    with pytest.raises(ValueError, match="label 12"):
        video(12, 0)
    with pytest.raises(ValueError, match="frames range"):
        video(4, 0, frames=(1, 5))


def test_video_rng_depends_on_every_key():
    draws = {syn.video_rng(*key).integers(1 << 60) for key in
             [(0, "train", 4, 0), (1, "train", 4, 0), (0, "val", 4, 0), (0, "train", 5, 0), (0, "train", 4, 1)]}
    assert len(draws) == 5


def decode(path):
    with av.open(path) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def test_mp4_of_reversed_pair_decodes_to_reversed_frames(tmp_path):
    """Intra-only coding keeps the pairs exact after compression too."""
    a = video(4, 1, size=(32, 48))
    syn.write_video(a, str(tmp_path / "a.mp4"))
    syn.write_video(np.ascontiguousarray(a[::-1]), str(tmp_path / "b.mp4"))
    da, db = decode(str(tmp_path / "a.mp4")), decode(str(tmp_path / "b.mp4"))
    assert len(da) == len(a)
    assert np.abs(da.astype(int) - a).mean() < 10
    assert np.array_equal(db, da[::-1])
    assert not os.path.exists(str(tmp_path / "a.mp4.partial.mp4"))


def test_write_video_needs_even_sides(tmp_path):
    with pytest.raises(ValueError, match="even"):
        syn.write_video(np.zeros((2, 31, 42, 3), np.uint8), str(tmp_path / "x.mp4"))


def test_ceiling():
    balanced = syn.order_agnostic_ceiling([5] * 12)
    assert balanced["top1"] == pytest.approx(8 / 12) and balanced["mean_class"] == pytest.approx(8 / 12)
    counts = [1, 1, 1, 1, 3, 1, 2, 2, 2, 2, 2, 2]
    # appearance 4 right; pairs: max(3,1) + 2 + 2 + 2 = 9; total 20
    assert syn.order_agnostic_ceiling(counts)["top1"] == pytest.approx(13 / 20)
    assert syn.order_agnostic_ceiling(counts)["mean_class"] == pytest.approx(8 / 12)
    lone = syn.order_agnostic_ceiling([1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1])  # moving_right absent
    assert lone["top1"] == pytest.approx(8 / 11) and lone["mean_class"] == pytest.approx(8 / 11)
    with pytest.raises(ValueError):
        syn.order_agnostic_ceiling([1] * 11)


def read_list(path):
    with open(path) as f:
        return [line.split() for line in f]


def generate(root, workers=1, per_class=(1, 1, 0)):
    return syn.generate(str(root), per_class, seed=3, size=SIZE, frames=FRAMES, workers=workers, progress=False)


def test_generate_writes_consistent_dataset(tmp_path):
    info = generate(tmp_path)
    assert info["generated"] == 24
    with open(tmp_path / "classes.txt") as f:
        assert f.read().split() == list(syn.CLASSES)
    for split, n in (("train", 12), ("val", 12), ("test", 0)):
        frames_list = read_list(tmp_path / f"{split}_rawframes.txt")
        videos_list = read_list(tmp_path / f"{split}_videos.txt")
        assert len(frames_list) == len(videos_list) == n
        assert sorted(int(label) for _, _, label in frames_list) == list(range(12))[:n]
        for (folder, t, label), (mp4, t2, label2) in zip(frames_list, videos_list):
            assert (t, label) == (t2, label2) and folder.startswith("rawframes/") and mp4.startswith("videos/")
            names = sorted(os.listdir(tmp_path / folder))
            assert names == [syn.FRAME_TMPL.format(i) for i in range(1, int(t) + 1)]
            assert len(decode(str(tmp_path / mp4))) == int(t)
    assert set(info["ceiling_order_agnostic"]) == {"train", "val"}
    assert info["ceiling_order_agnostic"]["train"]["top1"] == pytest.approx(8 / 12)


def test_generate_resumes_and_redoes_only_missing(tmp_path):
    generate(tmp_path)
    name = syn.video_name("train", 6, 0)
    frame = tmp_path / "rawframes" / name / "img_00002.jpg"
    before = frame.read_bytes()
    lists = (tmp_path / "train_rawframes.txt").read_text()
    assert generate(tmp_path)["generated"] == 0
    for p in (tmp_path / "rawframes" / name).iterdir():
        p.unlink()
    (tmp_path / "rawframes" / name).rmdir()
    os.makedirs(tmp_path / "rawframes" / (name + ".partial"))  # an interrupted write
    assert generate(tmp_path)["generated"] == 1
    assert frame.read_bytes() == before
    assert not (tmp_path / "rawframes" / (name + ".partial")).exists()
    assert (tmp_path / "train_rawframes.txt").read_text() == lists


def test_generate_refuses_other_settings(tmp_path):
    generate(tmp_path)
    with pytest.raises(SystemExit, match="seed"):
        syn.generate(str(tmp_path), (1, 1, 0), seed=4, size=SIZE, frames=FRAMES, progress=False)


def test_parallel_equals_serial(tmp_path):
    generate(tmp_path / "serial", workers=1, per_class=(1, 0, 0))
    generate(tmp_path / "parallel", workers=2, per_class=(1, 0, 0))
    for name in ("train_rawframes.txt", "train_videos.txt"):
        assert (tmp_path / "serial" / name).read_text() == (tmp_path / "parallel" / name).read_text()
    serial, parallel = (tmp_path / run / "rawframes" / syn.video_name("train", 9, 0) for run in ("serial", "parallel"))
    for f in sorted(os.listdir(serial)):
        assert (serial / f).read_bytes() == (parallel / f).read_bytes()


def test_cli_total_per_class(tmp_path, capsys):
    out = tmp_path / "syn"
    assert syn.main(["--out", str(out), "--videos_per_class", "3", "--size", "32", "42", "--frames", "3", "4",
                     "--formats", "rawframes", "-j", "1"]) == 0
    for split in syn.SPLITS:
        assert len(read_list(out / f"{split}_rawframes.txt")) == 12
    assert not (out / "videos").exists()
    assert "order-agnostic ceiling on test: top-1 66.7%" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        syn.main(["--out", str(out), "--videos_per_class", "1", "2"])


def test_version_is_recorded_and_other_versions_refused(tmp_path):
    generate(tmp_path)
    assert syn.read_version(str(tmp_path)) == syn.VERSION
    manifest = tmp_path / "synthetic.json"
    old = json.loads(manifest.read_text())
    del old["version"]  # a folder written by the first generator, which recorded no version
    manifest.write_text(json.dumps(old))
    assert syn.read_version(str(tmp_path)) == 1
    with pytest.raises(SystemExit, match=f"version=1, not {syn.VERSION}"):
        generate(tmp_path)
