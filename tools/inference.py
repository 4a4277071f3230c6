"""Classify one video (a video file or a frame folder) with a trained checkpoint.

    python tools/inference.py data/synthetic/videos/test_growing_0007.mp4 checkpoint/<run>/ckpt.best.pth
    python tools/inference.py my_video.mp4 ckpt.pth --out my_video_pred.mp4   # or .gif

Prints "<video> is <class> (<prob>)" and the top-5 classes. The model is rebuilt from the
checkpoint's run configuration (any registered model, 2D or 3D) and fed exactly as in testing:
its sampler in test mode, its test transform and its input_spec normalisation. The class names
come from --class_names (one per line, or UCF101's classInd.txt) or else from the dataset the
checkpoint was trained on. Headless machines cannot show a window, so --out writes the video with
the prediction drawn on every frame: an mp4 (PyAV) or, for a .gif name, a GIF (Pillow).
"""
import argparse
import logging
import os
import sys
from types import SimpleNamespace

import av
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ops.checkpoint import CheckpointError  # noqa: E402
from ops.data import default_sampler, default_transform  # noqa: E402
from ops.dataset import BadSampleError, RawFrameReader, make_reader  # noqa: E402
from ops.dataset_configs import get_dataset_config, read_class_names  # noqa: E402
from ops.evaluation import average_views  # noqa: E402
from ops.logging_setup import setup_logging  # noqa: E402
from ops.model_api import as_output  # noqa: E402
from ops.models import model_from_checkpoint  # noqa: E402
from ops.transforms import DeviceNormalize  # noqa: E402
from opts import VIDEO_DECODER, VIDEO_DECODERS  # noqa: E402

CLIP_MODEL_TEST_CLIPS = 10
GIF_MAX_FRAMES = 150

logger = logging.getLogger("inference")


def dataset_of(cfg):
    """The training run's DatasetConfig, or None when its root is not reachable from here."""
    try:
        return get_dataset_config(cfg["dataset"], root=cfg.get("root_path"), num_class=cfg["num_class"],
                                  train_list=cfg.get("train_list"), val_list=cfg.get("val_list"))
    except (KeyError, ValueError, OSError):
        return None


def class_names(cfg, path=None):
    """num_class names from `path`, else from the checkpoint's dataset, else 'class <i>' (with a note)."""
    num_class = cfg["num_class"]
    if path:
        names = list(read_class_names(path))
        source = path
    else:
        dataset = dataset_of(cfg)
        names = list(dataset.class_names) if dataset is not None and dataset.class_names else None
        source = f"dataset {cfg.get('dataset')!r} (root {cfg.get('root_path')!r})"
    if names is None:
        logger.warning(f"no class names found for {source}; pass --class_names FILE")
        return [f"class {i}" for i in range(num_class)]
    if len(names) != num_class:
        raise ValueError(f"{source} has {len(names)} class names but the model has {num_class} classes")
    return names


def make_video_reader(path, cfg, decoder=None, image_tmpl=None):
    if os.path.isdir(path):
        return RawFrameReader(image_tmpl or cfg.get("image_tmpl") or "img_{:05d}.jpg")
    return make_reader("video", decoder=decoder or cfg.get("decoder") or VIDEO_DECODER)


def classify(model, cfg, path, reader, num_clips=None, test_crops=1, device="cpu"):
    """Class probabilities [num_class] of one video, averaged over the test views (clips x crops).
    num_clips defaults to 1 for 2D models (their segments span the video) and 10 for clip models."""
    spec = model.input_spec
    if num_clips is None:
        num_clips = CLIP_MODEL_TEST_CLIPS if spec.layout == "clip" else 1
    sampler = model.make_sampler("test") if hasattr(model, "make_sampler") else \
        default_sampler(cfg, spec, "test", num_clips=num_clips)
    dataset = dataset_of(cfg) or SimpleNamespace(flip="always", flip_map={})
    transform = model.make_transform("test") if hasattr(model, "make_transform") else \
        default_transform(cfg, spec, dataset, "test", test_crops=test_crops)
    num_frames = reader.num_frames(path)
    if num_frames < 1:
        raise BadSampleError(path, None, "no frames")
    rng = np.random.default_rng(0)
    indices = sampler(num_frames, rng)
    frames = reader.read(path, indices.reshape(-1))
    frames, _ = transform(frames.reshape(indices.shape + frames.shape[1:]), 0, rng)
    normalize = DeviceNormalize.from_spec(spec).to(device)
    with torch.no_grad():
        x = normalize(frames[None].to(device)).flatten(0, 1)
        logits = as_output(model(x))["logits"]
        return average_views(logits, x.shape[0], softmax=True)[0].cpu()


def video_fps(path, default=25.0):
    """Frame rate of a video file (PyAV), `default` for frame folders or when unknown."""
    if os.path.isdir(path):
        return default
    with av.open(path) as container:
        rate = container.streams.video[0].average_rate
    return float(rate) if rate else default


def annotate(frame, lines):
    """The frame with `lines` written on a dark band at its top (the first line larger)."""
    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image, "RGBA")
    size = max(10, image.height // 14)
    fonts = [ImageFont.load_default(size=size), ImageFont.load_default(size=max(8, size * 2 // 3))]
    heights = [size + 4] + [fonts[1].size + 3] * (len(lines) - 1)
    draw.rectangle([0, 0, image.width, sum(heights) + 4], fill=(0, 0, 0, 150))
    y = 2
    for i, (text, h) in enumerate(zip(lines, heights)):
        draw.text((4, y), text, fill=(255, 255, 255), font=fonts[min(i, 1)])
        y += h
    return image


def write_annotated(path, reader, out, lines, fps, chunk=64):
    """Every frame of the video with `lines` drawn on it, as an mp4 (PyAV, even sides) or a GIF
    (Pillow; at most GIF_MAX_FRAMES frames, evenly spaced)."""
    num_frames = reader.num_frames(path)
    if out.lower().endswith(".gif"):
        step = max(1, -(-num_frames // GIF_MAX_FRAMES))
        frames = reader.read(path, np.arange(0, num_frames, step))
        images = [annotate(f, lines) for f in frames]
        images[0].save(out, save_all=True, append_images=images[1:], duration=int(1000 * step / fps), loop=0)
        return out
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(out, mode="w") as container:
        stream = container.add_stream(codec, rate=round(fps))
        stream.pix_fmt = "yuv420p"
        for start in range(0, num_frames, chunk):
            frames = reader.read(path, np.arange(start, min(start + chunk, num_frames)))
            if start == 0:   # yuv420p needs even sides: the odd last row/column is dropped
                stream.height, stream.width = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
            for frame in frames:
                image = np.asarray(annotate(frame, lines))[:stream.height, :stream.width]
                container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")))
        container.mux(stream.encode())
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("video", help="a video file or a folder of frames")
    p.add_argument("checkpoint", help="a checkpoint written by main.py (ckpt.pth / ckpt.best.pth)")
    p.add_argument("--class_names", default=None,
                   help="file of class names, one per line or '<index> <name>' (default: the checkpoint's dataset)")
    p.add_argument("--num_clips", type=int, default=None,
                   help=f"test clips (default: 1 for 2D models, {CLIP_MODEL_TEST_CLIPS} for 3D clip models)")
    p.add_argument("--test_crops", type=int, default=1, choices=[1, 3, 5, 10], help="crops per clip")
    p.add_argument("--decoder", default=None, choices=VIDEO_DECODERS, help="video decoder (default: the run's)")
    p.add_argument("--image_tmpl", default=None, help="frame file names of a folder (default: the run's)")
    p.add_argument("--topk", type=int, default=5, help="classes listed")
    p.add_argument("--out", default=None, help="write the annotated video here (.mp4 via PyAV, .gif via Pillow)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    if args.num_clips is not None and args.num_clips < 1:
        p.error("--num_clips must be >= 1")
    if not os.path.exists(args.video):
        p.error(f"no such video file or frame folder: {args.video}")

    setup_logging(stream="stderr")   # notes on stderr, off the prediction output
    try:
        model, cfg = model_from_checkpoint(args.checkpoint, needs_logits=True)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    model.to(args.device)
    names = class_names(cfg, args.class_names)
    reader = make_video_reader(args.video, cfg, args.decoder, args.image_tmpl)
    try:
        probs = classify(model, cfg, args.video, reader, args.num_clips, args.test_crops, args.device)
    except BadSampleError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    top = probs.topk(min(args.topk, len(names)))
    best, best_p = names[top.indices[0]], float(top.values[0])
    print(f"{args.video} is {best} ({best_p:.3f})")
    print(f"top-{len(top.indices)}:")
    for rank, (i, prob) in enumerate(zip(top.indices.tolist(), top.values.tolist()), 1):
        print(f"  {rank}. {names[i]} ({prob:.3f})")
    if args.out:
        lines = [f"{best} ({best_p:.2f})"] + [f"{names[i]} ({prob:.2f})"
                                              for i, prob in zip(top.indices.tolist()[1:3], top.values.tolist()[1:3])]
        write_annotated(args.video, reader, args.out, lines, video_fps(args.video))
        print(f"=> wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
