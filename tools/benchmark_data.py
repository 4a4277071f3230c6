"""Data-loading throughput (clips/s) of STTNet's pipelines against a JPEG-decode floor and a
classic TSN-style pipeline, on the same generated frames and videos.

Rows (per data format, rawframes and/or video):
  decode only   sample + read/decode the frames, nothing else: the floor for that format
                (rawframes also with PIL's decoder, the one the classic pipeline uses)
  ours train    TSN sampler (train) + GroupMultiScaleCrop + flip on uint8 (torch, whole clip at once)
  ours test     TSN sampler (test) + GroupScale + centre crop (1 clip x 1 crop)
  classic train TSN-style: PIL decode (rawframes) or the same decoder (video), then per frame PIL crop,
                PIL resize and flip, ToTensor and float mean/std normalisation in the worker
Columns: clips/s per number of DataLoader workers, measured after the first batch (worker start-up
and warm-up excluded), best of --repeats interleaved runs; and, from the 0-worker run, the CPU time
per clip, which load from other processes inflates much less than wall-clock time.

Example: python tools/benchmark_data.py --workers 0 1 2 --out bench.md
"""
import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ops.dataset import DecordReader, PyAVReader, RawFrameReader, VideoDataset, VideoList, collate_skip  # noqa: E402
from ops.sampling import TSNSampler  # noqa: E402
from ops.transforms import GroupMultiScaleCrop, build_transform  # noqa: E402
from tests.videogen import write_frame_folder, write_video  # noqa: E402

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def textured_frames(num_frames, height, width, rng):
    """uint8 [T, H, W, 3] that compress like camera frames (about 21 KiB per 340x256 JPEG at quality
    90; real frames resized to 340x256 give about 19): a smooth random scene with mid-frequency
    texture, panning by 2 px per frame, plus +-1 per-frame noise. Flat synthetic patterns would
    decode unrealistically fast."""
    scene_h, scene_w = height + 32, width + 2 * num_frames + 32
    coarse = rng.integers(0, 256, (scene_h // 16 + 1, scene_w // 16 + 1, 3), dtype=np.uint8)
    scene = np.asarray(Image.fromarray(coarse).resize((scene_w, scene_h), Image.BICUBIC)).astype(np.int16)
    texture = rng.integers(128 - 12, 128 + 13, (scene_h // 4, scene_w // 4), dtype=np.uint8)
    scene += np.asarray(Image.fromarray(texture).resize((scene_w, scene_h), Image.BILINEAR)).astype(np.int16)[..., None]
    scene -= 128
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        noise = rng.integers(-1, 2, (height, width, 3), dtype=np.int16)
        frames[t] = np.clip(scene[16:16 + height, 2 * t:2 * t + width] + noise, 0, 255)
    return frames


def make_data(root, num_videos, num_frames, height=256, width=340, seed=0):
    """num_videos frame folders (JPEG, quality 90) and mp4s (gop 12) with list files; returns
    {'rawframes': list file, 'video': list file} and the mean JPEG size in bytes."""
    rng = np.random.default_rng(seed)
    raw_lines, video_lines = [], []
    for v in range(num_videos):
        frames = textured_frames(num_frames, height, width, rng)
        write_frame_folder(os.path.join(root, "rawframes", f"vid{v:03d}"), frames, quality=90)
        write_video(os.path.join(root, "videos", f"vid{v:03d}.mp4"), frames, gop_size=12)
        raw_lines.append(f"rawframes/vid{v:03d} {num_frames} {v % 4}\n")
        video_lines.append(f"videos/vid{v:03d}.mp4 {num_frames} {v % 4}\n")
    lists = {"rawframes": os.path.join(root, "rawframes.txt"), "video": os.path.join(root, "videos.txt")}
    for fmt, lines in (("rawframes", raw_lines), ("video", video_lines)):
        with open(lists[fmt], "w", encoding="utf-8") as f:
            f.writelines(lines)
    folder = os.path.join(root, "rawframes", "vid000")
    jpeg_bytes = np.mean([os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder)])
    return lists, jpeg_bytes


def decode_only(frames, label, rng):
    """The floor's 'transform': drop the decoded frames so only sampling and decoding are timed."""
    return torch.zeros(1, dtype=torch.uint8), label


class ClassicTSNTransform:
    """The classic TSN worker pipeline: per frame a PIL crop, PIL bilinear resize and PIL flip,
    then ToTensor (float / 255) and mean/std normalisation, giving float [C, T, 3, size, size]."""

    def __init__(self, size):
        self.size = size
        self.crop = GroupMultiScaleCrop(size)   # the same crop geometry as ours
        self.mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(3, 1, 1)

    def __call__(self, frames, label, rng):
        clips = []
        for clip in frames:
            y, x, h, w = self.crop.window(clip.shape[1], clip.shape[2], rng)
            flip = rng.random() < 0.5
            out = []
            for frame in clip:
                image = Image.fromarray(frame).crop((x, y, x + w, y + h)).resize((self.size, self.size), Image.BILINEAR)
                if flip:
                    image = image.transpose(Image.FLIP_LEFT_RIGHT)
                tensor = torch.from_numpy(np.array(image)).permute(2, 0, 1).float().div(255)
                out.append(tensor.sub_(self.mean).div_(self.std))
            clips.append(torch.stack(out))
        return torch.stack(clips), label


def pipelines(fmt, decoder, segments, crop_size, scale_size):
    """(name, reader, sampler, transform) rows for one data format."""
    video_reader = DecordReader() if decoder == "decord" else PyAVReader()
    ours = RawFrameReader("img_{:05d}.jpg") if fmt == "rawframes" else video_reader
    classic = RawFrameReader("img_{:05d}.jpg", decoder="pil") if fmt == "rawframes" else video_reader
    train, test = TSNSampler(segments, mode="train"), TSNSampler(segments, mode="test")
    floors = [("decode only (floor)", ours, train, decode_only)]
    if fmt == "rawframes":
        floors.append(("decode only, PIL", classic, train, decode_only))
    return floors + [
        ("ours train", ours, train, build_transform("train", crop_size, scale_size)),
        ("ours test (1 crop)", ours, test, build_transform("test", crop_size, scale_size)),
        ("classic TSN train", classic, train, ClassicTSNTransform(crop_size)),
    ]


def measure(dataset, workers, batch_size, passes):
    """(clips/s, CPU seconds per clip of this process) over `passes` passes of the dataset, timed
    from the first batch on. With 0 workers the CPU time is the whole pipeline's cost, which other
    load on the machine does not inflate the way it does wall-clock time."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                        collate_fn=collate_skip, persistent_workers=workers > 0)
    clips, start, cpu_start = 0, None, None
    for epoch in range(passes):
        dataset.set_epoch(epoch)
        for frames, labels, indices, skipped in loader:
            if skipped:
                raise RuntimeError(f"unexpected bad samples: {skipped}")
            if start is None:
                start, cpu_start = time.perf_counter(), time.process_time()
            else:
                clips += len(labels)
    return clips / (time.perf_counter() - start), (time.process_time() - cpu_start) / clips


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown CPU"


def markdown(speeds, cpu, workers):
    head = "| pipeline | data | " + " | ".join(f"{w} worker{'s' if w != 1 else ''}" for w in workers)
    head += " | CPU ms per clip |" if cpu else " |"
    lines = [head, "|" + " --- |" * (len(workers) + 2 + bool(cpu))]
    for key, row in speeds.items():
        cells = [f"{s:.1f}" for s in row] + ([f"{1000 * cpu[key]:.1f}"] if cpu else [])
        lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + " |")
    for fmt in dict.fromkeys(fmt for _, fmt in speeds):
        ours, classic, floor = (("ours train", fmt), ("classic TSN train", fmt), ("decode only (floor)", fmt))
        cells = [f"{a / b:.2f}x" for a, b in zip(speeds[ours], speeds[classic])]
        lines.append(f"| ours train / classic train | {fmt} | " + " | ".join(cells) +
                     (f" | {cpu[classic] / cpu[ours]:.2f}x |" if cpu else " |"))
        cells = [f"{a / b:.0%}" for a, b in zip(speeds[ours], speeds[floor])]
        lines.append(f"| ours train / decode floor | {fmt} | " + " | ".join(cells) +
                     (f" | {cpu[floor] / cpu[ours]:.0%} |" if cpu else " |"))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--videos", type=int, default=32, help="generated videos")
    parser.add_argument("--frames", type=int, default=64, help="frames per generated video (340x256)")
    parser.add_argument("--segments", type=int, default=8, help="TSN segments (frames per clip)")
    parser.add_argument("--crop_size", type=int, default=224, help="crop side")
    parser.add_argument("--scale_size", type=int, default=256, help="short side for the test pipeline")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="DataLoader worker counts")
    parser.add_argument("-b", "--batch_size", type=int, default=8, help="clips per batch")
    parser.add_argument("--passes", type=int, default=2, help="passes over the videos per measurement")
    parser.add_argument("--repeats", type=int, default=2, help="measurements per cell; the best is kept")
    parser.add_argument("--formats", nargs="+", default=["rawframes", "video"], choices=["rawframes", "video"],
                        help="data formats to measure")
    parser.add_argument("--decoder", default="decord", choices=["decord", "pyav"], help="video decoder")
    parser.add_argument("--data_dir", default=None, help="where to write the test data (default: a temp dir, removed)")
    parser.add_argument("--out", default=None, help="also write the markdown table to this file")
    args = parser.parse_args()
    if args.videos < args.batch_size * 2:
        parser.error("--videos must be at least two batches (the first batch is not timed)")
    torch.set_num_threads(1)   # like a DataLoader worker, also for --workers 0

    with tempfile.TemporaryDirectory() as tmp:
        root = args.data_dir or tmp
        start = time.perf_counter()
        lists, jpeg_bytes = make_data(root, args.videos, args.frames)
        print(f"generated {args.videos} videos x {args.frames} frames (340x256, JPEG {jpeg_bytes / 1024:.1f} KiB "
              f"per frame) in {time.perf_counter() - start:.0f} s under {root}", flush=True)
        rows = [(fmt, row) for fmt in args.formats
                for row in pipelines(fmt, args.decoder, args.segments, args.crop_size, args.scale_size)]
        lists = {fmt: VideoList(lists[fmt], root) for fmt in args.formats}
        speeds, cpu = {}, {}
        for repeat in range(args.repeats):   # interleaved, so a burst of other load hits one repeat only
            for fmt, (name, reader, sampler, transform) in rows:
                dataset = VideoDataset(lists[fmt], reader, sampler, transform)
                for i, w in enumerate(args.workers):
                    clips_s, cpu_clip = measure(dataset, w, args.batch_size, args.passes)
                    best = speeds.setdefault((name, fmt), [0.0] * len(args.workers))
                    best[i] = max(best[i], clips_s)
                    if w == 0:
                        cpu[(name, fmt)] = min(cpu.get((name, fmt), float("inf")), cpu_clip)
                print(f"repeat {repeat + 1}: {name:20s} {fmt:9s} " +
                      " ".join(f"{s:7.1f}" for s in speeds[(name, fmt)]), flush=True)

    header = (f"clips/s, {args.segments} frames per clip, {args.crop_size} px crops, batch {args.batch_size}, "
              f"{args.videos} videos x {args.passes} passes; {os.cpu_count()} CPU cores ({cpu_model()}), "
              f"torch {torch.__version__}, video decoder {args.decoder}, JPEG {jpeg_bytes / 1024:.1f} KiB per frame")
    table = header + "\n\n" + markdown(speeds, cpu, args.workers) + "\n"
    print("\n" + table)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(table)


if __name__ == "__main__":
    main()
