import os

import av
import numpy as np
import pytest
from PIL import Image

from tests import videogen
from tools import extract_frames as ef


def make_videos(src, specs):
    """specs: {relative path: num_frames}; 32x48 videos whose frames encode their index."""
    for rel, n in specs.items():
        videogen.write_video(str(src / rel), videogen.make_frames(n, 32, 48, seed=n), fps=10)


def frame_indices(folder, tmpl="img_{:05d}.jpg"):
    n = len(os.listdir(folder))
    return [videogen.frame_index_of(np.asarray(Image.open(os.path.join(folder, tmpl.format(i)))))
            for i in range(1, n + 1)]


def test_extracts_every_frame_in_order(tmp_path):
    make_videos(tmp_path / "src", {"a/v1.mp4": 7, "b/v2.avi": 5})
    result = ef.extract_all(str(tmp_path / "src"), str(tmp_path / "out"), progress=False)
    assert (result["done"], result["skipped"], result["failed"]) == (2, 0, [])
    assert frame_indices(tmp_path / "out" / "a" / "v1") == list(range(7))
    assert frame_indices(tmp_path / "out" / "b" / "v2") == list(range(5))
    assert sorted(os.listdir(tmp_path / "out" / "a")) == ["v1"]  # no .partial left


def test_short_side_and_template(tmp_path):
    make_videos(tmp_path / "src", {"v.mp4": 3})
    ef.extract_all(str(tmp_path / "src"), str(tmp_path / "out"), tmpl="{:06d}.jpg", short_side=24, progress=False)
    folder = tmp_path / "out" / "v"
    assert sorted(os.listdir(folder)) == ["000001.jpg", "000002.jpg", "000003.jpg"]
    assert Image.open(folder / "000001.jpg").size == (36, 24)
    assert ef.resized(320, 240, 256) == (341, 256) and ef.resized(240, 320, 0) == (240, 320)


def test_resume_skips_done_and_redoes_unfinished(tmp_path):
    make_videos(tmp_path / "src", {"v1.mp4": 4, "v2.mp4": 4, "v3.mp4": 4})
    out = tmp_path / "out"
    ef.extract_all(str(tmp_path / "src"), str(out), progress=False)
    mtime = os.path.getmtime(out / "v1" / "img_00001.jpg")
    for p in (out / "v2").iterdir():  # v2: an empty folder left by some other run
        p.unlink()
    (out / "v3").rename(out / "v3.partial")  # v3: interrupted mid-write
    result = ef.extract_all(str(tmp_path / "src"), str(out), workers=2, progress=False)
    assert (result["done"], result["skipped"]) == (2, 1)
    assert os.path.getmtime(out / "v1" / "img_00001.jpg") == mtime
    assert len(os.listdir(out / "v2")) == len(os.listdir(out / "v3")) == 4
    assert not (out / "v3.partial").exists()


def test_bad_videos_reported_with_nonzero_exit(tmp_path, capsys):
    src, out = tmp_path / "src", tmp_path / "out"
    make_videos(src, {"good.mp4": 3, "cut.mp4": 30, "twin.mp4": 3, "twin.avi": 3})
    (src / "garbage.mp4").write_bytes(b"this is not a video" * 100)
    videogen.truncate_file(str(src / "cut.mp4"), 600)
    with av.open(str(src / "audio.mp4"), "w") as c:  # sound only: zero video frames
        s = c.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for _ in range(4):
            c.mux(s.encode(frame))
        c.mux(s.encode())
    rc = ef.main([str(src), str(out), "--report", str(tmp_path / "report.txt")])
    assert rc == 1
    report = (tmp_path / "report.txt").read_text().splitlines()
    failed = sorted(line.split("\t")[0] for line in report)
    assert failed == ["audio.mp4", "cut.mp4", "garbage.mp4", "twin.avi", "twin.mp4"]
    reasons = dict(line.split("\t") for line in report)
    assert all(reasons.values())  # every failure says why
    assert "twin.avi" in reasons["twin.mp4"]  # neither is taken for the other
    assert len(os.listdir(out / "good")) == 3
    for rel in failed:
        stem = os.path.splitext(rel)[0]
        assert not (out / stem).exists() and not (out / (stem + ".partial")).exists()
    assert "failed" in capsys.readouterr().out
    # once the bad files are gone the rerun succeeds and drops the stale report
    for rel in failed:
        (src / rel).unlink()
    assert ef.main([str(src), str(out), "--report", str(tmp_path / "report.txt")]) == 0
    assert not (tmp_path / "report.txt").exists()


def test_find_videos_filters_extensions(tmp_path):
    for rel in ("x/a.MP4", "x/b.txt", "c.webm", "d.avi"):
        os.makedirs(os.path.dirname(tmp_path / rel), exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    assert ef.find_videos(str(tmp_path)) == ["c.webm", "d.avi", os.path.join("x", "a.MP4")]
    assert ef.find_videos(str(tmp_path), ["avi"]) == ["d.avi"]


def test_short_decode_against_declared_count_fails(tmp_path):
    """A file whose decoder stops before the container's frame count is not done."""
    make_videos(tmp_path, {"v.mp4": 6})
    folder = str(tmp_path / "frames" / "v")
    os.makedirs(os.path.dirname(folder))
    with pytest.raises(ValueError, match="decoded 6 of the 6 frames"):
        ef.extract_video(str(tmp_path / "v.mp4"), folder, min_decoded=1.5)  # asks for 9 of 6
    assert os.listdir(os.path.dirname(folder)) == []
    assert ef.extract_video(str(tmp_path / "v.mp4"), folder) == 6
