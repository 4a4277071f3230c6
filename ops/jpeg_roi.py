"""Region-of-interest JPEG decoding: decode only the window a clip's crop will keep.

A training crop keeps about half of a 340x256 frame (TSN's multi-scale crop: 168-256 px sides), so
decoding just that window skips about half of the IDCT and colour conversion (DALI fuses its
decoder with the random crop for the same reason). ops/jpeg_roi.c does it with libjpeg-turbo's
jpeg_crop_scanline / jpeg_skip_scanlines; the pixels equal a whole-frame decode sliced to the
window, bit for bit (tests/test_jpeg_roi.py), at full size and at the DCT-domain scales that
scaled decoding uses. The C file is compiled on first use (`make install` does it ahead) against
the system's libjpeg-turbo (Debian: libjpeg-dev); without a compiler or the library the frames are
decoded whole and cropped after, with one warning.
"""
import ctypes
import logging
import os
import subprocess
import tempfile

import numpy as np

logger = logging.getLogger(__name__)

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jpeg_roi.c")
LIBRARY = os.path.join(os.path.dirname(SOURCE), "_jpeg_roi.so")
_MESSAGE_SIZE = 200   # libjpeg's JMSG_LENGTH_MAX

_library = None       # the loaded library, False once it could not be had


class RoiDecodeError(Exception):
    """A frame libjpeg-turbo cannot decode (corrupt data, an unsupported format)."""


class FrameSizeError(Exception):
    """A frame that decodes to another size than the one given; .size is its (height, width)."""

    def __init__(self, size):
        super().__init__(f"the frame decodes to {size[0]}x{size[1]}")
        self.size = size


def build(compiler="cc"):
    """Compile jpeg_roi.c into LIBRARY (atomically: parallel workers may race); raises
    RuntimeError with the compiler's first error line."""
    fd, tmp = tempfile.mkstemp(prefix="_jpeg_roi.", suffix=".tmp", dir=os.path.dirname(LIBRARY))
    os.close(fd)
    try:
        done = subprocess.run([compiler, "-O2", "-shared", "-fPIC", SOURCE, "-o", tmp, "-ljpeg"],
                              capture_output=True, text=True)
        if done.returncode:
            first = next((line for line in done.stderr.splitlines() if "error" in line), done.stderr.strip())
            raise RuntimeError(f"{compiler} failed: {first}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, LIBRARY)
    except OSError as e:
        raise RuntimeError(f"cannot run {compiler}: {e}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load():
    """The compiled library (built first when missing or older than jpeg_roi.c), or None after
    one warning when it cannot be built."""
    global _library
    if _library is None:
        try:
            if not os.path.exists(LIBRARY) or os.path.getmtime(LIBRARY) < os.path.getmtime(SOURCE):
                build()
            lib = ctypes.CDLL(LIBRARY)
        except (RuntimeError, OSError) as e:
            logger.warning("region JPEG decoding unavailable (%s): frames are decoded whole, then cropped "
                           "(same pixels, slower); `make install` sets it up", str(e).splitlines()[0])
            _library = False
            return None
        lib.jpeg_roi_size.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_int,
                                      ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int), ctypes.c_char_p]
        lib.jpeg_roi_decode.argtypes = [ctypes.c_char_p, ctypes.c_ulong] + [ctypes.c_int] * 7 + \
            [ctypes.c_void_p, ctypes.c_char_p]
        _library = lib
    return _library or None


def available():
    return load() is not None


def decoded_size(data, min_side=None):
    """(height, width) the JPEG bytes decode to at min_side's DCT scale (simplejpeg's choice: the
    smallest M/8 <= 1/2 keeping both sides >= min_side, else full size)."""
    lib, message = load(), ctypes.create_string_buffer(_MESSAGE_SIZE)
    height, width = ctypes.c_int(), ctypes.c_int()
    if lib.jpeg_roi_size(data, len(data), min_side or 0, ctypes.byref(height), ctypes.byref(width), message):
        raise RoiDecodeError(message.value.decode(errors="replace"))
    return height.value, width.value


def decode_window(data, size, window, min_side=None, out=None):
    """uint8 [h, w, 3] RGB: the window (y, x, h, w) of a JPEG that decodes to size (height, width)
    at min_side's scale, equal to the whole frame decoded (simplejpeg, same min_side) and sliced.
    It is a view of columns x..x+w-1 of `out`, a C-contiguous uint8 [h, width, 3] (allocated when
    None) whose rows libjpeg writes in place. RoiDecodeError when the frame is corrupt,
    FrameSizeError when it decodes to another size, ValueError for a window outside the frame."""
    y, x, h, w = (int(v) for v in window)
    if out is None:
        out = np.empty((h, size[1], 3), np.uint8)
    elif out.shape != (h, size[1], 3) or out.dtype != np.uint8 or not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous uint8 {(h, size[1], 3)}, got {out.dtype} {out.shape}")
    message = ctypes.create_string_buffer(_MESSAGE_SIZE)
    code = load().jpeg_roi_decode(data, len(data), min_side or 0, size[0], size[1], y, x, h, w,
                                  out.ctypes.data, message)
    if code == -2:
        raise FrameSizeError(tuple(int(v) for v in message.value.split(b"x")))
    if code == -3:
        raise ValueError(message.value.decode(errors="replace"))
    if code:
        raise RoiDecodeError(message.value.decode(errors="replace"))
    return out[:, x:x + w]
