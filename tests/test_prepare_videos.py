import os

import av
import numpy as np

from tests import videogen
from tools import prepare_videos as pv

H, W = 32, 48


def decode(path):
    with av.open(path) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    with av.open(path) as container:
        keys = [i for i, p in enumerate(p for p in container.demux(container.streams.video[0]) if p.size)
                if p.is_keyframe]
        rate = container.streams.video[0].average_rate
    return np.stack(frames), keys, rate


def test_reencodes_every_frame_with_dense_key_frames(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    frames = videogen.make_frames(30, 64, 96)
    videogen.write_video(str(src / "a" / "v1.avi"), frames, codec="mpeg4", gop_size=30, bframes=2)
    videogen.write_video(str(src / "v2.mkv"), frames[:20], gop_size=20, first_pts=4)
    result = pv.prepare_all(str(src), str(out), short_side=32, gop=5, progress=False)
    assert (result["done"], result["skipped"], result["failed"]) == (2, 0, [])
    for rel, n in (("a/v1.mp4", 30), ("v2.mp4", 20)):
        got, keys, rate = decode(str(out / rel))
        assert got.shape == (n, 32, 48, 3)
        assert videogen.frame_indices_of(got) == list(range(n))   # every frame, in order, once
        assert keys[0] == 0 and max(np.diff(keys + [n])) <= 5 and rate == 25   # (x264 adds some at scene cuts)
    assert sorted(os.listdir(out / "a")) == ["v1.mp4"]   # no partial file left


def x264_settings(path):
    """The options x264 wrote into the stream (its SEI text), e.g. {'cabac': '0', 'keyint': '16'}."""
    data = open(path, "rb").read()
    text = data[data.index(b"options: "):].split(b"\0", 1)[0].decode()
    return dict(item.split("=", 1) for item in text[len("options: "):].split() if "=" in item)


def test_fastdecode_by_default_and_tune_none(tmp_path):
    video = videogen.write_video(str(tmp_path / "v.mp4"), videogen.make_frames(8, H, W))
    fast, plain = str(tmp_path / "fast.mp4"), str(tmp_path / "plain.mp4")
    pv.prepare_video(video, fast, short_side=H)
    pv.prepare_video(video, plain, short_side=H, tune="none")
    assert x264_settings(fast)["cabac"] == "0" and x264_settings(fast)["deblock"].startswith("0")
    assert x264_settings(plain)["cabac"] == "1" and x264_settings(plain)["deblock"].startswith("1")
    assert x264_settings(fast)["bframes"] == "0" and x264_settings(fast)["keyint"] == "16"
    assert np.array_equal(videogen.frame_indices_of(decode(fast)[0]), list(range(8)))


def test_constant_frame_rate_drops_or_repeats_by_time(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    videogen.write_video(str(src / "v.mp4"), videogen.make_frames(20, H, W), fps=10)
    pv.prepare_all(str(src), str(out), short_side=0, gop=4, fps=5, progress=False)
    got, _, rate = decode(str(out / "v.mp4"))
    assert rate == 5 and videogen.frame_indices_of(got) == list(range(0, 20, 2))
    pv.prepare_all(str(src), str(tmp_path / "out20"), short_side=0, gop=4, fps=20, progress=False)
    got, _, _ = decode(str(tmp_path / "out20" / "v.mp4"))
    assert videogen.frame_indices_of(got) == [i // 2 for i in range(40)]


def test_resumes_and_reports_bad_videos(tmp_path, capsys):
    src, out = tmp_path / "src", tmp_path / "out"
    for name in ("good.mp4", "cut.mp4", "twin.mp4", "twin.avi"):
        videogen.write_video(str(src / name), videogen.make_frames(12, H, W))
    videogen.truncate_file(str(src / "cut.mp4"), os.path.getsize(src / "cut.mp4") // 2)
    assert pv.main([str(src), str(out), "--short_side", "0", "--gop", "4"]) == 1
    report = (out / "prepare_failures.txt").read_text()
    assert "cut.mp4\tValueError: truncated file" in report
    assert report.count("shares its output with") == 2
    assert sorted(os.listdir(out)) == ["good.mp4", "prepare_failures.txt"]
    mtime = os.path.getmtime(out / "good.mp4")
    result = pv.prepare_all(str(src), str(out), short_side=0, gop=4, progress=False)
    assert result["skipped"] == 1 and os.path.getmtime(out / "good.mp4") == mtime
    capsys.readouterr()
    os.remove(src / "cut.mp4")
    os.remove(src / "twin.avi")
    assert pv.main([str(src), str(out), "--measure", "1"]) == 0
    printed = capsys.readouterr().out
    assert "1 re-encoded, 1 already done" in printed and "decode cost (pyav, TSN 8, 1 videos)" in printed
    assert not (out / "prepare_failures.txt").exists()
