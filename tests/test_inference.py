"""tools/inference.py: one video (file or frame folder) + a checkpoint -> top-5 classes and an
annotated video or GIF."""
import contextlib
import io
import re

import av
import numpy as np
import pytest
import torch
from PIL import Image

from ops import checkpoint as ckpt
from ops.models import build_model
from opts import build_train_parser, default_config
from tests.videogen import make_frames, write_frame_folder, write_video
from tools import inference

NUM_FRAMES, HEIGHT, WIDTH = 40, 96, 128


def make_checkpoint(path, argv, dataset="custom", root=None):
    """A checkpoint as main.py writes it: an untrained model and its full run configuration."""
    extra = ["--root_path", str(root)] if root else ["--num_class", "6", "--train_list", "unused.txt"]
    cfg = default_config(**vars(build_train_parser().parse_args([dataset, "RGB", *extra, *argv])))
    cfg["num_class"] = cfg["num_class"] or 12
    torch.manual_seed(0)
    with contextlib.redirect_stdout(io.StringIO()):      # the builder's note is not the tool's output
        model = build_model(cfg)
    ckpt.save_checkpoint(ckpt.make_checkpoint(model, config=cfg), str(path))
    return path


def parse_output(text, video, names):
    lines = text.strip().splitlines()
    first = re.fullmatch(rf"{re.escape(str(video))} is (.+) \((\d\.\d+)\)", lines[0])
    assert first, lines[0]
    assert lines[1] == "top-5:"
    ranked = [re.fullmatch(r"  (\d)\. (.+) \((\d\.\d+)\)", line) for line in lines[2:7]]
    assert all(ranked), lines[2:7]
    assert [int(m.group(1)) for m in ranked] == [1, 2, 3, 4, 5]
    top = [(m.group(2), float(m.group(3))) for m in ranked]
    assert all(name in names for name, _ in top) and len({name for name, _ in top}) == 5
    probs = [p for _, p in top]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-3
    assert (first.group(1), float(first.group(2))) == top[0]
    return top


@pytest.fixture(scope="module")
def clip_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("i3d")
    return make_checkpoint(folder / "i3d.pth", ["--arch", "i3d", "--clip_len", "8", "--crop_size", "32"])


@pytest.fixture
def names_file(tmp_path):
    names = [f"action_{c}" for c in "abcdef"]
    path = tmp_path / "names.txt"
    path.write_text("\n".join(names) + "\n")
    return path, names


def test_clip_model_on_a_video_writes_an_annotated_mp4(tmp_path, clip_checkpoint, names_file, capsys):
    frames = make_frames(NUM_FRAMES, HEIGHT, WIDTH)
    video = write_video(str(tmp_path / "clip.mp4"), frames)
    out = tmp_path / "pred.mp4"
    assert inference.main([video, str(clip_checkpoint), "--class_names", str(names_file[0]), "--out", str(out),
                           "--num_clips", "3", "--decoder", "pyav"]) == 0
    parse_output(capsys.readouterr().out, video, names_file[1])
    with av.open(str(out)) as container:
        written = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert written.shape == (NUM_FRAMES, HEIGHT, WIDTH, 3)
    diff = np.abs(written.astype(int) - frames.astype(int))
    assert diff[:, :12].mean() > 20                # the prediction is drawn at the top ...
    assert diff[:, HEIGHT // 2:].mean() < 8        # ... and the rest of every frame is the video


def test_2d_model_on_a_frame_folder_writes_a_gif(tmp_path, capsys):
    checkpoint = make_checkpoint(tmp_path / "tsn.pth", ["--model", "tsn", "--arch", "squeezenet1_1",
                                                        "--num_segments", "3", "--crop_size", "64"])
    folder = write_frame_folder(str(tmp_path / "frames"), make_frames(NUM_FRAMES, HEIGHT, WIDTH))
    out = tmp_path / "pred.gif"
    assert inference.main([folder, str(checkpoint), "--out", str(out)]) == 0
    parse_output(capsys.readouterr().out, folder, [f"class {i}" for i in range(6)])
    with Image.open(out) as gif:
        assert gif.n_frames == NUM_FRAMES and gif.size == (WIDTH, HEIGHT)


def test_class_names_come_from_the_checkpoints_dataset(tmp_path, capsys):
    root = tmp_path / "synthetic"
    root.mkdir()
    names = [f"synthetic_class_{i}" for i in range(12)]
    (root / "classes.txt").write_text("\n".join(names) + "\n")
    checkpoint = make_checkpoint(tmp_path / "tsn.pth", ["--model", "tsn", "--arch", "squeezenet1_1",
                                                        "--num_segments", "2", "--crop_size", "64"],
                                 dataset="synthetic", root=root)
    video = write_video(str(tmp_path / "v.mp4"), make_frames(12, 64, 80))
    assert inference.main([video, str(checkpoint)]) == 0
    parse_output(capsys.readouterr().out, video, names)


def test_wrong_class_names_file_is_an_error(tmp_path, clip_checkpoint):
    names = tmp_path / "names.txt"
    names.write_text("only\nthree\nnames\n")
    video = write_video(str(tmp_path / "v.mp4"), make_frames(12, 64, 80))
    with pytest.raises(ValueError, match="3 class names but the model has 6 classes"):
        inference.main([video, str(clip_checkpoint), "--class_names", str(names)])


def test_a_file_that_is_no_checkpoint_is_one_line(tmp_path, capsys):
    video = write_video(str(tmp_path / "v.mp4"), make_frames(12, 64, 80))
    assert inference.main([video, video]) == 1   # a video given as the checkpoint
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a checkpoint" in err[0] and video in err[0]
