"""Synthetic test videos whose frames say which frame they are.

Each frame is a grid of 3 x 4 large cells; cell b is bright when bit b of the frame index is set
and dark otherwise, so the index (0..4095) survives JPEG and H.264 loss and `frame_index_of` reads
it back. That lets a test check WHICH frames a reader or sampler returned, not only how many.
The seed only tints the cells, so two videos made with different seeds look different while
decoding the same way.
"""
import os

import av
import numpy as np
from PIL import Image

GRID_ROWS, GRID_COLS = 3, 4
NUM_BITS = GRID_ROWS * GRID_COLS
MAX_FRAMES = 2 ** NUM_BITS


def _cell_bounds(size, parts):
    edges = np.linspace(0, size, parts + 1).round().astype(int)
    return list(zip(edges[:-1], edges[1:]))


def make_frames(num_frames, height, width, seed=0):
    """uint8 [T, H, W, 3]: frame t shows t in binary, one bit per cell (bright = 1, dark = 0)."""
    if not 1 <= num_frames <= MAX_FRAMES:
        raise ValueError(f"num_frames must be in [1, {MAX_FRAMES}], got {num_frames}")
    if height < 2 * GRID_ROWS * 2 or width < 2 * GRID_COLS * 2:
        raise ValueError(f"frames of {height}x{width} are too small for a {GRID_ROWS}x{GRID_COLS} grid")
    rng = np.random.default_rng(seed)
    dark = rng.integers(0, 50, size=3)      # luminance well below 128
    bright = rng.integers(205, 256, size=3)  # and well above it, whatever the tint
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    rows, cols = _cell_bounds(height, GRID_ROWS), _cell_bounds(width, GRID_COLS)
    for t in range(num_frames):
        for b in range(NUM_BITS):
            (y0, y1), (x0, x1) = rows[b // GRID_COLS], cols[b % GRID_COLS]
            frames[t, y0:y1, x0:x1] = bright if (t >> b) & 1 else dark
    return frames


def frame_index_of(frame):
    """Read the index back from one decoded frame [H, W, 3] (the middle half of every cell)."""
    frame = np.asarray(frame)
    grey = frame.astype(np.float32).mean(axis=-1)
    height, width = grey.shape
    rows, cols = _cell_bounds(height, GRID_ROWS), _cell_bounds(width, GRID_COLS)
    index = 0
    for b in range(NUM_BITS):
        (y0, y1), (x0, x1) = rows[b // GRID_COLS], cols[b % GRID_COLS]
        dy, dx = (y1 - y0) // 4, (x1 - x0) // 4
        if grey[y0 + dy:y1 - dy, x0 + dx:x1 - dx].mean() > 128:
            index |= 1 << b
    return index


def frame_indices_of(frames):
    """`frame_index_of` for every frame of [T, H, W, 3] (numpy or torch), as a list."""
    return [frame_index_of(np.asarray(f)) for f in frames]


def write_frame_folder(directory, frames, tmpl="img_{:05d}.jpg", quality=95):
    """Write frames as JPEGs named tmpl.format(1), tmpl.format(2), ... (1-based, like the lists)."""
    os.makedirs(directory, exist_ok=True)
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(os.path.join(directory, tmpl.format(t + 1)), quality=quality)
    return directory


def available_codec():
    """libx264 when this PyAV build has it, else mpeg4."""
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def write_video(path, frames, fps=25, codec=None, gop_size=12, faststart=False, bframes=0, first_pts=0):
    """Write frames [T, H, W, 3] (even H and W) as a video file with PyAV; returns path. The
    container follows the extension (mp4, avi, mkv, webm: give codec='libvpx' for webm).
    faststart puts the mp4 index first, so a truncated copy still opens and fails only later.
    bframes > 0 stores frames out of display order; first_pts > 0 starts the timestamps there."""
    codec = codec or available_codec()
    num_frames, height, width, _ = frames.shape
    if height % 2 or width % 2:
        raise ValueError(f"yuv420p video needs even sides, got {height}x{width}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    options = {"crf": "18"} if codec == "libx264" else {"qscale": "2"} if codec == "mpeg4" else {}
    options["bf"] = str(bframes)
    with av.open(path, mode="w", options={"movflags": "faststart"} if faststart else None) as container:
        stream = container.add_stream(codec, rate=fps, options=options)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.gop_size = gop_size
        for t, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            picture.pts = first_pts + t
            for packet in stream.encode(picture):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def unknown_size_segment(path, out):
    """A copy of a Matroska/WebM file whose Segment declares an unknown size, as a live recording
    (ffmpeg writing to a pipe) does; the file written by write_video has an 8-byte size field."""
    data = bytearray(open(path, "rb").read())
    at = data.find(b"\x18\x53\x80\x67") + 4
    assert data[at] == 0x01, "expected an 8-byte Segment size"
    data[at:at + 8] = b"\x01" + b"\xff" * 7
    with open(out, "wb") as f:
        f.write(data)
    return out


def truncate_file(path, keep_bytes):
    """Cut a file to its first keep_bytes bytes (a download or copy that stopped half-way)."""
    with open(path, "r+b") as f:
        f.truncate(keep_bytes)
    return path


def write_list_dataset(root, num_videos, num_train, num_class=3, height=40, width=48):
    """Frame folders v0..v{n-1} (video i has 14 + i frames, label i % num_class) under `root`, with
    `train.txt` (the first num_train) and `val.txt` (the rest). Returns (train list, val list)."""
    lines = []
    for i in range(num_videos):
        write_frame_folder(os.path.join(root, f"v{i}"), make_frames(14 + i, height, width, seed=i))
        lines.append(f"v{i} {14 + i} {i % num_class}\n")
    paths = (os.path.join(root, "train.txt"), os.path.join(root, "val.txt"))
    for path, part in zip(paths, (lines[:num_train], lines[num_train:])):
        with open(path, "w") as f:
            f.writelines(part)
    return paths
