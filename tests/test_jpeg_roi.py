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


@pytest.mark.parametrize("min_side", [128, 100, 64, 40, 30])
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


def test_writes_into_out():
    data = encode(textured(64, 80, 4))
    out = np.zeros((5, 3, 20, 30, 3), np.uint8)
    got = jpeg_roi.decode_window(data, (64, 80), (10, 20, 20, 30), out=out[0, 1])
    assert np.shares_memory(got, out)
    np.testing.assert_array_equal(out[0, 1], whole(data)[10:30, 20:50])


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
