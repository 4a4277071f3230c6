"""Data-loading cost per clip of STTNet's pipelines against decode floors and a classic TSN/TSM
pipeline, on generated frames and videos or on a dataset of your own (--root/--list).

Rows, each a sampler + reader + transform run through VideoDataset and a DataLoader:
  rawframes  floor <decoder>       TSN sampler (train) + RawFrameReader with that JPEG decoder, nothing else
             ours train / test     the default reader + build_transform("train"/"test", crop, scale); the
                                   reader decodes only the crop's window (ops/jpeg_roi.py), except in the
                                   'whole frames' rows
             classic TSN train     TSM's published train pipeline re-implemented: PIL open + convert per
                                   frame, per-frame PIL crop + bilinear resize + flip, Stack into H x W x 3T,
                                   ToTorchFormatTensor (float / 255), per-channel mean/std normalisation
             TSM (real code)       with --tsm_repo: TSM's own TSNDataSet and transforms, imported from a
                                   checkout of the published repository (never copied here)
             small: ...            the 128-px setting (STTS): --small_crop crops from frames scaled to
                                   --small_scale; 'before' = full-size torchvision decode + resize (the
                                   project's earlier path), 'ours' = scaled decoding (the default)
  video      floor <decoder> <sampler>   each video decoder, TSN 8-segment sparse and 32 consecutive frames
With rawframes it also reports how far scaled decoding moves the pixels of the small setting.
The figure is the CPU time per clip of this process with 0 workers (time.process_time over
--passes passes, from the second batch on), the best of --rounds rounds interleaved over all rows,
so a burst of load from other jobs hits one round of one row; --workers adds wall-clock clips/s.

    python tools/benchmark_data.py --out bench.md --json bench.json
    python tools/benchmark_data.py --root $DATA/ucf101 --list $DATA/ucf101/val.txt --data_format video
"""
import argparse
import importlib.util
import json
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

from ops.dataset import (JPEG_DECODERS, READERS, RawFrameReader, VideoDataset, VideoList,  # noqa: E402
                         check_torchcodec, collate_skip)
from ops.sampling import ClipSampler, TSNSampler  # noqa: E402
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


def make_data(root, num_videos, num_frames, video_frames, gops, height=256, width=340, seed=0):
    """Frame folders (JPEG quality 90) of num_videos x num_frames and, per GOP length, a list of
    num_videos items over a quarter as many mp4s of video_frames frames; returns
    {'rawframes': list file, 'video gop N': list file}."""
    rng = np.random.default_rng(seed)
    lists = {"rawframes": []}
    for v in range(num_videos):
        write_frame_folder(os.path.join(root, "rawframes", f"vid{v:03d}"),
                           textured_frames(num_frames, height, width, rng), quality=90)
        lists["rawframes"].append(f"rawframes/vid{v:03d} {num_frames} {v % 4}\n")
    num_files = max(2, num_videos // 4)   # each video listed several times: fewer long videos to write
    for v in range(num_files):
        frames = textured_frames(video_frames, height, width, rng)
        for gop in gops:
            write_video(os.path.join(root, f"gop{gop}", f"vid{v:03d}.mp4"), frames, gop_size=gop)
    for gop in gops:
        lists[f"video gop {gop}"] = [f"gop{gop}/vid{v % num_files:03d}.mp4 {video_frames} {v % 4}\n"
                                     for v in range(num_videos)]
    files = {}
    for name, lines in lists.items():
        files[name] = os.path.join(root, name.replace(" ", "_") + ".txt")
        with open(files[name], "w", encoding="utf-8") as f:
            f.writelines(lines)
    return files


def decode_only(frames, label, rng):
    """The floors' 'transform': drop the decoded frames so only sampling and decoding are timed."""
    return torch.zeros(1, dtype=torch.uint8), label


class PILFrameReader(RawFrameReader):
    """The classic reader: Image.open(...).convert('RGB') per frame, kept as PIL images (an object
    array [T]), as TSN/TSM's dataset loads them."""

    def read(self, path, indices):
        frames = np.empty(len(indices), dtype=object)
        for slot, index in enumerate(np.asarray(indices).tolist()):
            frames[slot] = Image.open(self.frame_file(path, index)).convert("RGB")
        return frames


class ClassicTSNTransform:
    """TSM's train transform, written here from its description: per frame PIL crop + bilinear resize
    (GroupMultiScaleCrop's geometry), a flip of the whole clip with p = 0.5, Stack (concatenate the
    frames along channels), ToTorchFormatTensor (permute, float, / 255) and GroupNormalize (one
    in-place sub/div per channel); float [3T, size, size]."""

    def __init__(self, size):
        self.size = size
        self.crop = GroupMultiScaleCrop(size)

    def __call__(self, frames, label, rng):
        images = list(frames.reshape(-1))
        y, x, h, w = self.crop.window(images[0].height, images[0].width, rng)
        images = [image.crop((x, y, x + w, y + h)).resize((self.size, self.size), Image.BILINEAR) for image in images]
        if rng.random() < 0.5:
            images = [image.transpose(Image.FLIP_LEFT_RIGHT) for image in images]
        stacked = np.concatenate(images, axis=2)
        tensor = torch.from_numpy(stacked).permute(2, 0, 1).contiguous().float().div(255)
        for channel, m, s in zip(tensor, IMAGENET_MEAN * len(images), IMAGENET_STD * len(images)):
            channel.sub_(m).div_(s)
        return tensor, label


def tsm_dataset(repo, root, list_file, segments, size, image_tmpl):
    """TSM's TSNDataSet with its train transforms, loaded from a checkout of the published code."""
    def load(name):
        spec = importlib.util.spec_from_file_location(f"tsm_{name}", os.path.join(repo, "ops", f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    ds, tf = load("dataset"), load("transforms")
    import torchvision
    transform = torchvision.transforms.Compose([
        tf.GroupMultiScaleCrop(size, [1, .875, .75, .66]), tf.GroupRandomHorizontalFlip(is_flow=False),
        tf.Stack(roll=False), tf.ToTorchFormatTensor(div=True), tf.GroupNormalize(list(IMAGENET_MEAN), list(IMAGENET_STD))])
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()):   # it prints the list size
        return ds.TSNDataSet(root, list_file, num_segments=segments, new_length=1, modality="RGB",
                             image_tmpl=image_tmpl, transform=transform, random_shift=True, test_mode=False)


def rawframe_rows(args):
    """(name, reader, sampler, transform) for frame folders."""
    train = TSNSampler(args.segments, mode="train")
    tmpl = args.image_tmpl
    rows = []
    for name in JPEG_DECODERS:
        if name == "torchcodec" and not _available("torchcodec"):
            continue
        rows.append((f"floor {name}", RawFrameReader(tmpl, name), train, decode_only))
    rows += [
        ("ours train", RawFrameReader(tmpl), train, build_transform("train", args.crop_size, args.scale_size)),
        ("ours train, whole frames (--no_roi_decode)", RawFrameReader(tmpl, roi=False), train,
         build_transform("train", args.crop_size, args.scale_size)),
        ("ours test (1 crop)", RawFrameReader(tmpl), TSNSampler(args.segments, mode="test"),
         build_transform("test", args.crop_size, args.scale_size)),
        ("classic TSN train", PILFrameReader(tmpl), train, ClassicTSNTransform(args.crop_size)),
    ]
    small = build_transform("train", args.small_crop, args.small_scale, train_aug="scale_crop")
    rows += [
        ("small: floor scaled decode", RawFrameReader(tmpl, min_side=args.small_scale), train, decode_only),
        ("small: before (torchvision, full size)", RawFrameReader(tmpl, "torchvision"), train, small),
        ("small: ours (scaled decode)", RawFrameReader(tmpl, min_side=small.min_side), train, small),
        ("small: ours, whole frames (--no_roi_decode)", RawFrameReader(tmpl, min_side=small.min_side, roi=False),
         train, small),
    ]
    return rows


def scaled_decode_difference(video_list, tmpl, side, videos=8, frames=4):
    """Mean and 99th percentile of |scaled decode - full decode|, in levels of 255, after the small
    setting's GroupScale(side) and a centre crop: what scaled decoding changes in the input."""
    scale = build_transform("val", side, side)
    full, scaled = RawFrameReader(tmpl), RawFrameReader(tmpl, min_side=side)
    diffs = []
    for i in range(min(videos, len(video_list))):
        path = video_list.path(i)
        indices = np.linspace(0, full.num_frames(path) - 1, frames).round().astype(int)
        a = scale(full.read(path, indices)[None], 0, None)[0].numpy().astype(np.int16)
        b = scale(scaled.read(path, indices)[None], 0, None)[0].numpy().astype(np.int16)
        diffs.append(np.abs(a - b).ravel())
    diffs = np.concatenate(diffs)
    return {"mean": float(diffs.mean()), "p99": float(np.percentile(diffs, 99)), "max": int(diffs.max())}


def video_rows(args):
    samplers = {f"TSN {args.segments}": TSNSampler(args.segments, mode="train"),
                "32 consecutive": ClipSampler(32, 1, mode="train")}
    return [(f"floor {decoder}, {sampler_name}", READERS[decoder](), sampler, decode_only)
            for sampler_name, sampler in samplers.items() for decoder in args.decoders]


def _available(decoder):
    if decoder != "torchcodec":
        return True
    try:
        check_torchcodec()
        return True
    except ImportError:
        return False


def measure(dataset, workers, batch_size, passes):
    """(clips/s, CPU seconds per clip of this process) over `passes` passes, from the second batch on.
    With 0 workers the CPU time is the whole pipeline's cost, which other load on the machine
    inflates much less than wall-clock time."""
    collate = collate_skip if isinstance(dataset, VideoDataset) else None
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate,
                        persistent_workers=workers > 0)
    clips, start, cpu_start = 0, None, None
    for epoch in range(passes):
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        for batch in loader:
            if collate is not None and batch[3]:
                raise RuntimeError(f"unexpected bad samples: {batch[3]}")
            if start is None:
                start, cpu_start = time.perf_counter(), time.process_time()
            else:
                clips += len(batch[1])
    if clips == 0:
        raise ValueError(f"one batch of {batch_size} is all the data: use more videos, passes or a smaller batch")
    return clips / (time.perf_counter() - start), (time.process_time() - cpu_start) / clips


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown CPU"


def ratios(results):
    """The comparisons the targets are stated in, from the CPU time per clip."""
    cpu = {(r["data"], r["name"]): r["cpu_ms_per_clip"] for r in results}
    out = {}
    raw = {name: ms for (data, name), ms in cpu.items() if data == "rawframes"}
    floors = [ms for name, ms in raw.items() if name.startswith("floor ")]
    if "ours train" in raw:
        if floors:
            out["rawframes: fastest floor / ours train"] = min(floors) / raw["ours train"]
        for ref in ("classic TSN train", "TSM (real code)"):
            if ref in raw:
                out[f"rawframes: {ref} / ours train (speed-up)"] = raw[ref] / raw["ours train"]
    if "classic TSN train" in raw and "TSM (real code)" in raw:
        out["rawframes: classic TSN train / TSM (real code)"] = raw["classic TSN train"] / raw["TSM (real code)"]
    for whole, ours in (("ours train, whole frames (--no_roi_decode)", "ours train"),
                        ("small: ours, whole frames (--no_roi_decode)", "small: ours (scaled decode)")):
        if whole in raw and ours in raw:
            out[f"rawframes: {whole} / {ours} (ROI decoding's speed-up)"] = raw[whole] / raw[ours]
    if "small: ours (scaled decode)" in raw:
        out["small: before / ours (speed-up)"] = (raw["small: before (torchvision, full size)"] /
                                                  raw["small: ours (scaled decode)"])
    for (data, name), ms in cpu.items():
        if data.startswith("video") and name.startswith("floor ") and not name.startswith("floor decord"):
            decord = cpu.get((data, "floor decord, " + name.split(", ", 1)[1]))
            if decord:
                out[f"{data}: {name[6:]} / decord"] = ms / decord
    return out


def markdown(results, workers, header):
    lines = [header, "", "| data | pipeline | CPU ms per clip | " + " | ".join(f"clips/s, {w} workers" for w in workers) +
             " |", "| --- | --- | ---: |" + " ---: |" * len(workers)]
    for r in results:
        lines.append(f"| {r['data']} | {r['name']} | {r['cpu_ms_per_clip']:.2f} | " +
                     " | ".join(f"{r['clips_per_s'][str(w)]:.1f}" for w in workers) + " |")
    lines += ["", "| ratio (CPU time per clip) | value |", "| --- | ---: |"]
    lines += [f"| {name} | {value:.2f} |" for name, value in ratios(results).items()]
    return "\n".join(lines) + "\n"


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=None, help="your dataset's root (with --list); default: generated data")
    p.add_argument("--list", default=None, help="your list file (paths relative to --root)")
    p.add_argument("--data_format", default="rawframes", choices=["rawframes", "video"], help="of --list")
    p.add_argument("--image_tmpl", default="img_{:05d}.jpg", help="frame file names")
    p.add_argument("--videos", type=int, default=16, help="generated frame folders (a quarter as many videos)")
    p.add_argument("--frames", type=int, default=64, help="frames per generated folder")
    p.add_argument("--size", type=int, nargs=2, default=[256, 340], metavar=("H", "W"), help="generated frame size")
    p.add_argument("--video_frames", type=int, default=300, help="frames per generated video")
    p.add_argument("--gops", type=int, nargs="+", default=[12, 250], help="key-frame intervals of the videos")
    p.add_argument("--formats", nargs="+", default=["rawframes", "video"], choices=["rawframes", "video"])
    p.add_argument("--decoders", nargs="+", default=list(READERS), choices=list(READERS), help="video decoders")
    p.add_argument("--segments", type=int, default=8, help="TSN segments (frames per clip)")
    p.add_argument("--crop_size", type=int, default=224, help="crop side")
    p.add_argument("--scale_size", type=int, default=256, help="short side for the test pipeline")
    p.add_argument("--small_crop", type=int, default=112, help="crop side of the small (STTS) setting")
    p.add_argument("--small_scale", type=int, default=128, help="short side of the small setting")
    p.add_argument("--tsm_repo", default=None, help="a checkout of mit-han-lab/temporal-shift-module: adds a "
                   "row running its own dataset and transforms")
    p.add_argument("--workers", type=int, nargs="+", default=[0], help="DataLoader worker counts (wall clock)")
    p.add_argument("-b", "--batch_size", type=int, default=4, help="clips per batch")
    p.add_argument("--passes", type=int, default=2, help="passes over the videos per measurement")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best is kept")
    p.add_argument("--data_dir", default=None, help="where to write generated data (default: a temp dir, removed)")
    p.add_argument("--out", default=None, help="write the markdown table to this file")
    p.add_argument("--json", default=None, help="write the rows and ratios as JSON to this file")
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.root is None) != (args.list is None):
        parser.error("--root and --list go together")
    args.decoders = [d for d in args.decoders if _available(d)]
    torch.set_num_threads(1)   # like a DataLoader worker, also for --workers 0

    with tempfile.TemporaryDirectory() as tmp:
        if args.list:
            root, lists = args.root, {args.data_format: args.list}
            what = f"{args.list} under {args.root}"
        else:
            root = args.data_dir or tmp
            start = time.perf_counter()
            lists = make_data(root, args.videos, args.frames, args.video_frames, args.gops, *args.size)
            lists = {k: v for k, v in lists.items() if k.split()[0] in args.formats}
            what = (f"generated: {args.videos} folders x {args.frames} JPEG frames ({args.size[1]}x{args.size[0]}, "
                    f"quality 90), "
                    f"{max(2, args.videos // 4)} H.264 mp4 x {args.video_frames} frames per GOP {args.gops}")
            print(f"{what} in {time.perf_counter() - start:.0f} s", flush=True)
        datasets = []
        for data, list_file in lists.items():
            video_list = VideoList(list_file, root)
            rows = rawframe_rows(args) if data == "rawframes" else video_rows(args)
            datasets += [(data, name, VideoDataset(video_list, reader, sampler, transform))
                         for name, reader, sampler, transform in rows]
            if data == "rawframes" and args.tsm_repo:
                datasets.append((data, "TSM (real code)", tsm_dataset(args.tsm_repo, root, list_file, args.segments,
                                                                      args.crop_size, args.image_tmpl)))
        results = {}
        for round_ in range(args.rounds):   # interleaved: a burst of other load hits one round of one row
            for data, name, dataset in datasets:
                r = results.setdefault((data, name), {"data": data, "name": name, "cpu_ms_per_clip": float("inf"),
                                                      "clips_per_s": {str(w): 0.0 for w in args.workers}})
                for w in args.workers:
                    clips_s, cpu_clip = measure(dataset, w, args.batch_size, args.passes)
                    r["clips_per_s"][str(w)] = max(r["clips_per_s"][str(w)], clips_s)
                    if w == 0 or 0 not in args.workers:
                        r["cpu_ms_per_clip"] = min(r["cpu_ms_per_clip"], 1000 * cpu_clip)
                print(f"round {round_ + 1}: {data:14s} {name:40s} {r['cpu_ms_per_clip']:7.2f} ms", flush=True)
        difference = None
        if "rawframes" in lists:   # inside: the generated frames go with the temporary folder
            difference = scaled_decode_difference(VideoList(lists["rawframes"], root), args.image_tmpl,
                                                  args.small_scale)
    results = list(results.values())
    header = (f"CPU ms per clip (0 workers, best of {args.rounds} interleaved rounds), {args.segments} frames per "
              f"TSN clip, {args.crop_size} px crops, batch {args.batch_size}; {what}; {os.cpu_count()} CPU cores "
              f"({cpu_model()}), torch {torch.__version__}")
    table = markdown(results, args.workers, header)
    if difference:
        table += (f"\nscaled decoding at short side {args.small_scale} against a full decode + resize: mean |difference| "
                  f"{difference['mean']:.2f}, 99th percentile {difference['p99']:.0f}, max {difference['max']} "
                  f"(levels of 255)\n")
    print("\n" + table)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(table)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"settings": vars(args), "machine": {"cpus": os.cpu_count(), "cpu": cpu_model(),
                                                           "torch": torch.__version__},
                       "rows": results, "ratios": ratios(results), "scaled_decode_difference": difference},
                      f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
