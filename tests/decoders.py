"""The video decoders the reader and dataset tests run on: every one the project supports, the
optional torchcodec skipped (with the reason) where its package or FFmpeg's libraries are missing."""
import pytest

from ops.dataset import READERS, check_torchcodec


def _torchcodec_missing():
    try:
        check_torchcodec()
        return None
    except ImportError as e:
        return str(e)


MISSING = _torchcodec_missing()
TORCHCODEC = pytest.param("torchcodec", marks=pytest.mark.skipif(MISSING is not None,
                                                                 reason=f"optional decoder missing: {MISSING}"))
DECODER_PARAMS = [TORCHCODEC if name == "torchcodec" else name for name in sorted(READERS)]
