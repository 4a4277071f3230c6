"""Group transforms: crop geometry, one decision per clip, label-aware flips, multi-view crops,
DeviceNormalize numerics and layouts, reprs and determinism."""
import pickle
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ops.transforms import (Compose, DeviceNormalize, GroupCenterCrop, GroupMultiScaleCrop,
                            GroupRandomCrop, GroupRandomHorizontalFlip, GroupRandomResizedCrop,
                            GroupScale, GroupTenCrop, GroupThreeCrop, build_transform)

SS_V1_FLIP = {2: 4, 30: 41, 52: 66}


def coords(clips, length, height, width, step=1):
    """uint8 [C, T, H, W, 3]: channel 0 = step*y, channel 1 = step*x, channel 2 = 10*t + c."""
    y = np.arange(height)[:, None] * step
    x = np.arange(width)[None, :] * step
    frames = np.empty((clips, length, height, width, 3), np.uint8)
    frames[..., 0] = y
    frames[..., 1] = x
    frames[..., 2] = (10 * np.arange(length)[None, :, None, None] + np.arange(clips)[:, None, None, None])
    return frames


def top_left(view):
    """(y, x) coordinates stored in the first pixel of a coords() view [T, h, w, 3]."""
    return int(view[0, 0, 0, 0]), int(view[0, 0, 0, 1])


# ---------------------------------------------------------------- multi-scale crop geometry

def test_multiscale_candidates_for_tsn_frames():
    crop = GroupMultiScaleCrop(224)
    # short side 256: int(256 * s) = 256, 224, 192, 168 (224 is the target already)
    sides = [256, 224, 192, 168]
    expected = {(sides[i], sides[j]) for i in range(4) for j in range(4) if abs(i - j) <= 1}
    got = crop.crop_sizes(256, 340)
    assert set(got) == expected and len(got) == 10


@pytest.mark.parametrize("max_distort", [0, 1, 2])
@pytest.mark.parametrize("height,width", [(64, 90), (90, 64), (70, 70)])
def test_multiscale_candidates_obey_max_distort(max_distort, height, width):
    scales = (1, .875, .75, .66)
    crop = GroupMultiScaleCrop(16, scales=scales, max_distort=max_distort)  # no side near 16
    sides = [int(min(height, width) * s) for s in scales]
    got = crop.crop_sizes(height, width)
    allowed = {(sides[i], sides[j]) for i in range(4) for j in range(4) if abs(i - j) <= max_distort}
    assert set(got) == allowed
    assert len(got) == sum(1 for i in range(4) for j in range(4) if abs(i - j) <= max_distort)


def test_multiscale_snaps_to_target_within_3px():
    # short side 226: sides 226, 197, 169, 149 -> 226 is 2 px from 224 and snaps
    heights = {h for h, _ in GroupMultiScaleCrop(224).crop_sizes(226, 300)}
    assert heights == {224, 197, 169, 149}
    # 3 px away does not snap
    heights = {h for h, _ in GroupMultiScaleCrop(224).crop_sizes(227, 300)}
    assert 227 in heights and 224 not in heights
    # a target larger than the frame never snaps (the crop would leave the frame); widths still can
    sizes = GroupMultiScaleCrop(224).crop_sizes(222, 300)
    assert {h for h, _ in sizes} == {222, 194, 166, 146} and (222, 224) in sizes


def test_multiscale_five_and_thirteen_fixed_offsets():
    # free space 42 x 83 (not multiples of 4): quarter positions 0, 10, 21, 31, 42 and 0, 20, 41, 62, 83
    five = GroupMultiScaleCrop(32, more_fix_crop=False).offsets(100, 140, 58, 57)
    corners_centre = {(0, 0), (0, 83), (42, 0), (42, 83), (21, 41)}   # corners touch the edges exactly
    assert len(five) == 5 and set(five) == corners_centre
    thirteen = GroupMultiScaleCrop(32).offsets(100, 140, 58, 57)
    between = {(21, 0), (21, 83), (42, 41), (0, 41), (10, 20), (10, 62), (31, 20), (31, 62)}
    assert len(thirteen) == 13 and set(thirteen) == corners_centre | between


def test_multiscale_windows_use_only_candidates_and_fixed_offsets():
    crop = GroupMultiScaleCrop(32)
    rng = np.random.default_rng(0)
    sizes = set(crop.crop_sizes(64, 90))
    seen_offsets = set()
    for _ in range(2000):
        y, x, h, w = crop.window(64, 90, rng)
        assert (h, w) in sizes
        assert (y, x) in crop.offsets(64, 90, h, w)
        assert 0 <= y and y + h <= 64 and 0 <= x and x + w <= 90
        if (h, w) == (42, 48):
            seen_offsets.add((y, x))
    assert len(seen_offsets) == 13  # every fixed position gets used


def test_multiscale_random_offsets_without_fix_crop():
    crop = GroupMultiScaleCrop(32, fix_crop=False)
    rng = np.random.default_rng(1)
    offsets = set()
    for _ in range(300):
        y, x, h, w = crop.window(64, 90, rng)
        assert 0 <= y <= 64 - h and 0 <= x <= 90 - w
        offsets.add((y, x))
    assert len(offsets) > 13


def test_multiscale_call_cuts_the_drawn_window():
    """The output of a linear ramp is the ramp over the window: centre and extent match."""
    frames = coords(1, 2, 96, 127, step=2)
    crop = GroupMultiScaleCrop(48)
    for seed in range(6):
        y, x, h, w = crop.window(96, 127, np.random.default_rng(seed))
        out, _ = crop(frames, 0, np.random.default_rng(seed))
        assert out.shape == (1, 2, 48, 48, 3)
        ys, xs = out[0, 0, :, :, 0].double(), out[0, 0, :, :, 1].double()
        assert abs(ys.mean().item() - 2 * (y + (h - 1) / 2)) < 1.5
        assert abs(xs.mean().item() - 2 * (x + (w - 1) / 2)) < 1.5
        assert abs((ys.max() - ys.min()).item() - 2 * (h - 1)) < 2 * h / 48 + 2
        assert abs((xs.max() - xs.min()).item() - 2 * (w - 1)) < 2 * w / 48 + 2


def test_resize_matches_float_interpolation():
    """The uint8 channels-last path gives the float result (rounded): no channel or axis mix-up."""
    rng = np.random.default_rng(3)
    small = rng.integers(0, 256, (2, 3, 12, 16), dtype=np.uint8)
    frames = torch.from_numpy(small).float()
    smooth = F.interpolate(frames, size=(60, 80), mode="bilinear", align_corners=False)
    smooth = smooth.round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()  # [T, H, W, 3]
    out, _ = GroupScale((30, 44))(smooth[None], 0)
    ref = F.interpolate(smooth.permute(0, 3, 1, 2).float(), size=(30, 44), mode="bilinear",
                        antialias=True, align_corners=False).permute(0, 2, 3, 1)
    assert out.dtype == torch.uint8 and out.shape == (1, 2, 30, 44, 3)
    assert (out[0].float() - ref).abs().max() <= 1.0


def test_train_pipeline_equals_pil_crop_resize_flip():
    """The whole train pipeline (window, one uint8 resize per clip, flip of the result) gives TSM's
    per-frame PIL crop + bilinear resize + mirror up to rounding (at most 2 levels, under 0.3 on
    average: both use fixed-point weights), for upscaled and downscaled crops."""
    from PIL import Image
    rng = np.random.default_rng(5)
    coarse = rng.integers(0, 256, (3, 4, 12, 16, 3), dtype=np.uint8)
    frames = np.stack([[np.asarray(Image.fromarray(f).resize((90, 68), Image.BICUBIC)) for f in clip]
                       for clip in coarse])   # [3 clips, 4 frames, 68, 90, 3], smooth like photos
    transform = build_transform("train", 56, 64)
    crop = transform.steps[0]
    for seed in range(8):
        out, _ = transform(frames, 0, np.random.default_rng(seed))
        draws = np.random.default_rng(seed)
        windows = [crop.window(68, 90, draws) for _ in range(3)]
        flips = draws.random(3) < 0.5
        for c, ((y, x, h, w), flip) in enumerate(zip(windows, flips)):
            for t in range(4):
                image = Image.fromarray(frames[c, t]).crop((x, y, x + w, y + h)).resize((56, 56), Image.BILINEAR)
                if flip:
                    image = image.transpose(Image.FLIP_LEFT_RIGHT)
                diff = np.abs(out[c, t].numpy().astype(int) - np.asarray(image).astype(int))
                assert diff.max() <= 2 and diff.mean() < 0.3, (seed, c, t, (h, w), flip)


# ---------------------------------------------------------------- one decision per clip

@pytest.mark.parametrize("transform", [
    GroupMultiScaleCrop(24),
    GroupRandomResizedCrop(24),
    GroupRandomCrop(24),
    GroupRandomHorizontalFlip("always"),
    build_transform("train", 24, 40),
    build_transform("train", 24, 40, train_aug="rrc"),
    build_transform("train", 24, 40, train_aug="scale_crop"),
])
def test_one_decision_per_clip(transform):
    clips, length = 6, 4
    frames = coords(clips, length, 48, 64, step=3)
    out, label = transform(frames, 5, np.random.default_rng(7))
    assert label == 5 and out.shape[:2] == (clips, length) and out.dtype == torch.uint8
    for c in range(clips):
        for t in range(length):
            # same crop/flip for every frame of the clip, and the frame's own content
            assert torch.equal(out[c, t, ..., :2], out[c, 0, ..., :2])
            assert (out[c, t, ..., 2] == 10 * t + c).all()
    # clips get their own decisions
    assert any(not torch.equal(out[c, 0, ..., :2], out[0, 0, ..., :2]) for c in range(1, clips))


def test_determinism_given_rng_and_numpy_torch_agree():
    frames = coords(2, 3, 48, 64, step=3)
    pipeline = build_transform("train", 24, 40)
    a, _ = pipeline(frames, 1, np.random.default_rng(11))
    b, _ = pipeline(torch.from_numpy(frames.copy()), 1, np.random.default_rng(11))
    assert torch.equal(a, b)
    outputs = {pipeline(frames, 1, np.random.default_rng(s))[0].numpy().tobytes() for s in range(8)}
    assert len(outputs) > 1


def test_pipelines_survive_pickling_for_spawned_workers():
    pipeline = build_transform("train", 24, 40, flip="map", flip_map=SS_V1_FLIP)
    copy = pickle.loads(pickle.dumps(pipeline))
    frames = coords(1, 2, 48, 64, step=3)
    assert repr(copy) == repr(pipeline)
    assert torch.equal(copy(frames, 2, np.random.default_rng(4))[0], pipeline(frames, 2, np.random.default_rng(4))[0])


def test_bad_frames_are_refused():
    with pytest.raises(ValueError, match="uint8"):
        GroupScale(16)(np.zeros((1, 2, 8, 8, 3), np.float32), 0)
    with pytest.raises(ValueError, match=r"\[C, T, H, W, 3\]"):
        GroupScale(16)(np.zeros((2, 8, 8, 3), np.uint8), 0)
    with pytest.raises(ValueError, match="scale them first"):
        GroupCenterCrop(32)(np.zeros((1, 2, 16, 40, 3), np.uint8), 0)


# ---------------------------------------------------------------- flips

def test_flip_always_mirrors_every_frame():
    frames = coords(1, 3, 16, 20)
    out, label = GroupRandomHorizontalFlip("always", p=1.0)(frames, 3, np.random.default_rng(0))
    assert label == 3 and torch.equal(out, torch.from_numpy(frames[:, :, :, ::-1].copy()))
    out, _ = GroupRandomHorizontalFlip("always", p=0.0)(frames, 3, np.random.default_rng(0))
    assert torch.equal(out, torch.from_numpy(frames))


def test_flip_map_swaps_left_right_classes_only():
    flip = GroupRandomHorizontalFlip("map", SS_V1_FLIP, p=1.0)
    frames = coords(2, 2, 16, 20)
    for label, flipped in [(2, 4), (4, 2), (30, 41), (41, 30), (52, 66), (66, 52), (0, 0), (3, 3), (173, 173)]:
        out, new_label = flip(frames, label, np.random.default_rng(0))
        assert new_label == flipped
        assert torch.equal(out, torch.from_numpy(frames[:, :, :, ::-1].copy()))
    out, new_label = GroupRandomHorizontalFlip("map", SS_V1_FLIP, p=0.0)(frames, 2, np.random.default_rng(0))
    assert new_label == 2 and torch.equal(out, torch.from_numpy(frames))


def test_flip_map_one_decision_for_all_clips_and_label_follows():
    flip = GroupRandomHorizontalFlip("map", SS_V1_FLIP)
    frames = coords(4, 2, 16, 20)
    outcomes = set()
    for seed in range(20):
        out, label = flip(frames, 2, np.random.default_rng(seed))
        mirrored = [bool(out[c, 0, 0, 0, 1] > out[c, 0, 0, -1, 1]) for c in range(4)]
        assert len(set(mirrored)) == 1
        assert label == (4 if mirrored[0] else 2)
        outcomes.add(mirrored[0])
    assert outcomes == {True, False}


def test_flip_never_and_jester_pipeline_never_mirror():
    frames = coords(1, 2, 48, 64, step=3)
    out, label = GroupRandomHorizontalFlip("never", p=1.0)(frames, 9, np.random.default_rng(0))
    assert label == 9 and torch.equal(out, torch.from_numpy(frames))

    def mirrored_count(pipeline):
        count = 0
        for seed in range(16):
            out, _ = pipeline(frames, 9, np.random.default_rng(seed))
            count += bool(out[0, 0, 12, 0, 1] > out[0, 0, 12, -1, 1])
        return count

    jester = build_transform("train", 24, 40, flip="never")
    assert "Flip" not in repr(jester)
    assert mirrored_count(jester) == 0
    assert mirrored_count(build_transform("train", 24, 40, flip="always")) > 0


def test_flip_settings_are_checked():
    with pytest.raises(ValueError, match="flip_map"):
        GroupRandomHorizontalFlip("map")
    with pytest.raises(ValueError, match="only used with policy 'map'"):
        GroupRandomHorizontalFlip("always", {1: 2})
    with pytest.raises(ValueError, match="both"):
        GroupRandomHorizontalFlip("map", {1: 2, 3: 1})
    with pytest.raises(ValueError, match="policy"):
        GroupRandomHorizontalFlip("sometimes")


# ---------------------------------------------------------------- scale, centre, three and ten crops

def test_scale_keeps_aspect_on_the_short_side():
    assert GroupScale(32).output_size(48, 64) == (32, 42)
    assert GroupScale(32).output_size(64, 48) == (42, 32)
    assert GroupScale((20, 30)).output_size(48, 64) == (20, 30)
    frames = np.full((2, 3, 48, 64, 3), (10, 200, 90), np.uint8)
    out, _ = GroupScale(32)(frames, 0)
    assert out.shape == (2, 3, 32, 42, 3)
    assert (out == torch.tensor([10, 200, 90], dtype=torch.uint8)).all()


def test_centre_and_random_crop_positions():
    frames = coords(1, 2, 40, 60)
    out, _ = GroupCenterCrop(20)(frames, 0)
    assert out.shape == (1, 2, 20, 20, 3) and top_left(out[0]) == (10, 20)
    out, _ = GroupCenterCrop((10, 30))(frames, 0)
    assert top_left(out[0]) == (15, 15)
    rng = np.random.default_rng(2)
    corners = set()
    for _ in range(200):
        out, _ = GroupRandomCrop(20)(frames, 0, rng)
        y, x = top_left(out[0])
        assert 0 <= y <= 20 and 0 <= x <= 40
        assert torch.equal(out[0], torch.from_numpy(frames[0, :, y:y + 20, x:x + 20]))
        corners.add((y, x))
    assert len(corners) > 50


def test_three_crop_full_short_side():
    out, _ = GroupThreeCrop()(coords(2, 2, 48, 80), 0)
    assert out.shape == (6, 2, 48, 48, 3)
    assert [top_left(v) for v in out[:3]] == [(0, 0), (0, 16), (0, 32)]   # left, centre, right
    assert [int(v[0, 0, 0, 2]) for v in out] == [0, 0, 0, 1, 1, 1]        # clip 0's views, then clip 1's
    out, _ = GroupThreeCrop()(coords(1, 2, 80, 48), 0)
    assert [top_left(v) for v in out] == [(0, 0), (16, 0), (32, 0)]        # top, centre, bottom
    out, _ = GroupThreeCrop(40)(coords(1, 2, 48, 80), 0)
    assert [top_left(v) for v in out] == [(4, 0), (4, 20), (4, 40)]


def test_ten_crop_corners_centre_and_mirrors():
    frames = coords(2, 2, 48, 64)
    out, _ = GroupTenCrop(32)(frames, 0)
    assert out.shape == (20, 2, 32, 32, 3)
    expected = [(0, 0), (0, 32), (16, 0), (16, 32), (8, 16)]
    for c in range(2):
        views = out[10 * c:10 * (c + 1)]
        assert [top_left(v) for v in views[:5]] == expected
        assert torch.equal(views[5:], views[:5].flip(-2))
        assert (views[..., 2] == torch.tensor([10 * t + c for t in range(2)], dtype=torch.uint8)[:, None, None]).all()
    out, _ = GroupTenCrop(32, flip=False)(frames, 0)
    assert out.shape == (10, 2, 32, 32, 3) and [top_left(v) for v in out[:5]] == expected


def test_random_resized_crop_area_ratio_and_fallback():
    crop = GroupRandomResizedCrop(16)
    rng = np.random.default_rng(5)
    for _ in range(200):
        y, x, h, w = crop.window(60, 80, rng)
        assert 0 <= y <= 60 - h and 0 <= x <= 80 - w
        assert 0.08 * 0.7 <= h * w / 4800 <= 1.0
        assert 3 / 4 * 0.8 <= w / h <= 4 / 3 * 1.25
    # no draw can fit: the whole frame, cut to the widest allowed ratio and centred
    assert GroupRandomResizedCrop(16, area=(2, 3)).window(48, 200, rng) == (0, 68, 48, 64)
    out, _ = crop(coords(2, 2, 60, 80), 0, rng)
    assert out.shape == (2, 2, 16, 16, 3)


# ---------------------------------------------------------------- pipelines and reprs

def test_reprs():
    assert repr(GroupMultiScaleCrop(224)) == \
        "GroupMultiScaleCrop(size=224, scales=(1, 0.875, 0.75, 0.66), max_distort=1, fix_crop=13)"
    assert repr(GroupMultiScaleCrop(224, more_fix_crop=False)).endswith("fix_crop=5)")
    assert repr(GroupMultiScaleCrop(224, fix_crop=False)).endswith("fix_crop=False)")
    assert repr(GroupRandomHorizontalFlip("map", {2: 4})) == \
        "GroupRandomHorizontalFlip(policy='map', flip_map={2: 4, 4: 2}, p=0.5)"
    assert repr(GroupScale(256)) == "GroupScale(size=256)"
    assert repr(GroupCenterCrop(224)) == "GroupCenterCrop(size=224)"
    assert repr(GroupThreeCrop()) == "GroupThreeCrop(size=short side)"
    assert repr(GroupTenCrop(224)) == "GroupTenCrop(size=224, flip=True)"
    assert repr(GroupRandomCrop(112)) == "GroupRandomCrop(size=112)"
    assert repr(GroupRandomResizedCrop(224)) == \
        "GroupRandomResizedCrop(size=224, area=(0.08, 1.0), ratio=(0.75, 1.3333))"
    assert repr(Compose([GroupScale(256), GroupCenterCrop(224)])) == \
        "Compose(\n    GroupScale(size=256),\n    GroupCenterCrop(size=224),\n)"


def test_build_transform_pipelines():
    train = build_transform("train", 224, 256, flip="map", flip_map=SS_V1_FLIP)
    assert [type(s).__name__ for s in train.steps] == ["GroupMultiScaleCrop", "GroupRandomHorizontalFlip"]
    assert train.steps[1].flip_map[4] == 2
    flip = "GroupRandomHorizontalFlip(policy='always', p=0.5)"
    for train_aug, crop in [("multiscale", ["GroupMultiScaleCrop(size=112, scales=(1, 0.875, 0.75, 0.66), "
                                            "max_distort=1, fix_crop=13)"]),
                            ("rrc", ["GroupRandomResizedCrop(size=112, area=(0.08, 1.0), ratio=(0.75, 1.3333))"]),
                            ("scale_crop", ["GroupScale(size=128)", "GroupRandomCrop(size=112)"]),
                            ("center", ["GroupScale(size=128)", "GroupCenterCrop(size=112)"])]:
        steps = build_transform("train", 112, 128, train_aug=train_aug).steps
        assert [repr(s) for s in steps] == crop + [flip]
    assert [repr(s) for s in build_transform("val", 224, 256).steps] == [
        "GroupScale(size=256)", "GroupCenterCrop(size=224)"]
    assert repr(build_transform("test", 224, 256, test_crops=3).steps[1]) == "GroupThreeCrop(size=224)"
    assert repr(build_transform("test", 224, 256, test_crops=3, full_res=True).steps[1]) == \
        "GroupThreeCrop(size=short side)"
    assert repr(build_transform("test", 224, 256, full_res=True).steps[1]) == "GroupCenterCrop(size=256)"


@pytest.mark.parametrize("crops,full_res,views,side", [(1, False, 1, 24), (1, True, 1, 32), (3, False, 3, 24),
                                                       (3, True, 3, 32), (5, False, 5, 24), (10, False, 10, 24)])
def test_test_views_are_clips_times_crops(crops, full_res, views, side):
    pipeline = build_transform("test", 24, 32, test_crops=crops, full_res=full_res)
    out, label = pipeline(coords(2, 3, 48, 64, step=3), 4, np.random.default_rng(0))
    assert out.shape == (2 * views, 3, side, side, 3) and out.is_contiguous() and label == 4


def test_build_transform_refuses_bad_settings():
    with pytest.raises(ValueError, match="mode"):
        build_transform("eval", 224, 256)
    with pytest.raises(ValueError, match="5 crops"):
        build_transform("test", 224, 256, test_crops=10, flip="map", flip_map=SS_V1_FLIP)
    with pytest.raises(ValueError, match="test_crops"):
        build_transform("test", 224, 256, test_crops=4)
    with pytest.raises(ValueError, match="full_res"):
        build_transform("test", 112, (128, 171), full_res=True)
    with pytest.raises(ValueError, match="train_aug must be one of"):
        build_transform("train", 112, 128, train_aug="tencrop")


def test_centre_training_view_keeps_the_synthetic_object_whole():
    """The synthetic benchmark's training crop (the centre view, 64 of 72) keeps all of an
    appearance object placed as far off centre as the generator places one; TSN's multi-scale
    crop of the same frame cuts much of it away in some draws (why synthetic has its own default)."""
    from tools.synthetic import DEFAULT_SIZE
    h, w = DEFAULT_SIZE
    radius = 0.3 * min(h, w)  # the smallest appearance object, a quarter of the free range off centre
    cy, cx = h / 2 + 0.25 * (h - 2 * radius), w / 2 + 0.25 * (w - 2 * radius)
    yy, xx = np.mgrid[0:h, 0:w]
    mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2
    frames = np.zeros((1, 1, h, w, 3), np.uint8)
    frames[0, 0][mask] = 255
    centre = build_transform("train", 64, 72, train_aug="center")
    out = centre(frames, 0, np.random.default_rng(0))[0].float().mean(-1) / 255
    input_pixels_per_output = (min(h, w) / 72) ** 2
    assert out.sum().item() * input_pixels_per_output / mask.sum() > 0.99
    multiscale = GroupMultiScaleCrop(64)
    kept = []
    for seed in range(200):
        y, x, ch, cw = multiscale.window(h, w, np.random.default_rng(seed))
        kept.append(mask[y:y + ch, x:x + cw].sum() / mask.sum())
    assert min(kept) < 0.7


# ---------------------------------------------------------------- DeviceNormalize

def test_device_normalize_imagenet_numerics_and_layouts():
    rng = np.random.default_rng(0)
    frames = torch.from_numpy(rng.integers(0, 256, (2, 3, 4, 5, 6, 3), dtype=np.uint8))
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    ref = (frames.double() / 255 - torch.tensor(mean, dtype=torch.float64)) / torch.tensor(std, dtype=torch.float64)
    out = DeviceNormalize(mean, std)(frames)
    assert out.dtype == torch.float32 and out.shape == (2, 3, 4, 3, 5, 6) and out.is_contiguous()
    assert torch.allclose(out.double(), ref.permute(0, 1, 2, 5, 3, 4), atol=1e-5)
    clip = DeviceNormalize(mean, std, layout="clip")(frames)
    assert clip.shape == (2, 3, 3, 4, 5, 6) and clip.is_contiguous()
    assert torch.allclose(clip.double(), ref.permute(0, 1, 5, 2, 3, 4), atol=1e-5)
    view = DeviceNormalize(mean, std, layout="clip", channels_last=True)(frames)
    assert torch.equal(view, clip) and not view.is_contiguous()
    assert view.stride()[2] == 1   # memory stays [..., h, w, 3]


def test_device_normalize_values_and_memory_layout():
    """Exactly float32(x) - shift, then x inv_scale, in every layout (the values trained models saw),
    contiguous in the output layout unless channels_last keeps the frames' memory."""
    frames = torch.randint(0, 256, (2, 1, 3, 5, 6, 3), dtype=torch.uint8)
    for kw in (dict(), dict(layout="clip"), dict(layout="clip", channels_last=True), dict(bgr=True, value_scale=255)):
        norm = DeviceNormalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), **kw)
        x = frames.flip(-1) if norm.bgr else frames
        x = x.permute(0, 1, 2, 5, 3, 4) if norm.layout == "frames" else x.permute(0, 1, 5, 2, 3, 4)
        ref = (x.to(torch.float32) - norm.shift) * norm.inv_scale
        out = norm(frames)
        assert torch.equal(out, ref), kw
        assert out.is_contiguous() != norm.channels_last, kw


def test_device_normalize_bninception_bgr_0_255():
    frames = torch.zeros(1, 1, 2, 2, 2, 3, dtype=torch.uint8)
    frames[..., 0], frames[..., 1], frames[..., 2] = 10, 20, 30      # R, G, B
    norm = DeviceNormalize((104, 117, 128), (1, 1, 1), bgr=True, value_scale=255)
    out = norm(frames)
    assert out.shape == (1, 1, 2, 3, 2, 2)
    assert out[0, 0, :, 0].eq(30 - 104).all()   # B
    assert out[0, 0, :, 1].eq(20 - 117).all()   # G
    assert out[0, 0, :, 2].eq(10 - 128).all()   # R
    spec = SimpleNamespace(mean=(104, 117, 128), std=(1, 1, 1), bgr=True, value_scale=255, layout="frames")
    assert torch.equal(DeviceNormalize.from_spec(spec)(frames), out)
    assert norm.state_dict() == {}   # constants are not checkpoint content
    assert repr(norm) == ("DeviceNormalize(mean=(104.0, 117.0, 128.0), std=(1.0, 1.0, 1.0), bgr=True, "
                          "value_scale=255, layout='frames', channels_last=False)")


def test_device_normalize_refuses_bad_input():
    norm = DeviceNormalize((0.5,) * 3, (0.5,) * 3)
    with pytest.raises(ValueError, match="uint8"):
        norm(torch.zeros(1, 1, 2, 4, 4, 3))
    with pytest.raises(ValueError, match=r"\[B, V, T, h, w, 3\]"):
        norm(torch.zeros(1, 2, 4, 4, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="layout"):
        DeviceNormalize((0.5,) * 3, (0.5,) * 3, layout="nchw")
