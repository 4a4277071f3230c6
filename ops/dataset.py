"""List files, frame readers and the video dataset (see docs/architecture.md, "Data").

A list is held in numpy arrays so DataLoader workers do not copy it page by page (copy-on-read of
millions of Python objects). Readers decode each requested frame once and never substitute
another frame or video: a bad one raises BadSampleError naming the video and the frame, and the
dataset either stops on it or, under the skip policy, hands the collate function a marker that
is counted and reported at the end of the epoch.
"""
import functools
import io
import os
import re
import string
from typing import NamedTuple

import numpy as np
import torch

from ops import jpeg_roi
from ops.dataset_configs import LIST_ORDERS
from opts import JPEG_DECODER, VIDEO_DECODER

_INT = re.compile(r"[-+]?\d+")
_WORKER_LAST_LINE = re.compile(r"^\S*BadSampleError: (.+)$", re.MULTILINE)


class BadSampleError(Exception):
    """A video or frame that cannot be read. `frame` is the 0-based index (None: the whole video).
    Built from one string too, so DataLoader workers can re-raise it in the main process: the
    worker's traceback that the DataLoader puts in that string is cut to its last line, so the
    message stays one line naming the video, frame and list line."""

    def __init__(self, video, frame=None, reason=None):
        if frame is None and reason is None and isinstance(video, str) and "\nOriginal Traceback" in video:
            video = _WORKER_LAST_LINE.findall(video)[-1] if _WORKER_LAST_LINE.search(video) else video
        self.video, self.frame, self.reason = video, frame, reason
        parts = [str(video)]
        if frame is not None:
            parts.append(f"frame {frame} (0-based)")
        if reason:
            parts.append(reason)
        super().__init__(": ".join(parts))

    def __reduce__(self):
        return BadSampleError, (self.video, self.frame, self.reason)


class SkipLimitError(Exception):
    """More samples skipped as bad than the skip ceiling (--max_skip_fraction) allows."""


def check_skip_ceiling(skipped, total, max_fraction, what, count=None):
    """Raise SkipLimitError when more than `max_fraction` of `total` samples were skipped: a wrong
    root, format or decoder, not a few damaged videos. `skipped`: this process's 'name: reason'
    list; `count`: the number skipped when it is not len(skipped) (over all ranks under DDP)."""
    count = len(skipped) if count is None else count
    if total and count > max_fraction * total:
        first = skipped[0] if skipped else "none on this process"
        raise SkipLimitError(f"{what}: {count} of {total} samples were bad, more than the ceiling "
                             f"--max_skip_fraction {max_fraction:g}; first: {first}")


# ---------------------------------------------------------------------------------------------
# List files

def parse_list_line(text, list_order="path_frames_label"):
    """(path, num_frames, label) of one list line; num_frames is -1 for a `<video> <label>` line.
    Fields are separated by whitespace, so paths cannot contain spaces. Raises ValueError with
    the reason (the caller adds the file and line)."""
    fields = text.split()
    if len(fields) not in (2, 3) or not all(_INT.fullmatch(f) for f in fields[1:]):
        expected = "<path> <num_frames> <label>" if list_order == "path_frames_label" else "<path> <label> <num_frames>"
        raise ValueError(f"malformed line {text.strip()!r}: expected '{expected}' or '<video> <label>'")
    numbers = [int(f) for f in fields[1:]]
    if len(numbers) == 1:
        return fields[0], -1, numbers[0]
    num_frames, label = numbers if list_order == "path_frames_label" else numbers[::-1]
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    return fields[0], num_frames, label


def list_lines(list_file):
    """(line number from 1, text) of every non-blank line of a list file: the lines a list holds and
    the numbers that messages name (VideoList and tools/check_dataset.py read lists through it)."""
    with open(list_file, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark (Windows editors) is not part of a path
    except UnicodeDecodeError as err:
        lineno = data[:err.start].count(b"\n") + 1
        raise ValueError(f"{list_file}:{lineno}: not UTF-8 text ({err.reason})") from None
    for lineno, line in enumerate(io.StringIO(text, newline=None), 1):
        if line.strip():
            yield lineno, line


class VideoList:
    """A parsed list file: paths in one bytes buffer plus offsets, numbers in int64 arrays.

    num_frames is -1 for video lines without a count (the reader counts the frames). Paths are
    relative to `root` unless absolute. A malformed line, num_frames < 1, a label outside
    [0, num_class) or (with check_paths) a missing folder/video raises ValueError naming
    `list_file:line`.
    """

    def __init__(self, list_file, root="", list_order="path_frames_label", num_class=None, check_paths=False):
        if list_order not in LIST_ORDERS:
            raise ValueError(f"list_order must be one of {LIST_ORDERS}, got '{list_order}'")
        self.list_file, self.root, self.list_order = list_file, root, list_order
        paths, num_frames, labels, lines = [], [], [], []
        for lineno, text in list_lines(list_file):
            try:
                path, n, label = parse_list_line(text, list_order)
                if num_class is not None and not 0 <= label < num_class:
                    raise ValueError(f"label {label} outside [0, {num_class})")
                if check_paths and not os.path.exists(os.path.join(root, path)):
                    raise ValueError(f"no such folder or video: {os.path.join(root, path)}")
            except ValueError as e:
                raise ValueError(f"{list_file}:{lineno}: {e}") from None
            paths.append(path.encode("utf-8"))
            num_frames.append(n)
            labels.append(label)
            lines.append(lineno)
        if not paths:
            raise ValueError(f"{list_file}: the list has no videos")
        self._paths = np.frombuffer(b"".join(paths), dtype=np.uint8)
        self._offsets = np.concatenate([[0], np.cumsum([len(p) for p in paths])]).astype(np.int64)
        self.num_frames = np.array(num_frames, np.int64)
        self.labels = np.array(labels, np.int64)
        self.lines = np.array(lines, np.int64)

    def __len__(self):
        return len(self.labels)

    def __repr__(self):
        return f"VideoList('{self.list_file}', root='{self.root}', {len(self)} videos, {self.list_order})"

    def name(self, i):
        """The path as written in the list."""
        return self._paths[self._offsets[i]:self._offsets[i + 1]].tobytes().decode("utf-8")

    def path(self, i):
        return os.path.join(self.root, self.name(i))

    def where(self, i):
        """`list_file:line` of item i, for messages."""
        return f"{self.list_file}:{self.lines[i]}"


# ---------------------------------------------------------------------------------------------
# Readers: read(path, indices) -> uint8 [T, H, W, 3]; indices 0-based, repeats allowed.

def check_jpeg_bytes(data):
    """The reason a JPEG file's bytes are unusable (empty, not JPEG, truncated), or None.
    A JPEG ends with the EOI marker FFD9, which cannot occur inside entropy-coded data."""
    if len(data) == 0:
        return "empty file (0 bytes)"
    if data[:2] != b"\xff\xd8":
        return "not a JPEG file"
    if data.rfind(b"\xff\xd9", max(0, len(data) - 4096)) < 0:
        return f"truncated JPEG ({len(data)} bytes, no end-of-image marker)"
    return None


def _decode_simplejpeg(data, min_side=None, out=None):
    """libjpeg-turbo through simplejpeg, strict (corrupt data is an error, not damaged pixels),
    straight into `out` when given; with min_side, the smallest DCT-domain scale M/8 <= 1/2 that
    keeps both sides >= min_side (full size when none does)."""
    import simplejpeg
    side = min_side or 0
    return simplejpeg.decode_jpeg(data, colorspace="RGB", min_height=side, min_width=side,
                                  min_factor=2 if side else 1, buffer=out, strict=True)


def _decode_pil(data, min_side=None, out=None):
    """Pillow (any image format); with min_side, its JPEG draft mode (DCT-domain scale 1/2, 1/4 or 1/8)."""
    from PIL import Image
    with Image.open(io.BytesIO(data)) as image:
        if min_side:
            image.draft("RGB", (min_side, min_side))
        return np.asarray(image.convert("RGB"))


def _decode_torchcodec(data, min_side=None, out=None):
    """torchcodec's decode_jpeg (libjpeg-turbo; no FFmpeg needed); full size only."""
    from torchcodec.decoders import decode_jpeg
    return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode="RGB").permute(1, 2, 0).numpy()


def _decode_torchvision(data, min_side=None, out=None):
    """torchvision's decode_jpeg (deprecated since torchvision 0.29: it warns); full size only."""
    from torchvision.io import ImageReadMode, decode_jpeg
    tensor = decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
    return tensor.permute(1, 2, 0).numpy()


# name -> decode(bytes, min_side, out) -> uint8 [H, W, 3]; opts.JPEG_DECODERS lists the same names.
# The four give bit-identical pixels at full size; CPU ms per 340x256 frame (quality 90, one
# thread, docs/benchmarks.md): simplejpeg 0.36, torchcodec 0.41, torchvision 0.41, PIL 0.71.
JPEG_DECODERS = {"simplejpeg": _decode_simplejpeg, "torchcodec": _decode_torchcodec, "pil": _decode_pil,
                 "torchvision": _decode_torchvision}
SCALED_JPEG_DECODERS = ("simplejpeg", "pil")


def _unique(indices):
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    if indices.size == 0:
        raise ValueError("no frame indices to read")
    return np.unique(indices, return_inverse=True)


def _stack(video, frames, inverse):
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise BadSampleError(video, None, f"frames differ in size: {sorted(shapes)}")
    return _gather(np.stack(frames), inverse)


def _gather(frames, inverse):
    """frames[inverse], without the copy when every frame is used once, in order."""
    if len(inverse) == len(frames) and np.array_equal(inverse, np.arange(len(frames))):
        return frames
    return frames[inverse]


class RawFrameReader:
    """Frames stored as image files `image_tmpl.format(index + 1)` in one folder per video.

    decoder: a JPEG_DECODERS name (simplejpeg, the fastest, by default); other templates than
    .jpg/.jpeg are read with PIL. Each needed frame is decoded once, into one preallocated array.
    min_side: the short side the transform scales to first (GroupScale); frames at least twice
    that are decoded at a reduced scale in the DCT domain (simplejpeg: M/8 <= 1/2; PIL: 1/2, 1/4,
    1/8), keeping both sides >= min_side, and the transform's resize does the last step
    (docs/benchmarks.md gives the speed and the pixel difference).
    roi: with the simplejpeg decoder, read(..., crop) decodes only the window the transform cuts
    first (ops/jpeg_roi.py: the same pixels, 12-26% less decoding for TSN's crops); off, or
    when ops/jpeg_roi.c cannot be built here, frames are decoded whole.
    """

    def __init__(self, image_tmpl="img_{:05d}.jpg", decoder=JPEG_DECODER, min_side=None, device="cpu", roi=True):
        if decoder not in JPEG_DECODERS:
            raise ValueError(f"decoder must be one of {sorted(JPEG_DECODERS)}, got '{decoder}'")
        if not image_tmpl.lower().endswith((".jpg", ".jpeg")):
            decoder = "pil"
        if device != "cpu":
            _check_device(device)
            if decoder != "torchcodec":
                raise ValueError(f"decoding on {device} uses nvJPEG through torchcodec: JPEG decoder 'torchcodec' "
                                 f"(not '{decoder}'; frame files {image_tmpl})")
        if decoder == "torchcodec":
            _check_torchcodec_package()
        self.image_tmpl, self.decoder, self.device = image_tmpl, decoder, device
        self.min_side = min_side if decoder in SCALED_JPEG_DECODERS else None
        self.roi = bool(roi) and decoder == "simplejpeg" and device == "cpu" and jpeg_roi.available()
        self._decode = JPEG_DECODERS[decoder]
        self._name_re = re.compile(self._template_regex(image_tmpl))

    def __repr__(self):
        device = f", device='{self.device}'" if self.device != "cpu" else ""
        return (f"RawFrameReader(image_tmpl='{self.image_tmpl}', decoder='{self.decoder}', "
                f"min_side={self.min_side}, roi={self.roi}{device})")

    @staticmethod
    def _template_regex(tmpl):
        pattern = ""
        for literal, field, _, _ in string.Formatter().parse(tmpl):
            pattern += re.escape(literal)
            if field is not None:
                pattern += r"\d+"
        return pattern

    def frame_file(self, path, index):
        return os.path.join(path, self.image_tmpl.format(index + 1))

    def num_frames(self, path):
        """Number of files in the folder that match the template."""
        if not os.path.isdir(path):
            raise BadSampleError(path, None, "no such frame folder")
        return sum(1 for name in os.listdir(path) if self._name_re.fullmatch(name))

    def read_bytes(self, path, index):
        """The checked bytes of one frame file; BadSampleError when missing, empty or truncated."""
        frame_file = self.frame_file(path, index)
        try:
            with open(frame_file, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            if not os.path.isdir(path):
                raise BadSampleError(path, None, "no such frame folder") from None
            raise BadSampleError(path, index, f"missing {os.path.basename(frame_file)}") from None
        except OSError as e:
            raise BadSampleError(path, index, f"cannot read {os.path.basename(frame_file)}: {e}") from None
        if frame_file.lower().endswith((".jpg", ".jpeg")):
            problem = check_jpeg_bytes(data)
            if problem:
                raise BadSampleError(path, index, f"{os.path.basename(frame_file)}: {problem}")
        return data

    def read(self, path, indices, crop=None):
        """uint8 [T, H, W, 3]. crop: None, or crop(height, width) -> (y, x, h, w) or None, called
        once with the size the frames decode to; with ROI decoding, only that window of each frame
        is decoded and returned (equal to the whole frames sliced)."""
        unique, inverse = _unique(indices)
        if self.device != "cpu":
            return self._read_on_device(path, unique, inverse)
        if crop is not None and self.roi:
            return self._read_window(path, unique, inverse, crop)
        return self._read_whole(path, unique, inverse)

    def _read_whole(self, path, unique, inverse, first=None):
        out = None
        for slot, index in enumerate(unique.tolist()):
            data = first if slot == 0 and first is not None else self.read_bytes(path, index)
            try:
                frame = self._decode(data, self.min_side, None if out is None else out[slot])
            except (RuntimeError, OSError, ValueError) as e:
                raise BadSampleError(path, index, f"cannot decode {self.image_tmpl.format(index + 1)}: "
                                     f"{_first_line(e)}") from None
            if out is None:
                out = np.empty((len(unique),) + frame.shape, np.uint8)
            elif frame.shape != out.shape[1:]:
                raise BadSampleError(path, index, f"frame size {frame.shape[:2]} differs from frame "
                                     f"{int(unique[0])}'s {out.shape[1:3]}")
            if not np.may_share_memory(frame, out):
                out[slot] = frame
        return _gather(out, inverse)

    def _read_window(self, path, unique, inverse, crop):
        """The frames' window crop(height, width), each frame decoded in that window only."""
        first = int(unique[0])
        data = self.read_bytes(path, first)
        try:
            size = jpeg_roi.decoded_size(data, self.min_side)
        except jpeg_roi.RoiDecodeError as e:
            raise BadSampleError(path, first, f"cannot decode {self.image_tmpl.format(first + 1)}: {e}") from None
        window = crop(*size)
        if window is None:
            return self._read_whole(path, unique, inverse, first=data)
        y, x, h, w = window
        out = np.empty((len(unique), h, size[1], 3), np.uint8)   # full rows: libjpeg writes in place
        for slot, index in enumerate(unique.tolist()):
            if slot:
                data = self.read_bytes(path, index)
            try:
                jpeg_roi.decode_window(data, size, window, self.min_side, out[slot])
            except jpeg_roi.RoiDecodeError as e:
                raise BadSampleError(path, index, f"cannot decode {self.image_tmpl.format(index + 1)}: "
                                     f"{_first_line(e)}") from None
            except jpeg_roi.FrameSizeError as e:
                raise BadSampleError(path, index, f"frame size {e.size} differs from frame {first}'s {size}") from None
        return _gather(out[:, :, x:x + w], inverse)

    def _read_on_device(self, path, unique, inverse):
        """uint8 tensor [T, H, W, 3] on self.device: one batched nvJPEG call for the clip's frames."""
        from torchcodec.decoders import decode_jpeg
        data = [torch.frombuffer(bytearray(self.read_bytes(path, i)), dtype=torch.uint8) for i in unique.tolist()]
        try:
            frames = decode_jpeg(data, mode="RGB", device=self.device)
        except (RuntimeError, ValueError) as e:
            raise BadSampleError(path, None, f"cannot decode frames {unique.tolist()} on {self.device}: "
                                 f"{_first_line(e)}") from None
        shapes = {tuple(f.shape) for f in frames}
        if len(shapes) > 1:
            raise BadSampleError(path, None, f"frames differ in size: {sorted(shapes)}")
        return _gather(torch.stack(frames).permute(0, 2, 3, 1), inverse)


def _read_at(f, offset, size):
    f.seek(offset)
    return f.read(size)


def _ebml_vint(data):
    """(value, length) of the EBML variable-size integer at the start of data (value None: unknown size)."""
    if not data or data[0] == 0:
        return None, 0
    length = 9 - data[0].bit_length()
    value = int.from_bytes(data[:length], "big") & ((1 << (7 * length)) - 1)
    return (None if value == (1 << (7 * length)) - 1 else value), length


def container_truncation(path):
    """Why a video file is shorter than its container says, or None.

    Decoders stop quietly at a cut-off end: decord indexes the 91 frames left of an AVI whose header
    declares 164 and returns a damaged last frame. The container's own size fields tell it from the
    first bytes, for every decoder alike: the RIFF chunks of AVI, the top-level boxes of mp4/mov,
    the Segment of Matroska/WebM (or, written with an unknown size as live recordings are, the
    elements inside it).
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"AVIX"):
            offset = 0
            while offset + 8 <= size:   # AVI files over 1 GB continue in further RIFF chunks
                chunk = _read_at(f, offset, 8)
                if chunk[:4] != b"RIFF":
                    break
                end = offset + 8 + int.from_bytes(chunk[4:8], "little")
                if end > size:
                    return f"truncated file: {size} bytes, its AVI header declares {end}"
                offset = end + (end & 1)
            return None
        if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
            offset = 0
            while offset + 8 <= size:
                box = _read_at(f, offset, 16)
                box_size = int.from_bytes(box[:4], "big")
                if box_size == 1:
                    box_size = int.from_bytes(box[8:16], "big")
                if box_size == 0:   # the last box runs to the end of the file
                    return None
                if box_size < 8:
                    return f"damaged mp4: box of {box_size} bytes at byte {offset}"
                if offset + box_size > size:
                    return (f"truncated file: {size} bytes, its mp4 box '{box[4:8].decode('latin-1')}' "
                            f"ends at byte {offset + box_size}")
                offset += box_size
            return None
        if head[:4] == b"\x1a\x45\xdf\xa3":
            header_size, n = _ebml_vint(head[4:12])
            if header_size is None:
                return None
            offset = 4 + n + header_size
            segment = _read_at(f, offset, 12)
            if segment[:4] != b"\x18\x53\x80\x67":
                return None
            segment_size, n = _ebml_vint(segment[4:12])
            if segment_size is not None:
                end = offset + 4 + n + segment_size
                return f"truncated file: {size} bytes, its Matroska segment ends at byte {end}" if end > size else None
            return _matroska_children_truncation(f, offset + 4 + n, size)
    return None


_MATROSKA_NAMES = {b"\x1f\x43\xb6\x75": "Cluster", b"\x1c\x53\xbb\x6b": "Cues", b"\x11\x4d\x9b\x74": "SeekHead",
                   b"\x15\x49\xa9\x66": "Info", b"\x16\x54\xae\x6b": "Tracks", b"\x12\x54\xc3\x67": "Tags"}


def _matroska_children_truncation(f, offset, size):
    """A Segment of unknown size (a live recording): the sizes of its children (clusters...) tell
    a cut end instead, up to a child of unknown size itself. A cut exactly between two children
    looks like a shorter recording."""
    while offset < size:
        head = _read_at(f, offset, 12)
        id_length = 9 - head[0].bit_length() if head[0] else 0
        if not 1 <= id_length <= 4:
            return None
        if len(head) <= id_length:   # the file ends inside the element's ID
            end = offset + id_length + 1
        else:
            child_size, n = _ebml_vint(head[id_length:])
            if child_size is None:   # unknown size, or not a size at all
                return None
            end = offset + id_length + n + child_size   # past the file also when its size field is cut
        if end > size:
            name = _MATROSKA_NAMES.get(head[:id_length], "element")
            return f"truncated file: {size} bytes, its Matroska {name} at byte {offset} ends at byte {end}"
        offset = end
    return None


def _check_video_file(path):
    """BadSampleError unless path is a non-empty file of the length its container declares."""
    if not os.path.isfile(path):
        raise BadSampleError(path, None, "no such video file")
    if os.path.getsize(path) == 0:
        raise BadSampleError(path, None, "empty file (0 bytes)")
    problem = container_truncation(path)
    if problem:
        raise BadSampleError(path, None, problem)


def avi_reorders_frames(path):
    """True for an AVI file whose frames are stored out of display order (MPEG-4 B-frames, often
    "packed"). AVI keeps no presentation times, so the times FFmpeg guesses for these are off by
    one near every B-frame: decord's seeking and torchcodec's frame index then return neighbouring
    frames (frame 3 for 13, frame i - 1 for i; seen on real clips). Only a decode in order is exact.
    Remembered per file (path, size, modification time): a worker reads each video many times."""
    with open(path, "rb") as f:
        if f.read(12)[8:12] != b"AVI ":
            return False
    info = os.stat(path)
    return _avi_reorders(path, info.st_size, info.st_mtime_ns)


@functools.lru_cache(maxsize=1 << 16)
def _avi_reorders(path, size, mtime, packets=64):
    import av
    with av.open(path) as container:
        if not container.streams.video:
            return False
        for i, packet in enumerate(container.demux(container.streams.video[0])):
            if i >= packets:
                break
            if packet.pts is not None and packet.dts is not None and packet.pts != packet.dts:
                return True
    return False


def _check_range(path, unique, total):
    if unique[0] < 0 or unique[-1] >= total:
        bad = int(unique[-1] if unique[-1] >= total else unique[0])
        raise BadSampleError(path, bad, f"outside the video's {total} frames")


class _DecoderReader:
    """The decord and torchcodec readers: a decoder opened on a file knows its frame count, so one
    open (which indexes the file) serves both the count and the frames of an item. Subclasses give
    `_open(path)` and `_decode(path, decoder, indices)`."""

    def num_frames(self, path):
        return len(self._open(path))

    def read(self, path, indices):
        return self._decode(path, self._open(path), indices)

    def read_sampled(self, path, sample):
        """(frames, indices) with indices = sample(the video's frame count), from one open of the
        file: a list without frame counts (gen_lists.py writes none for videos) would otherwise open
        and index every video twice per item."""
        decoder = self._open(path)
        indices = sample(len(decoder))
        return self._decode(path, decoder, indices.reshape(-1)), indices


class DecordReader(_DecoderReader):
    """Videos decoded with decord (one thread per worker). decord's last release is from 2021; its
    known defects are caught: a cut-off file (it reads what is left; checked from the container's
    sizes), AVI files with B-frames (its seeks return wrong frames) and frame widths its colour
    conversion fails on (16, 24, 48, 72 px seen: "Check failed: from_size"); the last two are read
    with PyAV instead, so the frames are still exact."""

    def __init__(self, num_threads=1):
        self.num_threads = num_threads

    def __repr__(self):
        return f"DecordReader(num_threads={self.num_threads})"

    def _open(self, path):
        import decord
        _check_video_file(path)
        try:
            return decord.VideoReader(path, num_threads=self.num_threads)
        except (decord.DECORDError, RuntimeError) as e:
            raise BadSampleError(path, None, f"cannot open video: {_first_line(e)}") from None

    def _decode(self, path, reader, indices):
        import decord
        unique, inverse = _unique(indices)
        _check_range(path, unique, len(reader))
        if avi_reorders_frames(path):
            return PyAVReader().read_in_order(path, unique, inverse)
        try:
            frames = reader.get_batch(unique.tolist()).asnumpy()
        except (decord.DECORDError, RuntimeError) as e:
            if "Check failed: from_size" in str(e):   # decord's width bug, not the video's fault
                return PyAVReader().read(path, indices)
            raise BadSampleError(path, None, f"cannot decode frames {unique.tolist()}: {_first_line(e)}") from None
        if frames.ndim != 4 or frames.shape[0] != len(unique) or frames.shape[-1] != 3:
            raise BadSampleError(path, None, f"decord returned frames of shape {frames.shape}")
        return _gather(frames, inverse)


class PyAVReader:
    """Videos decoded with PyAV (FFmpeg), one thread. A first pass over the packets (no decoding)
    gives every frame's timestamp and the key frames; each needed frame is then decoded from the
    key frame before it (seeking there unless decoding on is shorter), skipping non-reference
    frames nobody needs, and frames are identified by their timestamps, so the result equals a
    decode from the start. Files without usable timestamps (AVI with B-frames, packets without
    times) are decoded in order from the start."""

    def __repr__(self):
        return "PyAVReader()"

    @staticmethod
    def _open(path):
        import av
        _check_video_file(path)
        try:
            container = av.open(path)
        except av.FFmpegError as e:
            raise BadSampleError(path, None, f"cannot open video: {_first_line(e)}") from None
        if not container.streams.video:
            container.close()
            raise BadSampleError(path, None, "no video stream")
        container.streams.video[0].codec_context.thread_count = 1   # one per DataLoader worker, like decord
        return container

    @staticmethod
    def _index(path, container, stream):
        """(sorted timestamps of the frames, display positions of the key frames), or None when
        the timestamps cannot identify frames."""
        import av
        if container.format.name == "avi" and avi_reorders_frames(path):
            return None
        stamps, keys = [], []
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if packet.pts is None:
                    return None
                stamps.append(packet.pts)
                if packet.is_keyframe:
                    keys.append(packet.pts)
        except av.FFmpegError as e:
            raise BadSampleError(path, len(stamps), f"cannot read packets: {_first_line(e)}") from None
        order = np.sort(np.array(stamps, np.int64))
        if len(order) == 0 or np.any(np.diff(order) == 0) or not keys:
            return None
        return order, np.searchsorted(order, np.sort(np.array(keys, np.int64)))

    def num_frames(self, path):
        """The number of video packets that hold a frame (no decoding; `read` raises if fewer decode)."""
        import av
        with self._open(path) as container:
            try:
                return sum(1 for packet in container.demux(container.streams.video[0]) if packet.size)
            except av.FFmpegError as e:
                raise BadSampleError(path, None, f"cannot read packets: {_first_line(e)}") from None

    def read(self, path, indices):
        with self._open(path) as container:
            stream = container.streams.video[0]
            return self._decode(path, container, stream, self._index(path, container, stream), indices)

    def read_sampled(self, path, sample):
        """(frames, indices) with indices = sample(the video's frame count): the pass over the
        packets that indexes the file also counts its frames (a file without usable timestamps is
        counted in a pass of its own, as by `num_frames`)."""
        with self._open(path) as container:
            stream = container.streams.video[0]
            index = self._index(path, container, stream)
            indices = sample(len(index[0]) if index is not None else self.num_frames(path))
            return self._decode(path, container, stream, index, indices.reshape(-1)), indices

    def _decode(self, path, container, stream, index, indices):
        import av
        unique, inverse = _unique(indices)
        if unique[0] < 0:
            raise BadSampleError(path, int(unique[0]), "negative frame index")
        if index is None:
            return self._decode_in_order(path, container, unique, inverse)
        stamps, keys = index
        _check_range(path, unique, len(stamps))
        position = {int(s): i for i, s in enumerate(stamps)}
        wanted = {int(stamps[i]) for i in unique.tolist()}
        out, frames, at = None, None, -1
        try:
            for slot, target in enumerate(unique.tolist()):
                key = int(keys[np.searchsorted(keys, target, side="right") - 1])
                if frames is None or not key <= at < target:
                    container.seek(int(stamps[key]), backward=True, any_frame=False, stream=stream)
                    frames, at = self._decode_skipping(container, stream, wanted), -1
                for frame in frames:
                    at = position.get(frame.pts, -1)
                    if at >= target:
                        break
                if at != target:
                    raise BadSampleError(path, target, f"not decodable (decoding reached frame {at})")
                image = frame.to_ndarray(format="rgb24")
                if out is None:
                    out = np.empty((len(unique),) + image.shape, np.uint8)
                elif image.shape != out.shape[1:]:
                    raise BadSampleError(path, target, f"frame size {image.shape} differs from {out.shape[1:]}")
                out[slot] = image
        except av.FFmpegError as e:
            raise BadSampleError(path, target, f"cannot decode: {_first_line(e)}") from None
        return _gather(out, inverse)

    @staticmethod
    def _decode_skipping(container, stream, wanted):
        """Decode from the current position, skipping the non-reference frames whose timestamps are
        not in `wanted`: no later frame is predicted from them, so the others stay exact (a third
        less work on sparse clips of videos with B-frames)."""
        codec = stream.codec_context
        for packet in container.demux(stream):
            codec.skip_frame = "DEFAULT" if packet.pts in wanted else "NONREF"
            yield from packet.decode()

    def read_in_order(self, path, unique, inverse):
        """Decode from the start in decoding order up to the last needed frame."""
        with self._open(path) as container:
            return self._decode_in_order(path, container, unique, inverse)

    @staticmethod
    def _decode_in_order(path, container, unique, inverse):
        import av
        wanted, last = set(unique.tolist()), int(unique[-1])
        frames, decoded = {}, 0
        container.seek(0)
        try:
            for frame in container.decode(video=0):
                if decoded in wanted:
                    frames[decoded] = frame.to_ndarray(format="rgb24")
                decoded += 1
                if decoded > last:
                    break
        except av.FFmpegError as e:
            raise BadSampleError(path, decoded, f"cannot decode: {_first_line(e)}") from None
        if decoded <= last:
            first_missing = int(unique[unique >= decoded][0])
            raise BadSampleError(path, first_missing, f"outside the video's {decoded} decodable frames")
        return _stack(path, [frames[i] for i in unique.tolist()], inverse)


class TorchCodecReader(_DecoderReader):
    """Videos decoded with torchcodec, PyTorch's maintained decoder (needs FFmpeg's shared
    libraries on the system: `make ffmpeg` installs them).
    Exact seek mode: one scan of the packets indexes every frame, then each needed frame is decoded
    from the key frame before it. AVI files with B-frames are decoded in order with PyAV (see
    avi_reorders_frames); a cut-off file is caught from its container's sizes."""

    def __init__(self, num_threads=1, device="cpu"):
        self.num_threads, self.device = num_threads, device
        if device != "cpu":
            _check_device(device)
        check_torchcodec()

    def __repr__(self):
        device = f", device='{self.device}'" if self.device != "cpu" else ""
        return f"TorchCodecReader(num_threads={self.num_threads}{device})"

    def _open(self, path):
        from torchcodec.decoders import VideoDecoder
        _check_video_file(path)
        try:
            return VideoDecoder(path, seek_mode="exact", num_ffmpeg_threads=self.num_threads,
                                dimension_order="NHWC", device=self.device)
        except (RuntimeError, ValueError) as e:
            raise BadSampleError(path, None, f"cannot open video: {_first_line(e)}") from None

    def _decode(self, path, decoder, indices):
        unique, inverse = _unique(indices)
        _check_range(path, unique, len(decoder))
        if avi_reorders_frames(path):
            frames = PyAVReader().read_in_order(path, unique, inverse)
            return frames if self.device == "cpu" else torch.from_numpy(frames).to(self.device)
        try:
            frames = decoder.get_frames_at(unique.tolist()).data
        except (RuntimeError, ValueError) as e:
            raise BadSampleError(path, None, f"cannot decode frames {unique.tolist()}: {_first_line(e)}") from None
        return _gather(frames.numpy() if self.device == "cpu" else frames, inverse)


def _check_device(device):
    """ValueError unless frames can be decoded on `device` (a CUDA GPU)."""
    if torch.device(device).type != "cuda":
        raise ValueError(f"frames decode on 'cpu' or a CUDA device, not '{device}'")
    if not torch.cuda.is_available():
        raise ValueError(f"decoding on {device} needs a CUDA GPU (torch.cuda.is_available() is False)")


def _check_torchcodec_package():
    try:
        import torchcodec
    except (ImportError, OSError, RuntimeError) as e:
        raise ImportError(f"torchcodec is not installed (pip install torchcodec): {_first_line(e)}") from None
    return torchcodec


def check_torchcodec():
    """ImportError saying what to install when torchcodec or the FFmpeg libraries it loads are missing."""
    try:
        torchcodec = _check_torchcodec_package()
    except ImportError as e:
        raise ImportError(f"--decoder torchcodec: {e}") from None
    if torchcodec.ffmpeg_major_version is None:
        raise ImportError("--decoder torchcodec needs FFmpeg's shared libraries (4 to 8): `make ffmpeg` "
                          "(apt-get install ffmpeg), or --decoder pyav / decord")


def _first_line(error):
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


READERS = {"decord": DecordReader, "pyav": PyAVReader, "torchcodec": TorchCodecReader}


def make_reader(data_format, image_tmpl="img_{:05d}.jpg", decoder=VIDEO_DECODER, jpeg_decoder=JPEG_DECODER,
                min_side=None, device="cpu", roi=True):
    """The reader for a data format: RawFrameReader(image_tmpl, jpeg_decoder, min_side, device, roi) or the
    named video decoder. device 'cuda' decodes on the GPU (nvJPEG, NVDEC) through torchcodec; the
    frames then stay there and the transforms run there."""
    if data_format == "rawframes":
        return RawFrameReader(image_tmpl, jpeg_decoder, min_side, device, roi)
    if data_format != "video":
        raise ValueError(f"data_format must be 'rawframes' or 'video', got '{data_format}'")
    if decoder not in READERS:
        raise ValueError(f"decoder must be one of {sorted(READERS)}, got '{decoder}'")
    if device == "cpu":
        return READERS[decoder]()
    if decoder != "torchcodec":
        raise ValueError(f"decoding video on {device} uses NVDEC through torchcodec: decoder 'torchcodec' (not '{decoder}')")
    return TorchCodecReader(device=device)


# ---------------------------------------------------------------------------------------------
# Dataset

class Skipped(NamedTuple):
    """What VideoDataset returns for a bad item under on_bad_sample='skip' (dropped by collate_skip)."""
    index: int
    name: str
    reason: str


class VideoDataset(torch.utils.data.Dataset):
    """ds[i] -> (frames uint8 tensor [V, T, h, w, 3], label, i).

    video_list: VideoList; reader: RawFrameReader / DecordReader / PyAVReader; sampler: maps
    (num_frames, rng) to indices [C, T]; transform: (frames [C, T, H, W, 3], label, rng) ->
    (tensor [V, T, h, w, 3], label), or None to return the C clips as the views unchanged.
    The rng of item i is np.random.default_rng([seed, epoch, i]), so an item depends only on
    (seed, epoch, i), whichever worker builds it; the epoch is the one of set_epoch(e), or comes
    with the index as ds[(e, i)] (ops.data.EpochSampler, for workers that outlive an epoch).
    on_bad_sample: 'error' raises BadSampleError with the list file and line added; 'skip'
    returns a `Skipped` marker that `collate_skip` drops and reports.
    """

    def __init__(self, video_list, reader, sampler, transform=None, seed=0, on_bad_sample="error"):
        if on_bad_sample not in ("error", "skip"):
            raise ValueError(f"on_bad_sample must be 'error' or 'skip', got '{on_bad_sample}'")
        self.video_list, self.reader, self.sampler, self.transform = video_list, reader, sampler, transform
        self.seed, self.on_bad_sample, self.epoch = seed, on_bad_sample, 0

    def __repr__(self):
        return (f"VideoDataset({self.video_list!r}, reader={self.reader!r}, sampler={self.sampler!r}, "
                f"transform={self.transform!r}, seed={self.seed}, on_bad_sample='{self.on_bad_sample}')")

    def __len__(self):
        return len(self.video_list)

    def set_epoch(self, epoch):
        self.epoch = epoch

    def load(self, index, rng):
        """Sampled frames [C, T, H, W, 3], the label of item `index` and the transform's Cut when the
        reader decoded only its window (one clip, a reader with ROI decoding), else None."""
        vl = self.video_list
        path, num_frames = vl.path(index), int(vl.num_frames[index])

        def sample_counted(count):
            if count < 1:
                raise BadSampleError(path, None, "no frames")
            return self.sampler(count, rng)
        if num_frames < 0 and hasattr(self.reader, "read_sampled"):  # one open for the count and the frames
            frames, indices = self.reader.read_sampled(path, sample_counted)
            return frames.reshape(indices.shape + frames.shape[1:]), int(vl.labels[index]), None
        indices = sample_counted(self.reader.num_frames(path)) if num_frames < 0 else self.sampler(num_frames, rng)
        crop_window = getattr(self.transform, "crop_window", None)
        if indices.shape[0] == 1 and crop_window is not None and getattr(self.reader, "roi", False):
            cuts = []

            def crop(height, width):
                cuts.append(crop_window(height, width, rng))
                return None if cuts[0] is None else cuts[0][1:]
            frames = self.reader.read(path, indices.reshape(-1), crop)
            cut = cuts[0] if cuts else None
        else:
            frames, cut = self.reader.read(path, indices.reshape(-1)), None
        return frames.reshape(indices.shape + frames.shape[1:]), int(vl.labels[index]), cut

    def __getitem__(self, key):
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        rng = np.random.default_rng([self.seed, epoch, index])
        try:
            frames, label, cut = self.load(index, rng)
        except BadSampleError as e:
            where = self.video_list.where(index)
            if self.on_bad_sample == "skip":
                return Skipped(index, self.video_list.name(index), f"{e} ({where})")
            raise BadSampleError(e.video, e.frame, f"{e.reason} ({where})") from None
        if self.transform is None:
            frames = frames if isinstance(frames, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(frames))
            return frames.contiguous(), label, index
        if cut is None:
            frames, label = self.transform(frames, label, rng)
        else:   # the frames are the window the transform cuts first
            frames, label = self.transform(frames, label, rng, cut)
        return frames, label, index


def collate_skip(batch, normalize=None):
    """Collate VideoDataset items, dropping `Skipped` markers.
    Returns (frames [B, V, T, h, w, 3] or None when every item was bad, labels [B], indices [B],
    skipped: list of 'name: reason' strings). With `normalize` (a DeviceNormalize, run by the
    loader's workers on a CPU run), the frames come back in the model's float layout instead."""
    good = [item for item in batch if not isinstance(item, Skipped)]
    skipped = [f"{item.name}: {item.reason}" for item in batch if isinstance(item, Skipped)]
    if not good:
        empty = torch.zeros(0, dtype=torch.int64)
        return None, empty, empty.clone(), skipped
    frames = torch.stack([item[0] for item in good])
    if normalize is not None:
        frames = normalize(frames)
    labels = torch.tensor([item[1] for item in good], dtype=torch.int64)
    indices = torch.tensor([item[2] for item in good], dtype=torch.int64)
    return frames, labels, indices, skipped


def skip_report(names, limit=20):
    """One message for the skipped samples of an epoch (names gathered over the ranks by
    ops.evaluation.gather_names): the count and the first `limit` entries."""
    if not names:
        return "skipped 0 bad samples"
    shown = "\n  ".join(names[:limit])
    more = f"\n  ... and {len(names) - limit} more" if len(names) > limit else ""
    return f"skipped {len(names)} bad sample(s):\n  {shown}{more}"
