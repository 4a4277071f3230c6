"""Region-of-interest JPEG decoding (ops/jpeg_roi.py) equals a whole-frame decode sliced, bit for bit."""
import io

import numpy as np
import pytest
import simplejpeg
from PIL import Image

from ops import jpeg_roi

pytestmark = pytest.mark.skipif(not jpeg_roi.available(), reason="ops/jpeg_roi.c could not be built here")


def textured(height, width, seed):
    """Smooth colour gradients plus noise: chroma that varies across every block edge."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1), (xx + yy) % 256], -1)
    return np.clip(base + rng.integers(-40, 41, base.shape), 0, 255).astype(np.uint8)


def encode(pixels, **options):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90, **options)
    return buffer.getvalue()


def whole(data, min_side=None):
    side = min_side or 0
    return simplejpeg.decode_jpeg(data, colorspace="RGB", min_height=side, min_width=side,
                                  min_factor=2 if side else 1)


def random_windows(rng, height, width, count):
    for _ in range(count):
        h, w = int(rng.integers(1, height + 1)), int(rng.integers(1, width + 1))
        yield int(rng.integers(height - h + 1)), int(rng.integers(width - w + 1)), h, w


FORMATS = {
    "4:2:0": dict(subsampling=2),
    "4:2:2": dict(subsampling=1),
    "4:4:4": dict(subsampling=0),
    "progressive 4:2:0": dict(subsampling=2, progressive=True),
    "restart markers": dict(subsampling=2, restart_marker_rows=1),
}


@pytest.mark.parametrize("name", sorted(FORMATS))
@pytest.mark.parametrize("height, width", [(256, 340), (61, 93)])
def test_window_equals_whole_decode_sliced(name, height, width):
    data = encode(textured(height, width, 0), **FORMATS[name])
    full = whole(data)
    assert jpeg_roi.decoded_size(data) == full.shape[:2]
    rng = np.random.default_rng(1)
    edges = [(0, 0, height, width), (0, 16, height, 16), (8, 15, 9, 17), (0, width - 1, height, 1)]
    for y, x, h, w in edges + list(random_windows(rng, height, width, 60)):
        got = jpeg_roi.decode_window(data, full.shape[:2], (y, x, h, w))
        np.testing.assert_array_equal(got, full[y:y + h, x:x + w], err_msg=f"{name} window {(y, x, h, w)}")


def test_grayscale_decodes_to_rgb_like_simplejpeg():
    data = encode(textured(48, 70, 2)[..., 0])
    full = whole(data)
    got = jpeg_roi.decode_window(data, full.shape[:2], (5, 9, 30, 41))
    np.testing.assert_array_equal(got, full[5:35, 9:50])


@pytest.mark.parametrize("min_side", [128, 90, 64, 40, 30])   # scales 1/2, 3/8, 1/4, 1/4, 1/8
def test_scaled_window_equals_scaled_decode_sliced(min_side):
    """The DCT scale is simplejpeg's choice for the same min_side, and the window's pixels its pixels."""
    data = encode(textured(256, 340, 3))
    full = whole(data, min_side)
    assert jpeg_roi.decoded_size(data, min_side) == full.shape[:2]
    rng = np.random.default_rng(min_side)
    for window in random_windows(rng, *full.shape[:2], 30):
        y, x, h, w = window
        got = jpeg_roi.decode_window(data, full.shape[:2], window, min_side)
        np.testing.assert_array_equal(got, full[y:y + h, x:x + w], err_msg=f"min_side {min_side} window {window}")


def test_writes_into_out_in_place():
    data = encode(textured(64, 80, 4))
    out = np.zeros((5, 3, 20, 80, 3), np.uint8)
    got = jpeg_roi.decode_window(data, (64, 80), (10, 20, 20, 30), out=out[0, 1])
    assert got.shape == (20, 30, 3) and np.shares_memory(got, out)
    np.testing.assert_array_equal(out[0, 1, :, 20:50], whole(data)[10:30, 20:50])
    assert not out[0, 0].any() and not out[0, 2].any() and not out[1:].any()   # nothing written outside
    with pytest.raises(ValueError, match="C-contiguous uint8"):
        jpeg_roi.decode_window(data, (64, 80), (10, 20, 20, 30), out=out[0, 1, :, :30])


def test_errors():
    data = encode(textured(64, 80, 5))
    with pytest.raises(jpeg_roi.FrameSizeError) as info:
        jpeg_roi.decode_window(data, (64, 81), (0, 0, 8, 8))
    assert info.value.size == (64, 80)
    with pytest.raises(ValueError, match="outside"):
        jpeg_roi.decode_window(data, (64, 80), (60, 0, 8, 8))
    corrupt = bytearray(data)
    corrupt[len(data) // 2:len(data) // 2 + 64] = bytes(64)   # the rest decodes: caught at the end
    for window in [(0, 0, 64, 80), (0, 0, 20, 20), (40, 40, 20, 20)]:   # as strict as simplejpeg, anywhere
        with pytest.raises(jpeg_roi.RoiDecodeError, match="Corrupt JPEG data"):
            jpeg_roi.decode_window(bytes(corrupt), (64, 80), window)
    with pytest.raises(ValueError, match="Corrupt JPEG data"):
        whole(bytes(corrupt))
    with pytest.raises(jpeg_roi.RoiDecodeError, match="JPEG"):
        jpeg_roi.decoded_size(b"\xff\xd8 not a jpeg")


# ---- the reader and the dataset: a window decoded alone gives the items of whole frames ----------

from ops.dataset import BadSampleError, RawFrameReader, VideoDataset, VideoList   # noqa: E402
from ops.sampling import TSNSampler   # noqa: E402
from ops.transforms import Compose, GroupScale, GroupThreeCrop, build_transform   # noqa: E402


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Three folders of 6 textured 4:2:0 frames of 64x80, and their list."""
    root = tmp_path_factory.mktemp("roi")
    for v in range(3):
        folder = root / f"v{v}"
        folder.mkdir()
        for t in range(6):
            (folder / f"img_{t + 1:05d}.jpg").write_bytes(encode(textured(64, 80, 10 * v + t)))
    (root / "list.txt").write_text("".join(f"v{v} 6 {v}\n" for v in range(3)))
    return root


PIPELINES = {
    "multiscale": (build_transform("train", 48, 64), None),
    "rrc": (build_transform("train", 48, 64, train_aug="rrc"), None),
    "scale_crop, scaled decode": (build_transform("train", 28, 32, train_aug="scale_crop"), 32),
    "center crop after a no-op scale": (build_transform("train", 56, 64, train_aug="center"), None),
    "val, scaled decode": (build_transform("val", 28, 32), 32),
    "test 1 crop": (build_transform("test", 48, 64), None),
}


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_dataset_items_equal_whole_frame_decoding(videos, name, monkeypatch):
    transform, min_side = PIPELINES[name]
    calls = []
    decode_window = jpeg_roi.decode_window
    monkeypatch.setattr(jpeg_roi, "decode_window", lambda *a, **k: calls.append(a[2]) or decode_window(*a, **k))

    def dataset(roi):
        reader = RawFrameReader(min_side=min_side, roi=roi)
        assert reader.roi == roi and f"roi={roi}" in repr(reader)
        return VideoDataset(VideoList(str(videos / "list.txt"), str(videos)), reader,
                            TSNSampler(3, mode="train"), transform, seed=4)

    whole, roi = dataset(False), dataset(True)
    for epoch in range(3):
        for i in range(3):
            a, b = whole[(epoch, i)], roi[(epoch, i)]
            np.testing.assert_array_equal(a[0].numpy(), b[0].numpy(), err_msg=f"{name}, epoch {epoch}, item {i}")
            assert a[1:] == b[1:]
    assert len(calls) == 3 * 3 * 3 and all(w != (0, 0, 64, 80) for w in calls)   # windows, decoded alone


def test_whole_frames_when_the_first_step_is_no_single_crop(videos, monkeypatch):
    monkeypatch.setattr(jpeg_roi, "decode_window", None)   # any call fails
    reader = RawFrameReader()
    for transform, clips in [(build_transform("test", 48, 64, test_crops=3), 1),   # three crops
                             (build_transform("val", 48, 56), 1),                  # a real rescale
                             (build_transform("train", 48, 64), 2)]:               # two clips, two windows
        ds = VideoDataset(VideoList(str(videos / "list.txt"), str(videos)), reader,
                          TSNSampler(3, mode="test", num_clips=clips), transform)
        assert ds[0][0].shape[0] == clips * (3 if isinstance(transform.steps[1], GroupThreeCrop) else 1)


def test_crop_window_draws_what_the_pipeline_draws():
    frames = np.stack([textured(64, 80, t) for t in range(2)])[None]
    pipeline = build_transform("train", 48, 64)
    cut = pipeline.crop_window(64, 80, np.random.default_rng(7))
    assert cut.step == 0
    window = frames[:, :, cut.y:cut.y + cut.h, cut.x:cut.x + cut.w]
    a = pipeline(frames, 1, np.random.default_rng(7))[0]
    rng = np.random.default_rng(7)
    b = pipeline(window, 1, rng, pipeline.crop_window(64, 80, rng))[0]
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert Compose([GroupScale(32)]).crop_window(64, 80, rng) is None
    assert build_transform("val", 48, 64).crop_window(64, 80, rng) == (1, 8, 16, 48, 48)
    assert build_transform("val", 48, 56).crop_window(64, 80, rng) is None   # GroupScale resizes first


def test_bad_frames_in_the_window_path(tmp_path):
    folder = tmp_path / "v"
    folder.mkdir()
    for t in range(4):
        (folder / f"img_{t + 1:05d}.jpg").write_bytes(encode(textured(64, 80 if t != 2 else 88, t)))
    (folder / "img_00004.jpg").write_bytes(b"")
    reader, crop = RawFrameReader(), lambda height, width: (4, 4, 16, 16)
    assert reader.read(str(folder), [0, 1], crop).shape == (2, 16, 16, 3)
    with pytest.raises(BadSampleError, match=r"frame 2 .*frame size \(64, 88\) differs from frame 0's \(64, 80\)"):
        reader.read(str(folder), [0, 2], crop)
    with pytest.raises(BadSampleError, match=r"frame 3 .*img_00004.jpg: empty file"):
        reader.read(str(folder), [0, 3], crop)
    (folder / "img_00002.jpg").write_bytes(b"\xff\xd8" + bytes(100) + b"\xff\xd9")
    with pytest.raises(BadSampleError, match=r"frame 1 .*cannot decode img_00002.jpg"):
        reader.read(str(folder), [1], crop)
    with pytest.raises(BadSampleError, match=r"frame 1 .*cannot decode img_00002.jpg"):
        reader.read(str(folder), [0, 1], crop)


def test_roi_only_with_simplejpeg_on_the_cpu():
    assert RawFrameReader().roi is True
    assert RawFrameReader(decoder="pil").roi is False and RawFrameReader(roi=False).roi is False
    assert RawFrameReader("img_{:05d}.png").roi is False


def test_unbuildable_library_falls_back_with_one_warning(monkeypatch, caplog):
    monkeypatch.setattr(jpeg_roi, "_library", None)
    monkeypatch.setattr(jpeg_roi, "LIBRARY", "/nonexistent/dir/_jpeg_roi.so")
    with caplog.at_level("WARNING"):
        assert not jpeg_roi.available() and not jpeg_roi.available()
        assert RawFrameReader().roi is False
    assert len(caplog.records) == 1 and "decoded whole" in caplog.records[0].getMessage()
