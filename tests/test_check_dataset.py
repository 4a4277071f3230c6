import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.videogen import make_frames, truncate_file, write_frame_folder, write_video
from tools.check_dataset import main

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
H, W = 32, 40


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A clean synthetic-layout dataset: 3 videos as frame folders and mp4s, train/val lists."""
    root = tmp_path_factory.mktemp("good")
    lines = {"rawframes": [], "videos": []}
    for i, n in enumerate([6, 9, 7]):
        frames = make_frames(n, H, W, seed=i)
        write_frame_folder(str(root / "rawframes" / f"v{i}"), frames)
        write_video(str(root / "videos" / f"v{i}.mp4"), frames)
        lines["rawframes"].append(f"rawframes/v{i} {n} {i}\n")
        lines["videos"].append(f"videos/v{i}.mp4 {n} {i}\n")
    for fmt, text in lines.items():
        (root / f"train_{fmt}.txt").write_text("".join(text[:2]))
        (root / f"val_{fmt}.txt").write_text(text[2])
        (root / f"test_{fmt}.txt").write_text(text[2])
    return root


def run(capsys, *argv):
    code = main([*argv, "--no_progress"])
    return code, capsys.readouterr().out


def test_clean_rawframes(good, capsys):
    code, out = run(capsys, "synthetic", "--root", str(good), "--decode")
    assert code == 0
    assert "summary: 4 line(s) in 3 list(s), 0 problem(s)" in out


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_clean_videos(good, capsys, decoder):
    code, out = run(capsys, "synthetic", "--root", str(good), "--data_format", "video", "--decoder", decoder)
    assert code == 0 and "0 problem(s)" in out


def test_broken_rawframes(good, tmp_path, capsys):
    root = tmp_path
    os.symlink(good / "rawframes", root / "rawframes")
    bad = root / "local"
    write_frame_folder(str(bad / "empty"), make_frames(5, H, W))
    (bad / "empty" / "img_00002.jpg").write_bytes(b"")
    write_frame_folder(str(bad / "cut"), make_frames(5, H, W))
    truncate_file(str(bad / "cut" / "img_00004.jpg"), 300)
    (root / "list.txt").write_text(
        "rawframes/v0 6 0\n"        # 1 fine
        "rawframes/v1 9\n"          # 2 fine (video-style line, count taken from the folder)
        "rawframes/v2 7 12\n"       # 3 label out of range
        "rawframes/nope 5 1\n"      # 4 missing folder
        "local/empty 5 1\n"         # 5 zero-byte frame
        "local/cut 5 1\n"           # 6 truncated frame
        "rawframes/v0 8 0\n"        # 7 num_frames disagree (6 on disk)
        "rawframes/v0 x 0\n")       # 8 malformed
    code, out = run(capsys, "synthetic", "--root", str(root), "--list", str(root / "list.txt"), "-j", "2")
    assert code == 1
    report = [line for line in out.splitlines()
              if line.startswith(str(root / "list.txt") + ":") and line.split(":")[1].isdigit()]
    assert [line.split(":")[1] for line in report] == ["3", "4", "5", "6", "7", "7", "8"]
    assert "label 12 outside [0, 12)" in report[0]
    assert "rawframes/nope: no such frame folder" in report[1]
    assert "frame 1 (0-based): img_00002.jpg: empty file (0 bytes)" in report[2]
    assert "frame 3 (0-based): img_00004.jpg: truncated JPEG" in report[3]
    assert "the list says 8 frames, the folder has 6" in report[4]
    assert "missing img_00007.jpg" in report[5]
    assert "malformed line" in report[6]
    assert "summary: 8 line(s) in 1 list(s), 7 problem(s)" in out
    counts = {line.split(maxsplit=1)[1]: int(line.split()[0]) for line in out.splitlines()
              if line.startswith("  ") and line.strip()[0].isdigit()}
    assert counts == {"malformed lines": 1, "labels out of range": 1, "missing folders, videos or frame files": 2,
                      "unreadable frames or videos (empty, truncated, undecodable)": 2,
                      "num_frames that disagree with the data": 1}


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_broken_videos(good, tmp_path, capsys, decoder):
    data = (good / "videos" / "v1.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[:len(data) // 2])
    (tmp_path / "empty.mp4").write_bytes(b"")
    write_video(str(tmp_path / "fs.mp4"), make_frames(20, H, W), faststart=True)  # index first: opens
    truncate_file(str(tmp_path / "fs.mp4"), os.path.getsize(tmp_path / "fs.mp4") * 6 // 10)
    (tmp_path / "list.txt").write_text(
        f"{good}/videos/v0.mp4 6 0\n{tmp_path}/cut.mp4 9 1\n{tmp_path}/empty.mp4 1\n"
        f"{tmp_path}/gone.mp4 2\n{good}/videos/v2.mp4 5 2\n{tmp_path}/fs.mp4 20 1\n")
    code, out = run(capsys, "custom", "--num_class", "3", "--data_format", "video", "--decoder", decoder,
                    "--list", str(tmp_path / "list.txt"))
    assert code == 1
    assert f"list.txt:2: {tmp_path}/cut.mp4: truncated file" in out
    assert f"list.txt:3: {tmp_path}/empty.mp4: empty file (0 bytes)" in out
    assert f"list.txt:4: {tmp_path}/gone.mp4: no such video file" in out
    assert "list.txt:5: " in out and "the list says 5 frames, the video has 7" in out
    assert re.search(r"list.txt:6: .*fs.mp4: truncated file", out)
    assert "list.txt:1:" not in out


def test_command_line(good):
    tool = os.path.join(ROOT, "tools", "check_dataset.py")
    done = subprocess.run([sys.executable, tool, "synthetic", "--root", str(good), "--no_progress"],
                          capture_output=True, text=True, cwd=str(good))
    assert done.returncode == 0, done.stderr
    assert "0 problem(s)" in done.stdout


def test_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["custom", "--list", "x.txt"])
    assert e.value.code == 2 and "num_class" in capsys.readouterr().err


def test_missing_list_file(good, capsys):
    code, out = run(capsys, "synthetic", "--root", str(good), "--list", str(good / "nope.txt"))
    assert code == 1 and "nope.txt: no such list file" in out


def test_list_in_another_encoding(good, tmp_path, capsys):
    (tmp_path / "latin.txt").write_bytes("rawframes/v0 6 0\nrawframes/caf\xe9 6 0\n".encode("latin-1"))
    code, out = run(capsys, "synthetic", "--root", str(good), "--list", str(tmp_path / "latin.txt"))
    assert code == 1 and f"{tmp_path}/latin.txt:2: not UTF-8 text (invalid continuation byte)" in out


def test_corrupt_jpeg_is_reported_when_decoding(good, tmp_path, capsys):
    """A zeroed run inside the entropy-coded data: the file is complete (the byte check passes) and
    PIL decodes it with damaged pixels; the strict decode of --decode reports libjpeg's complaint."""
    noise = np.random.default_rng(0).integers(-40, 40, (4, 96, 128, 3))
    folder = write_frame_folder(str(tmp_path / "zeroed"), np.clip(make_frames(4, 96, 128) + noise, 0, 255)
                                .astype(np.uint8))   # ~9 kB files: the middle is entropy-coded data
    data = bytearray(open(f"{folder}/img_00003.jpg", "rb").read())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)
    open(f"{folder}/img_00003.jpg", "wb").write(bytes(data))
    with Image.open(f"{folder}/img_00003.jpg") as image:
        image.load()   # a lenient decoder says nothing
    (tmp_path / "list.txt").write_text(f"{folder} 4 0\n")
    argv = ["custom", "--num_class", "2", "--list", str(tmp_path / "list.txt")]
    code, out = run(capsys, *argv)
    assert code == 0
    code, out = run(capsys, *argv, "--decode")
    assert code == 1
    assert f"list.txt:1: {folder}: 1 bad frame(s): frame 2 (0-based): cannot decode img_00003.jpg: Corrupt JPEG data" \
        in out


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_truncated_avi_is_reported_by_every_decoder(tmp_path, capsys, decoder):
    """decord alone would index the frames left in a cut AVI and return a damaged last one."""
    path = write_video(str(tmp_path / "cut.avi"), make_frames(30, H, W), codec="mpeg4")
    truncate_file(path, os.path.getsize(path) * 6 // 10)
    (tmp_path / "list.txt").write_text(f"{path} 30 0\n")
    for decode in ([], ["--decode"]):
        code, out = run(capsys, "custom", "--num_class", "2", "--data_format", "video", "--decoder", decoder,
                        "--list", str(tmp_path / "list.txt"), *decode)
        assert code == 1 and f"list.txt:1: {path}: truncated file: " in out
        assert "1  unreadable frames or videos" in out
