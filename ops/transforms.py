"""Group transforms: one random decision per clip, applied to every frame of it, on uint8 frames.

A pipeline is called as ``transform(frames, label, rng)``: ``frames`` uint8 [C, T, H, W, 3] (numpy
or torch; C clips of T frames), ``rng`` a ``numpy.random.Generator``. It returns
``(torch.uint8 [V, T, h, w, 3], label)`` with V = clips x crops; the label comes back because a
flip can change it (Something-Something's left/right classes).

Why it is fast: a crop is a slice (no copy), and every resize is one
``torch.nn.functional.interpolate`` call over all the frames of a clip (bilinear, antialiased,
on PyTorch's uint8 channels-last path), so the transforms never convert to float.
``DeviceNormalize`` turns the uint8 batch into the model's float layout: on the accelerator, or on
a CPU run in the loader's workers (``place_normalize``).
"""
import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

FLIP_POLICIES = ("always", "never", "map")


def as_frames(frames):
    """numpy or torch uint8 [C, T, H, W, 3] -> torch uint8 [C, T, H, W, 3] (no copy when possible)."""
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(frames if frames.flags.writeable else frames.copy())
    if not isinstance(frames, torch.Tensor):
        raise TypeError(f"frames must be a numpy array or a torch tensor, got {type(frames).__name__}")
    if frames.dtype != torch.uint8 or frames.dim() != 5 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [C, T, H, W, 3], got {frames.dtype} {list(frames.shape)}")
    return frames


def _pair(size):
    """int s -> (s, s); (h, w) -> (h, w)."""
    if isinstance(size, int):
        return size, size
    height, width = size
    return int(height), int(width)


def _resize(clip, size):
    """uint8 [T, H, W, 3] (any strides) -> uint8 [T, h, w, 3], bilinear with antialiasing.

    Permuting to [T, 3, H, W] keeps the memory channels-last, the layout of PyTorch's fast uint8
    kernel, and its output permutes back to a contiguous [T, h, w, 3] without a copy.
    """
    if tuple(clip.shape[1:3]) == tuple(size):
        return clip
    if clip.device.type != "cpu":   # frames decoded on the GPU: its antialiased kernel takes floats
        out = F.interpolate(clip.permute(0, 3, 1, 2).float(), size=size, mode="bilinear", antialias=True,
                            align_corners=False)
        return out.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    out = F.interpolate(clip.permute(0, 3, 1, 2), size=size, mode="bilinear", antialias=True,
                        align_corners=False)
    return out.permute(0, 2, 3, 1)


def _cut(frames, windows, size=None):
    """Cut windows[c] = [(y, x, h, w), ...] out of every frame of clip c, resized to size if given.

    Takes uint8 [C, T, H, W, 3]; returns uint8 [sum of len(windows[c]), T, h, w, 3]. A single
    view is returned as it is (the resize's fresh output, or a slice): stacking it would copy it.
    """
    views = []
    for clip, clip_windows in zip(frames, windows):
        for y, x, h, w in clip_windows:
            view = clip[:, y:y + h, x:x + w]
            views.append(view if size is None else _resize(view, size))
    return views[0].unsqueeze(0) if len(views) == 1 else torch.stack(views)


def _crop_each_clip(frames, window, size, rng):
    """One window(height, width, rng) -> (y, x, h, w) per clip, cut from all its frames, resized to size.

    Takes uint8 [C, T, H, W, 3] (numpy or torch), returns uint8 [C, T, size_h, size_w, 3].
    """
    frames = as_frames(frames)
    height, width = frames.shape[2:4]
    windows = [[window(height, width, rng)] for _ in range(frames.shape[0])]
    return _cut(frames, windows, _pair(size))


def _check_fits(name, frame_h, frame_w, height, width):
    if frame_h < height or frame_w < width:
        raise ValueError(f"{name} needs frames of at least {height}x{width} (HxW), got "
                         f"{frame_h}x{frame_w}: scale them first (GroupScale)")


class GroupMultiScaleCrop:
    """TSN's multi-scale crop: a corner/centre crop of a random scale and aspect, resized to `size`.

    Takes uint8 [C, T, H, W, 3], returns uint8 [C, T, size_h, size_w, 3]; one crop per clip.
    Crop sides are scale x short side for each scale, snapped to the target side when less than
    3 px away (and the target fits); height and width scales are at most `max_distort` steps
    apart. Offsets are the 5 (corners + centre) or, with `more_fix_crop`, 13 fixed positions on a
    4 x 4 grid over the free space (the corners touch the frame's edges exactly), or any position
    when `fix_crop` is False.
    """

    def __init__(self, size, scales=(1, .875, .75, .66), max_distort=1, fix_crop=True, more_fix_crop=True):
        self.size = size
        self.resize = size
        self.scales = tuple(scales)
        self.max_distort = max_distort
        self.fix_crop = fix_crop
        self.more_fix_crop = more_fix_crop

    def crop_sizes(self, height, width):
        """All candidate (crop_h, crop_w) for a frame of height x width."""
        target_h, target_w = _pair(self.size)
        sides = [int(min(height, width) * s) for s in self.scales]
        crop_h = [target_h if abs(s - target_h) < 3 and target_h <= height else s for s in sides]
        crop_w = [target_w if abs(s - target_w) < 3 and target_w <= width else s for s in sides]
        return [(h, w) for i, h in enumerate(crop_h) for j, w in enumerate(crop_w)
                if abs(i - j) <= self.max_distort]

    def offsets(self, height, width, crop_h, crop_w):
        """The fixed (y, x) positions: corners and centre, then the 8 in-between positions."""
        grid = [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2)]
        if self.more_fix_crop:
            grid += [(2, 0), (2, 4), (4, 2), (0, 2), (1, 1), (1, 3), (3, 1), (3, 3)]
        free_y, free_x = height - crop_h, width - crop_w
        return [(i * free_y // 4, j * free_x // 4) for i, j in grid]

    def window(self, height, width, rng):
        """One random (y, x, h, w) crop window."""
        sizes = self.crop_sizes(height, width)
        h, w = sizes[rng.integers(len(sizes))]
        if self.fix_crop:
            offsets = self.offsets(height, width, h, w)
            y, x = offsets[rng.integers(len(offsets))]
        else:
            y, x = int(rng.integers(height - h + 1)), int(rng.integers(width - w + 1))
        return y, x, h, w

    def __call__(self, frames, label, rng):
        return _crop_each_clip(frames, self.window, self.size, rng), label

    def __repr__(self):
        fix = (13 if self.more_fix_crop else 5) if self.fix_crop else False
        return (f"GroupMultiScaleCrop(size={self.size}, scales={self.scales}, "
                f"max_distort={self.max_distort}, fix_crop={fix})")


class GroupRandomResizedCrop:
    """Inception-style crop: random area fraction and aspect ratio, random position, resized to `size`.

    Takes uint8 [C, T, H, W, 3], returns uint8 [C, T, size_h, size_w, 3]; one crop per clip.
    After `attempts` draws that do not fit, the whole frame cut to the nearest allowed aspect ratio
    (centred) is used.
    """

    def __init__(self, size, area=(0.08, 1.0), ratio=(3 / 4, 4 / 3), attempts=10):
        self.size = size
        self.resize = size
        self.area = tuple(area)
        self.ratio = tuple(ratio)
        self.attempts = attempts

    def window(self, height, width, rng):
        """One random (y, x, h, w) crop window."""
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(self.attempts):
            area = height * width * rng.uniform(*self.area)
            aspect = math.exp(rng.uniform(*log_ratio))
            w = int(round(math.sqrt(area * aspect)))
            h = int(round(math.sqrt(area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return int(rng.integers(height - h + 1)), int(rng.integers(width - w + 1)), h, w
        aspect = width / height
        h, w = height, width
        if aspect < self.ratio[0]:
            h = int(round(width / self.ratio[0]))
        elif aspect > self.ratio[1]:
            w = int(round(height * self.ratio[1]))
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, frames, label, rng):
        return _crop_each_clip(frames, self.window, self.size, rng), label

    def __repr__(self):
        area = tuple(round(a, 4) for a in self.area)
        ratio = tuple(round(r, 4) for r in self.ratio)
        return f"GroupRandomResizedCrop(size={self.size}, area={area}, ratio={ratio})"


class GroupRandomCrop:
    """A size x size crop at a random position (clip models: after GroupScale), no resize.

    Takes uint8 [C, T, H, W, 3] with H, W >= size, returns uint8 [C, T, size_h, size_w, 3];
    one position per clip.
    """

    def __init__(self, size):
        self.size = size
        self.resize = None

    def window(self, height, width, rng):
        """One random (y, x, h, w) window."""
        h, w = _pair(self.size)
        _check_fits(repr(self), height, width, h, w)
        return int(rng.integers(height - h + 1)), int(rng.integers(width - w + 1)), h, w

    def __call__(self, frames, label, rng):
        frames = as_frames(frames)
        height, width = frames.shape[2:4]
        return _cut(frames, [[self.window(height, width, rng)] for _ in range(frames.shape[0])]), label

    def __repr__(self):
        return f"GroupRandomCrop(size={self.size})"


class GroupRandomHorizontalFlip:
    """Mirror a clip (every frame) with probability p; the flip policy says which classes allow it.

    Takes and returns uint8 [C, T, H, W, 3] and the label. Policies: 'always' (any class may be
    flipped; one decision per clip), 'never' (identity: Jester's left/right gestures are classes),
    'map' (flip, and swap the label of a flipped clip through `flip_map`, e.g. Something-Something's
    "left to right" <-> "right to left"; one decision for all clips of an item, which has one label).
    `flip_map` pairs {a: b} are made symmetric.
    """

    def __init__(self, policy="always", flip_map=None, p=0.5):
        if policy not in FLIP_POLICIES:
            raise ValueError(f"flip policy must be one of {FLIP_POLICIES}, got {policy!r}")
        if policy == "map" and not flip_map:
            raise ValueError("flip policy 'map' needs a flip_map {label: flipped label}")
        if policy != "map" and flip_map:
            raise ValueError(f"flip_map is only used with policy 'map', not {policy!r}")
        self.policy = policy
        self.p = p
        self.flip_map = {}
        for a, b in dict(flip_map or {}).items():
            for src, dst in ((int(a), int(b)), (int(b), int(a))):
                if self.flip_map.setdefault(src, dst) != dst:
                    raise ValueError(f"flip_map sends label {src} to both {self.flip_map[src]} and {dst}")

    def __call__(self, frames, label, rng):
        frames = as_frames(frames)
        if self.policy == "never":
            return frames, label
        if self.policy == "map":
            if rng.random() >= self.p:
                return frames, label
            if label is not None and int(label) in self.flip_map:
                label = self.flip_map[int(label)]
            return frames.flip(-2), label
        decisions = rng.random(frames.shape[0]) < self.p
        if not decisions.any():
            return frames, label
        if decisions.all():
            return frames.flip(-2), label
        return torch.stack([clip.flip(-2) if d else clip for clip, d in zip(frames, decisions)]), label

    def __repr__(self):
        extra = f", flip_map={dict(sorted(self.flip_map.items()))}" if self.policy == "map" else ""
        return f"GroupRandomHorizontalFlip(policy={self.policy!r}{extra}, p={self.p})"


class GroupScale:
    """Resize every frame: an int makes the short side that long (aspect kept), (h, w) is exact.

    Takes uint8 [C, T, H, W, 3], returns uint8 [C, T, h, w, 3]. The long side is
    int(size * long / short), as torchvision's Resize does.
    """

    def __init__(self, size):
        self.size = size

    def output_size(self, height, width):
        """(h, w) of the scaled frames."""
        if not isinstance(self.size, int):
            return _pair(self.size)
        if height <= width:
            return self.size, int(self.size * width / height)
        return int(self.size * height / width), self.size

    def __call__(self, frames, label, rng=None):
        frames = as_frames(frames)
        clips, length, height, width, _ = frames.shape
        size = self.output_size(height, width)
        if size == (height, width):
            return frames, label
        out = _resize(frames.reshape(clips * length, height, width, 3), size)
        return out.reshape(clips, length, size[0], size[1], 3), label

    def __repr__(self):
        return f"GroupScale(size={self.size})"


class GroupCenterCrop:
    """The centre size x size (or h x w) crop of every frame.

    Takes uint8 [C, T, H, W, 3] with H, W >= size, returns uint8 [C, T, size_h, size_w, 3].
    """

    def __init__(self, size):
        self.size = size
        self.resize = None

    def window(self, height, width, rng=None):
        """The centre (y, x, h, w) window."""
        h, w = _pair(self.size)
        _check_fits(repr(self), height, width, h, w)
        return int(round((height - h) / 2)), int(round((width - w) / 2)), h, w

    def __call__(self, frames, label, rng=None):
        frames = as_frames(frames)
        y, x, h, w = self.window(*frames.shape[2:4])
        return frames[:, :, y:y + h, x:x + w], label

    def __repr__(self):
        return f"GroupCenterCrop(size={self.size})"


class GroupThreeCrop:
    """Three square crops along the long side: left/centre/right (or top/centre/bottom).

    With size None the square's side is the frame's short side: the "full resolution" test
    protocol (after GroupScale(256) a 340x256 frame gives three 256x256 views). Takes uint8
    [C, T, H, W, 3], returns uint8 [3C, T, s, s, 3], the three crops of clip c at 3c, 3c+1, 3c+2.
    """

    def __init__(self, size=None):
        self.size = size

    def windows(self, height, width):
        """The three (y, x, s, s) windows."""
        side = min(height, width) if self.size is None else self.size
        if side > min(height, width):
            raise ValueError(f"{self!r} needs frames of at least {side}x{side} (HxW), got "
                             f"{height}x{width}: scale them first (GroupScale)")
        if width >= height:
            y, free = (height - side) // 2, width - side
            return [(y, x, side, side) for x in (0, free // 2, free)]
        x, free = (width - side) // 2, height - side
        return [(y, x, side, side) for y in (0, free // 2, free)]

    def __call__(self, frames, label, rng=None):
        frames = as_frames(frames)
        windows = self.windows(*frames.shape[2:4])
        return _cut(frames, [windows] * frames.shape[0]), label

    def __repr__(self):
        return f"GroupThreeCrop(size={'short side' if self.size is None else self.size})"


class GroupTenCrop:
    """The 4 corner crops and the centre crop, then (flip=True) the same 5 mirrored.

    Takes uint8 [C, T, H, W, 3], returns uint8 [10C (5C without flip), T, size_h, size_w, 3];
    clip c's views are consecutive: top-left, top-right, bottom-left, bottom-right, centre, and
    their mirror images in the same order.
    """

    def __init__(self, size, flip=True):
        self.size = size
        self.flip = flip

    def windows(self, height, width):
        """The five (y, x, h, w) windows: 4 corners, then the centre."""
        h, w = _pair(self.size)
        free_y, free_x = height - h, width - w
        corners = [(0, 0), (0, free_x), (free_y, 0), (free_y, free_x)]
        centre = (int(round(free_y / 2)), int(round(free_x / 2)))
        return [(y, x, h, w) for y, x in corners + [centre]]

    def __call__(self, frames, label, rng=None):
        frames = as_frames(frames)
        h, w = _pair(self.size)
        _check_fits(repr(self), *frames.shape[2:4], h, w)
        crops = _cut(frames, [self.windows(*frames.shape[2:4])] * frames.shape[0])
        if not self.flip:
            return crops, label
        crops = crops.reshape(frames.shape[0], 5, *crops.shape[1:])
        both = torch.cat([crops, crops.flip(-2)], dim=1)
        return both.reshape(-1, *both.shape[2:]), label

    def __repr__(self):
        return f"GroupTenCrop(size={self.size}, flip={self.flip})"


class Cut(NamedTuple):
    """The window (y, x, h, w) that step `step` of a Compose cuts first, drawn before decoding so a
    reader can decode that window alone (Compose.crop_window)."""
    step: int
    y: int
    x: int
    h: int
    w: int


# The steps that cut one window per clip, drawn by step.window(height, width, rng), resized to
# step.resize when that is not None.
WINDOW_CROPS = (GroupMultiScaleCrop, GroupRandomResizedCrop, GroupRandomCrop, GroupCenterCrop)


class Compose:
    """Run steps in order: (frames [C, T, H, W, 3] numpy/torch uint8, label, rng) -> (uint8 [V, T, h, w, 3], label).

    A reader that can decode a window alone (RawFrameReader with ROI decoding) asks crop_window
    for the single clip's window before decoding, then passes the Cut back: __call__ draws
    nothing twice and gives the same result as on the whole frames.
    """

    def __init__(self, steps):
        self.steps = list(steps)

    @property
    def min_side(self):
        """The short side the pipeline scales frames to first (GroupScale(int)), or None: a reader
        may decode frames at any size whose short side is at least this."""
        first = self.steps[0] if self.steps else None
        return first.size if isinstance(first, GroupScale) and isinstance(first.size, int) else None

    def crop_window(self, height, width, rng):
        """The Cut that running the pipeline on one clip of height x width frames would make first,
        drawn from rng as running it would draw it; None when the first step that changes such
        frames is not a WINDOW_CROPS step (GroupScale to the size they have changes nothing)."""
        for index, step in enumerate(self.steps):
            if isinstance(step, WINDOW_CROPS):
                return Cut(index, *step.window(height, width, rng))
            if not (isinstance(step, GroupScale) and step.output_size(height, width) == (height, width)):
                return None
        return None

    def __call__(self, frames, label, rng, cut=None):
        """cut: the Cut of crop_window when the frames are that window already (decoded alone):
        the steps up to it are done but for its resize."""
        frames = as_frames(frames)
        steps = self.steps
        if cut is not None:
            resize = steps[cut.step].resize
            if resize is not None:
                frames = _cut(frames, [[(0, 0, cut.h, cut.w)]] * frames.shape[0], _pair(resize))
            steps = steps[cut.step + 1:]
        for step in steps:
            frames, label = step(frames, label, rng)
        return frames.contiguous(), label

    def __repr__(self):
        return "Compose(\n" + "".join(f"    {step!r},\n" for step in self.steps) + ")"


TRAIN_AUGS = ("multiscale", "rrc", "scale_crop", "center")


def train_crop(train_aug, crop_size, scale_size):
    """The spatial part of a training pipeline, by name (`--train_aug`):

    multiscale  TSN's multi-scale corner crop (the 2D models' published recipe)
    rrc         Inception-style random resized crop
    scale_crop  short side to scale_size, then a random crop_size crop (the 3D clip models' recipe)
    center      short side to scale_size, then the centre crop: the validation view (no spatial
                jitter; flips still apply), for data whose object fills the frame's centre
    """
    if train_aug == "multiscale":
        return [GroupMultiScaleCrop(crop_size)]
    if train_aug == "rrc":
        return [GroupRandomResizedCrop(crop_size)]
    if train_aug == "scale_crop":
        return [GroupScale(scale_size), GroupRandomCrop(crop_size)]
    if train_aug == "center":
        return [GroupScale(scale_size), GroupCenterCrop(crop_size)]
    raise ValueError(f"train_aug must be one of {TRAIN_AUGS}, got {train_aug!r}")


def build_transform(mode, crop_size, scale_size, flip="always", flip_map=None, test_crops=1,
                    full_res=False, train_aug="multiscale"):
    """The usual pipelines.

    train: the `train_aug` crop (see train_crop) + flip; val: GroupScale + centre crop; test:
      GroupScale + 1 centre crop, 3 crops along the long side, 5 crops (corners + centre) or 10
      (5 + mirrors).
    full_res: test crops are scale_size squares (the whole short side) instead of crop_size.
    Ten crops mirror every view, which would give a left/right class the wrong label, so they need
    flip='always' (use 5 crops for the others).
    """
    if mode not in ("train", "val", "test"):
        raise ValueError(f"mode must be train, val or test, got {mode!r}")
    if flip not in FLIP_POLICIES:
        raise ValueError(f"flip policy must be one of {FLIP_POLICIES}, got {flip!r}")
    if mode == "train":
        flips = [] if flip == "never" else [GroupRandomHorizontalFlip(flip, flip_map if flip == "map" else None)]
        return Compose(train_crop(train_aug, crop_size, scale_size) + flips)
    if mode == "val":
        return Compose([GroupScale(scale_size), GroupCenterCrop(crop_size)])
    if test_crops not in (1, 3, 5, 10):
        raise ValueError(f"test_crops must be 1, 3, 5 or 10, got {test_crops}")
    if full_res and not isinstance(scale_size, int):
        raise ValueError(f"full_res needs an int scale_size (the short side), got {scale_size}")
    if test_crops == 10 and flip != "always":
        raise ValueError(f"10 test crops mirror every view, which flip policy {flip!r} forbids: use 5 crops")
    side = scale_size if full_res else crop_size
    crops = {1: GroupCenterCrop(side), 3: GroupThreeCrop(None if full_res else side),
             5: GroupTenCrop(side, flip=False), 10: GroupTenCrop(side, flip=True)}[test_crops]
    return Compose([GroupScale(scale_size), crops])


class DeviceNormalize(torch.nn.Module):
    """A uint8 batch -> float input in the model's layout (where it runs: `place_normalize`).

    Takes uint8 [B, V, T, h, w, 3] (RGB); returns float32 [B, V, T, 3, h, w] (layout 'frames') or
    [B, V, 3, T, h, w] (layout 'clip'), computed as (x / 255 * value_scale - mean) / std, with the
    channels reversed first when bgr=True (mean and std are given in the model's channel order).
    BNInception: bgr=True, value_scale=255, mean (104, 117, 128), std (1, 1, 1). With
    channels_last=True the result is a permuted view whose memory stays [..., h, w, 3] (no copy);
    otherwise it is contiguous in the returned layout.
    """

    def __init__(self, mean, std, bgr=False, value_scale=1.0, layout="frames", channels_last=False):
        super().__init__()
        if layout not in ("frames", "clip"):
            raise ValueError(f"layout must be 'frames' or 'clip', got {layout!r}")
        self.mean_values, self.std_values = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        if len(self.mean_values) != 3 or len(self.std_values) != 3:
            raise ValueError(f"mean and std need 3 values, got {self.mean_values} and {self.std_values}")
        self.bgr, self.value_scale, self.layout, self.channels_last = bgr, value_scale, layout, channels_last
        mean = torch.tensor(self.mean_values, dtype=torch.float32)
        std = torch.tensor(self.std_values, dtype=torch.float32)
        # in uint8 units: (x / 255 * value_scale - mean) / std == (x - mean') * (1 / std')
        unit = 255.0 / value_scale
        # shaped to broadcast over the channel axis of the output layout
        shape = (3, 1, 1) if layout == "frames" else (3, 1, 1, 1)
        self.register_buffer("shift", (mean * unit).view(shape), persistent=False)
        self.register_buffer("inv_scale", (1.0 / (std * unit)).view(shape), persistent=False)

    @classmethod
    def from_spec(cls, spec, channels_last=False):
        """From a model's InputSpec (layout, mean, std, bgr, value_scale)."""
        return cls(spec.mean, spec.std, bgr=spec.bgr, value_scale=spec.value_scale, layout=spec.layout,
                   channels_last=channels_last)

    def forward(self, frames):
        if frames.dtype != torch.uint8 or frames.dim() != 6 or frames.shape[-1] != 3:
            raise ValueError(f"DeviceNormalize takes uint8 [B, V, T, h, w, 3], got {frames.dtype} "
                             f"{list(frames.shape)}")
        if self.bgr:
            frames = frames.flip(-1)
        x = frames.permute(0, 1, 2, 5, 3, 4) if self.layout == "frames" else frames.permute(0, 1, 5, 2, 3, 4)
        # A converting copy into the output layout (unless channels_last keeps the frames' memory),
        # then the subtraction and the scale in place. On the CPU this is 1.2-2x faster than one
        # subtraction from the permuted uint8 view into float32 (that mixed-dtype strided read is not
        # vectorised; docs/benchmarks.md), with the same values.
        fmt = torch.preserve_format if self.channels_last else torch.contiguous_format
        return x.to(torch.float32, memory_format=fmt).sub_(self.shift).mul_(self.inv_scale)

    def extra_repr(self):
        return (f"mean={self.mean_values}, std={self.std_values}, bgr={self.bgr}, "
                f"value_scale={self.value_scale}, layout={self.layout!r}, channels_last={self.channels_last}")


def place_normalize(normalize, device):
    """Where a run normalises its batches: (the loader's DeviceNormalize, the step's), one of them None.

    On a GPU the step does it on the device, so uint8 crosses the bus (4x less than float32) and
    the workers never touch floats. On the CPU the loader's workers do it, as TSM's dataset does:
    the training process's step then starts from float input, and the conversion runs beside it
    in the workers (the same function, so the same values)."""
    if device.type == "cpu":
        return normalize, None
    return None, normalize.to(device)
