"""The built-in synthetic benchmark: 12 classes, 8 of which only frame order can tell apart.

Four appearance classes differ by the object's shape, visible in any single frame. The other
eight come in pairs whose videos are literally the same generated frames played in opposite
order (moving left / right, growing / shrinking, rotating clockwise / anticlockwise, appearing /
disappearing): a model that ignores frame order sees the same distribution of frame sets for both
members of a pair and is exactly at chance inside it. Background, colours, size, position, speed
and noise are random per video, so no colour or position shortcut exists. Every video is a pure
function of (seed, split, class, index), so generation runs in parallel and resumes where it
stopped. See docs/synthetic.md.

    python tools/synthetic.py --out data/synthetic --videos_per_class 40 10 10 --seed 0 -j 2

The defaults are benchmark version VERSION (stored in synthetic.json); results name the version.
"""
import argparse
import json
import math
import os
import shutil
import sys
import time

import av
import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tools.parallel import run_parallel  # noqa: E402

APPEARANCE = ("ring", "cross", "star", "stripes")
PAIRS = (("moving_left", "moving_right"), ("growing", "shrinking"),
         ("rotating_clockwise", "rotating_anticlockwise"), ("appearing", "disappearing"))
CLASSES = APPEARANCE + tuple(name for pair in PAIRS for name in pair)
SPLITS = ("train", "val", "test")
FRAME_TMPL = "img_{:05d}.jpg"
FPS = 12
# The benchmark's version, stored in every dataset's synthetic.json and in the results measured on
# it. v1: 128x170 frames. v2: square 72x72 frames (a 64 px centre view keeps every object whole;
# docs/synthetic.md has the measurements). v3: rotations slow enough that 4 segments see their
# direction. Change it with anything that changes the videos.
VERSION = 3
DEFAULT_SIZE = (72, 72)
DEFAULT_FRAMES = (24, 48)
DEFAULT_VIDEOS_PER_CLASS = (40, 10, 10)
SUPERSAMPLE = 4


def _regular(n, radius=1.0, phase=0.0):
    a = phase + 2 * np.pi * np.arange(n) / n
    return np.stack([np.cos(a), np.sin(a)], 1) * radius


def _star(points, inner):
    return _regular(2 * points, 1.0, -np.pi / 2) * np.tile([[1.0], [inner]], (points, 1))


_DISK = _regular(48)
_CROSS = np.array([[-.3, -1], [.3, -1], [.3, -.3], [1, -.3], [1, .3], [.3, .3], [.3, 1], [-.3, 1],
                   [-.3, .3], [-1, .3], [-1, -.3], [-.3, -.3]])
_ARROW = np.array([[-1, -.18], [.3, -.18], [.3, -.5], [1, 0], [.3, .5], [.3, .18], [-1, .18]])
_ELL = np.array([[-.8, -1], [-.3, -1], [-.3, .5], [.8, .5], [.8, 1], [-.8, 1]])
# Each shape is a list of (unit polygon, fill): later polygons paint over earlier ones (0 cuts holes).
SHAPES = {
    "disk": [(_DISK, 255)],
    "square": [(_regular(4, 1.0, np.pi / 4), 255)],
    "triangle": [(_regular(3, 1.0, -np.pi / 2), 255)],
    "ring": [(_DISK, 255), (_DISK * 0.55, 0)],
    "cross": [(_CROSS, 255)],
    "star": [(_star(5, 0.42), 255)],
    "stripes": [(_regular(4, 1.0, np.pi / 4), 255)],
    "arrow": [(_ARROW, 255)],
    "ell": [(_ELL, 255)],
    "mirrored_ell": [(_ELL * (-1, 1), 255)],
}
# Shapes of the pair classes, one set per pair: none of them is an appearance class's shape, so
# which pair a video belongs to shows in one frame (what a frame-order-agnostic model can learn
# quickly), while inside a pair only the order of the frames tells the classes apart. The rotating
# shapes have no rotational symmetry, so the direction of rotation is visible. Each set holds its
# mirror images, so a horizontally flipped video is a video of the class FLIP_MAP names.
_PAIR_SHAPES = (("disk",), ("square",), ("arrow", "ell", "mirrored_ell"), ("triangle",))
# A horizontal flip turns leftward motion rightward and clockwise turning anticlockwise.
FLIP_MAP = {4: 5, 5: 4, 8: 9, 9: 8}


def num_frames(rng, frames=DEFAULT_FRAMES):
    """The video length: the first draw of a video's rng, so it is known without rendering."""
    return int(rng.integers(frames[0], frames[1] + 1))


def video_rng(seed, split, label, index):
    """The rng of one video, derived from (seed, split, class, index) only."""
    return np.random.default_rng([seed, SPLITS.index(split), label, index])


def video_name(split, label, index):
    return f"{split}_{CLASSES[label]}_{index:04d}"


def _background(rng, h, w):
    """A calm gradient or a low-frequency colour texture, float32 [h, w, 3].

    Colours vary by at most about +-40 around a random base, so the object, drawn far from the
    base colour, always stands out (a busy, high-contrast background made the benchmark slow to learn).
    """
    base = rng.uniform(0, 255, 3)
    if rng.random() < 0.5:
        c0, c1 = base, np.clip(base + rng.uniform(-80, 80, 3), 0, 255)
        a = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = (xx - w / 2) * np.cos(a) + (yy - h / 2) * np.sin(a)
        t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
        bg = c0 + (c1 - c0) * t[..., None]
    else:
        gh, gw = rng.integers(3, 9), rng.integers(3, 11)
        grid = base + rng.uniform(-40, 40, (gh, gw, 3))
        small = Image.fromarray(np.clip(grid, 0, 255).astype(np.uint8))
        bg = np.asarray(small.resize((w, h), Image.BICUBIC), np.float32)
    return bg.astype(np.float32)


_LUMA = np.array([0.299, 0.587, 0.114])


def _colour(rng, avoid, min_dist=150.0, min_luma=120.0):
    """A random colour at least min_dist (RGB distance) and min_luma (brightness) from `avoid`,
    so the object's outline shows in every channel, not only in hue (the strong brightness
    contrast is what lets a small CNN pick the shapes up within a few hundred steps). Near a
    mid-grey `avoid` no colour qualifies: then the most contrasting of the draws."""
    cands = rng.uniform(0, 255, (200, 3))
    luma = np.abs((cands - avoid) @ _LUMA)
    ok = np.nonzero((np.linalg.norm(cands - avoid, axis=1) >= min_dist) & (luma >= min_luma))[0]
    return cands[ok[0]] if len(ok) else cands[np.argmax(luma)]


def _draw(frame, shape, centre, radius, angle, colour, alpha=1.0, stripes=None):
    """Alpha-blend an anti-aliased shape onto frame (float32 [H, W, 3]) in place.

    `angle` is in radians, clockwise on screen (image y points down). `stripes` =
    (second colour, period in units of radius) paints stripes that turn with the shape.
    """
    h, w = frame.shape[:2]
    cos, sin = math.cos(angle), math.sin(angle)
    rot = np.array([[cos, sin], [-sin, cos]]) * radius
    polys = [(verts @ rot + centre, fill) for verts, fill in SHAPES[shape]]
    pts = np.concatenate([p for p, _ in polys])
    x0, y0 = np.floor(np.maximum(pts.min(0), 0)).astype(int)
    x1, y1 = np.ceil(np.minimum(pts.max(0), (w, h))).astype(int)
    if x1 <= x0 or y1 <= y0 or alpha <= 0:
        return
    mask = Image.new("L", ((x1 - x0) * SUPERSAMPLE, (y1 - y0) * SUPERSAMPLE), 0)
    pen = ImageDraw.Draw(mask)
    for p, fill in polys:
        pen.polygon([tuple(v) for v in (p - (x0, y0)) * SUPERSAMPLE], fill=fill)
    a = np.asarray(mask.reduce(SUPERSAMPLE), np.float32)[..., None] * (alpha / 255.0)
    paint = colour
    if stripes is not None:
        second, period = stripes
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32) + 0.5
        u = ((xx - centre[0]) * cos + (yy - centre[1]) * sin) / (radius * period)
        paint = np.where((np.floor(u) % 2 == 0)[..., None], colour, second)
    region = frame[y0:y1, x0:x1]
    region += (paint - region) * a


def _finish(rng, frames, bg):
    """Per-frame brightness flicker and sensor noise, then uint8."""
    sigma = rng.uniform(0.5, 2.5)
    gains = rng.normal(1.0, 0.01, len(frames)).astype(np.float32)
    out = np.empty(frames.shape, np.uint8)
    for t in range(len(frames)):
        f = frames[t] * gains[t] + rng.standard_normal(bg.shape, np.float32) * sigma
        np.clip(f, 0, 255, out=f)
        out[t] = f
    return out


def _place(rng, radius, h, w, spread=1.0):
    """A centre (x, y) that keeps a disc of `radius` inside the frame, within `spread` (0-1) of
    the free range around the middle (so centre crops keep the object)."""
    free = np.array([w - 2 * radius, h - 2 * radius]) * spread
    return np.array([w / 2, h / 2]) + rng.uniform(-0.5, 0.5, 2) * np.maximum(free, 0)


def _shape(rng, pair):
    shapes = _PAIR_SHAPES[pair]
    return shapes[rng.integers(len(shapes))], rng.uniform(0, 2 * np.pi)


def _appearance(rng, shape, t_len, bg, m):
    """A slowly drifting, slowly turning object: its shape is the class."""
    h, w = bg.shape[:2]
    radius = rng.uniform(0.3, 0.4) * m
    c0 = _place(rng, radius, h, w, 0.5)
    v = rng.normal(0, 0.25, 2)
    a0, da = rng.uniform(0, 2 * np.pi), rng.uniform(-0.02, 0.02)
    colour = _colour(rng, bg.mean((0, 1)))
    stripes = (_colour(rng, colour, 150.0), rng.uniform(0.35, 0.5)) if shape == "stripes" else None
    frames = np.repeat(bg[None], t_len, 0)
    for t in range(t_len):
        c = np.clip(c0 + v * t, radius, (w - radius, h - radius))
        _draw(frames[t], shape, c, radius, a0 + da * t, colour, stripes=stripes)
    return frames


def _moving_left(rng, t_len, bg, m):
    h, w = bg.shape[:2]
    radius = rng.uniform(0.22, 0.3) * m
    dist = rng.uniform(0.6, 0.9) * (w - 2 * radius)
    x_start = rng.uniform(radius + dist, w - radius)
    y0, vy = _place(rng, radius, h, w, 0.6)[1], rng.uniform(-0.1, 0.1)
    shape, angle = _shape(rng, 0)
    colour = _colour(rng, bg.mean((0, 1)))
    frames = np.repeat(bg[None], t_len, 0)
    for t in range(t_len):
        c = np.array([x_start - dist * t / (t_len - 1), np.clip(y0 + vy * t, radius, h - radius)])
        _draw(frames[t], shape, c, radius, angle, colour)
    return frames


def _growing(rng, t_len, bg, m):
    h, w = bg.shape[:2]
    r0 = rng.uniform(0.1, 0.14) * m
    r1 = min(r0 * rng.uniform(3.0, 4.0), 0.45 * m)
    c0, v = _place(rng, r1, h, w, 0.5), rng.normal(0, 0.1, 2)
    shape, angle = _shape(rng, 1)
    colour = _colour(rng, bg.mean((0, 1)))
    frames = np.repeat(bg[None], t_len, 0)
    for t in range(t_len):
        c = np.clip(c0 + v * t, r1, (w - r1, h - r1))
        _draw(frames[t], shape, c, r0 + (r1 - r0) * t / (t_len - 1), angle, colour)
    return frames


def _rotating_clockwise(rng, t_len, bg, m):
    h, w = bg.shape[:2]
    radius = rng.uniform(0.3, 0.4) * m
    c0, v = _place(rng, radius, h, w, 0.5), rng.normal(0, 0.1, 2)
    # Slow enough that frames a quarter of the video apart (4 segments) turn by less than 180 degrees
    # even in training's widest segment draws: beyond that the direction is ambiguous.
    speed = np.deg2rad(rng.uniform(2.5, 5.0))
    shape, a0 = _shape(rng, 2)
    colour = _colour(rng, bg.mean((0, 1)))
    frames = np.repeat(bg[None], t_len, 0)
    for t in range(t_len):
        c = np.clip(c0 + v * t, radius, (w - radius, h - radius))
        _draw(frames[t], shape, c, radius, a0 + speed * t, colour)
    return frames


def _appearing(rng, t_len, bg, m):
    h, w = bg.shape[:2]
    radius = rng.uniform(0.28, 0.38) * m
    c0, v = _place(rng, radius, h, w, 0.5), rng.normal(0, 0.1, 2)
    t0 = rng.uniform(0.0, 0.2) * (t_len - 1)
    t1 = rng.uniform(0.6, 0.9) * (t_len - 1)
    shape, angle = _shape(rng, 3)
    colour = _colour(rng, bg.mean((0, 1)))
    frames = np.repeat(bg[None], t_len, 0)
    for t in range(t_len):
        c = np.clip(c0 + v * t, radius, (w - radius, h - radius))
        _draw(frames[t], shape, c, radius, angle, colour, alpha=float(np.clip((t - t0) / (t1 - t0), 0, 1)))
    return frames


# The first member of each pair is generated; the second is the same frames reversed.
_PAIR_GENERATORS = (_moving_left, _growing, _rotating_clockwise, _appearing)


def _check_frames(frames):
    if not 2 <= frames[0] <= frames[1]:
        raise ValueError(f"frames range {list(frames)} must satisfy 2 <= min <= max")


def generate_video(label, rng, size=DEFAULT_SIZE, frames=DEFAULT_FRAMES):
    """One video of class `label` as uint8 [T, H, W, 3], T drawn from `frames` (inclusive range).

    A pair's second class is the first class's video reversed, drawn with the same rng calls:
    with equal rng states, class 2k+5 gives exactly the frames of class 2k+4 in reverse order.
    """
    if not 0 <= label < len(CLASSES):
        raise ValueError(f"label {label} outside [0, {len(CLASSES)})")
    _check_frames(frames)
    h, w = size
    t_len = num_frames(rng, frames)
    bg = _background(rng, h, w)
    m = min(h, w)
    if label < len(APPEARANCE):
        return _finish(rng, _appearance(rng, APPEARANCE[label], t_len, bg, m), bg)
    pair, reverse = divmod(label - len(APPEARANCE), 2)
    out = _finish(rng, _PAIR_GENERATORS[pair](rng, t_len, bg, m), bg)
    return np.ascontiguousarray(out[::-1]) if reverse else out


def write_rawframes(frames, folder, quality=90):
    """JPEG frames img_00001.jpg ...; written to `<folder>.partial` and renamed when complete."""
    tmp = folder + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for i, f in enumerate(frames, 1):
        Image.fromarray(f).save(os.path.join(tmp, FRAME_TMPL.format(i)), quality=quality)
    os.rename(tmp, folder)


def write_video(frames, path, fps=FPS):
    """An intra-only H.264 mp4 (MPEG-4 part 2 where libx264 is missing), renamed when complete.

    Every frame is a key frame at a constant quantiser, so each decoded frame depends only on
    itself: a reversed video decodes to exactly the reversed frames, keeping the pairs exact.
    """
    h, w = frames.shape[1:3]
    if h % 2 or w % 2:
        raise ValueError(f"video frames need even height and width for yuv420p, got {h}x{w}")
    tmp = path + ".partial.mp4"
    h264 = "libx264" in av.codecs_available
    with av.open(tmp, "w") as container:
        stream = container.add_stream("libx264" if h264 else "mpeg4", rate=fps,
                                      options={"qp": "20", "preset": "veryfast"} if h264 else {"qscale": "3"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.gop_size = 1
        stream.codec_context.thread_count = 1
        for f in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        container.mux(stream.encode())
    os.replace(tmp, path)


def time_reversed_partner():
    """{class index: the index of its time-reversed partner} for the paired classes (the
    `partner` of ops.evaluation's pair- and reversal-direction accuracies)."""
    partner = {}
    for a, b in PAIRS:
        ia, ib = CLASSES.index(a), CLASSES.index(b)
        partner[ia], partner[ib] = ib, ia
    return partner


def order_agnostic_ceiling(counts):
    """Best accuracy of any model that ignores frame order, from per-class video counts.

    Appearance classes can be perfect; inside a pair both classes produce the same frame sets,
    so the best such a model can do is always answer the more frequent member.
    Returns {"top1": ..., "mean_class": ...} (mean over the classes present).
    """
    counts = list(counts)
    if len(counts) != len(CLASSES):
        raise ValueError(f"need {len(CLASSES)} class counts, got {len(counts)}")
    n_app = len(APPEARANCE)
    correct = sum(counts[:n_app])
    class_acc = [1.0 for c in counts[:n_app] if c > 0]
    for i in range(n_app, len(CLASSES), 2):
        a, b = counts[i], counts[i + 1]
        correct += max(a, b)
        present = (a > 0) + (b > 0)
        class_acc += [1.0 / present] * present  # the best pair strategy's classes sum to 1
    total = sum(counts)
    return {"top1": correct / total if total else float("nan"),
            "mean_class": float(np.mean(class_acc)) if class_acc else float("nan")}


def _job(task):
    """Generate one video's missing outputs; return (split, label, index, num_frames, generated)."""
    root, seed, split, label, index, size, frames, formats, quality = task
    name = video_name(split, label, index)
    folder = os.path.join(root, "rawframes", name)
    mp4 = os.path.join(root, "videos", name + ".mp4")
    todo = [f for f in formats if not os.path.exists(folder if f == "rawframes" else mp4)]
    if not todo:
        return split, label, index, num_frames(video_rng(seed, split, label, index), frames), False
    video = generate_video(label, video_rng(seed, split, label, index), size, frames)
    if "rawframes" in todo:
        write_rawframes(video, folder, quality)
    if "videos" in todo:
        write_video(video, mp4)
    return split, label, index, len(video), True


def _check_settings(root, settings):
    """Refuse to mix videos made with other settings into an existing folder."""
    path = os.path.join(root, "synthetic.json")
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        old = json.load(f)
    old.setdefault("version", 1)  # v1 wrote no version
    for key in ("version", "seed", "size", "frames", "quality"):
        if old.get(key) != settings[key]:
            raise SystemExit(f"{path}: existing videos were made with {key}={old.get(key)}, "
                             f"not {settings[key]}; use another --out or delete {root}")


def read_version(root):
    """The benchmark version of the dataset under `root` (1 for folders written before versions)."""
    with open(os.path.join(root, "synthetic.json"), encoding="utf-8") as f:
        return json.load(f).get("version", 1)


def _save_settings(root, settings):
    with open(os.path.join(root, "synthetic.json"), "w", encoding="utf-8") as f:
        json.dump(settings, f, indent=1)


def generate(root, videos_per_class, seed=0, size=DEFAULT_SIZE, frames=DEFAULT_FRAMES,
             formats=("rawframes", "videos"), workers=1, quality=90, progress=True):
    """Generate (or complete) the benchmark under `root`; return the settings with the ceilings.

    videos_per_class: (train, val, test) videos of every class. Videos already on disk are kept.
    """
    size, frames = list(size), list(frames)
    _check_frames(frames)
    settings = {"version": VERSION, "seed": seed, "size": size, "frames": frames, "quality": quality,
                "videos_per_class": dict(zip(SPLITS, videos_per_class)), "classes": list(CLASSES)}
    os.makedirs(root, exist_ok=True)
    _check_settings(root, settings)
    _save_settings(root, settings)
    for f in formats:
        os.makedirs(os.path.join(root, f), exist_ok=True)
    tasks = [(root, seed, split, label, i, tuple(size), tuple(frames), tuple(formats), quality)
             for split, n in zip(SPLITS, videos_per_class) for label in range(len(CLASSES))
             for i in range(n)]
    lengths, generated = {}, 0
    for split, label, i, t_len, new in run_parallel(_job, tasks, workers, "synthetic", progress=progress,
                                                    chunksize=4):
        lengths[split, label, i] = t_len
        generated += new

    with open(os.path.join(root, "classes.txt"), "w", encoding="utf-8") as f:
        f.write("".join(c + "\n" for c in CLASSES))
    settings["ceiling_order_agnostic"] = {}
    for split in SPLITS:
        keys = sorted(k for k in lengths if k[0] == split)
        for fmt in formats:
            with open(os.path.join(root, f"{split}_{fmt}.txt"), "w", encoding="utf-8") as f:
                for _, label, i in keys:
                    name = video_name(split, label, i)
                    path = f"rawframes/{name}" if fmt == "rawframes" else f"videos/{name}.mp4"
                    f.write(f"{path} {lengths[split, label, i]} {label}\n")
        counts = [sum(1 for k in keys if k[1] == c) for c in range(len(CLASSES))]
        if sum(counts):
            settings["ceiling_order_agnostic"][split] = order_agnostic_ceiling(counts)
    _save_settings(root, settings)
    settings["generated"] = generated
    return settings


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="data/synthetic", help="dataset root to write (default: %(default)s)")
    p.add_argument("--videos_per_class", type=int, nargs="+", default=list(DEFAULT_VIDEOS_PER_CLASS),
                   help="videos per class: TRAIN VAL TEST, or one total N split 4:1:1 (default: 40 10 10)")
    p.add_argument("--seed", type=int, default=0,
                   help="every video is a function of (seed, split, class, index) (default: %(default)s)")
    p.add_argument("--size", type=int, nargs=2, default=list(DEFAULT_SIZE), metavar=("H", "W"),
                   help="frame height and width (default: %(default)s)")
    p.add_argument("--frames", type=int, nargs=2, default=list(DEFAULT_FRAMES), metavar=("MIN", "MAX"),
                   help="video length range, inclusive (default: 24 48)")
    p.add_argument("--formats", nargs="+", default=["rawframes", "videos"], choices=["rawframes", "videos"],
                   help="write JPEG frame folders and/or mp4 videos (default: both)")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality (default: %(default)s)")
    p.add_argument("-j", "--workers", type=int, default=2, help="worker processes (default: %(default)s)")
    args = p.parse_args(argv)
    vpc = args.videos_per_class
    if len(vpc) == 1:
        held_out = max(1, round(vpc[0] / 6))
        vpc = [vpc[0] - 2 * held_out, held_out, held_out]
    if len(vpc) != 3 or min(vpc) < 0 or vpc[0] < 1:
        p.error(f"--videos_per_class: give TRAIN VAL TEST or one total of at least 3, got {args.videos_per_class}")

    start = time.time()
    info = generate(args.out, vpc, args.seed, args.size, args.frames, args.formats, args.workers, args.quality)
    print(f"{args.out}: synthetic benchmark v{VERSION}, {args.size[0]}x{args.size[1]} frames, {len(CLASSES)} classes, "
          f"videos per class train/val/test = {vpc}, {info['generated']} generated in {time.time() - start:.1f} s with -j {args.workers}")
    for split, c in info["ceiling_order_agnostic"].items():
        print(f"order-agnostic ceiling on {split}: top-1 {100 * c['top1']:.1f}%, "
              f"mean class {100 * c['mean_class']:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
