"""RawFrameReader's JPEG decoders: one preallocated output, DCT-domain scaled decoding, strictness."""
import numpy as np
import pytest

import ops.dataset as dataset
from ops.dataset import JPEG_DECODERS, BadSampleError, RawFrameReader, make_reader
from ops.transforms import build_transform
from opts import JPEG_DECODERS as JPEG_DECODER_OPTIONS
from tests.videogen import frame_indices_of, make_frames, write_frame_folder

H, W = 64, 80


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_frame_folder(str(tmp_path_factory.mktemp("jpeg") / "v"), make_frames(12, H, W))


def test_every_option_is_a_decoder():
    assert tuple(JPEG_DECODERS) == JPEG_DECODER_OPTIONS
    assert RawFrameReader().decoder == "simplejpeg"
    assert RawFrameReader("img_{:05d}.png").decoder == "pil"   # not JPEG
    with pytest.raises(ValueError, match="decoder must be one of"):
        RawFrameReader(decoder="opencv")


def test_frames_are_decoded_into_one_preallocated_array(folder, monkeypatch):
    outs, decode = [], JPEG_DECODERS["simplejpeg"]

    def spy(data, min_side=None, out=None):
        outs.append(out)
        return decode(data, min_side, out)

    monkeypatch.setitem(JPEG_DECODERS, "simplejpeg", spy)
    frames = RawFrameReader().read(folder, [1, 4, 9])
    assert frame_indices_of(frames) == [1, 4, 9]
    assert outs[0] is None and all(np.shares_memory(out, frames) for out in outs[1:])
    for slot, out in enumerate(outs[1:], 1):   # slot i of the result is where frame i was decoded
        assert out.__array_interface__["data"][0] == frames[slot].__array_interface__["data"][0]
    repeated = RawFrameReader().read(folder, [4, 1, 4])
    assert frame_indices_of(repeated) == [4, 1, 4] and len(outs) == 5   # two decodes for three frames


@pytest.mark.parametrize("decoder,scales", [
    ("simplejpeg", ((32, (32, 40)), (20, (24, 30)), (16, (16, 20)), (33, (H, W)), (8, (8, 10)))),   # any M/8 <= 1/2
    ("pil", ((32, (32, 40)), (20, (32, 40)), (16, (16, 20)), (33, (H, W)), (8, (8, 10)))),   # 1/2, 1/4, 1/8
])
def test_scaled_decoding_keeps_the_short_side_at_least_min_side(folder, decoder, scales):
    full = RawFrameReader(decoder=decoder).read(folder, [3])
    assert full.shape == (1, H, W, 3)
    for min_side, shape in scales:
        frames = RawFrameReader(decoder=decoder, min_side=min_side).read(folder, [3, 5])
        assert frames.shape == (2,) + shape + (3,), (min_side, decoder)
        assert frame_indices_of(frames) == [3, 5]


def test_scaled_decoders_agree_and_stay_close_to_a_full_decode_then_resize(folder):
    a = RawFrameReader(decoder="simplejpeg", min_side=32).read(folder, [7])
    b = RawFrameReader(decoder="pil", min_side=32).read(folder, [7])
    assert np.array_equal(a, b)
    full = RawFrameReader().read(folder, [7])
    resized = build_transform("val", 32, 32)(full[None], 0, None)[0][0].numpy()
    direct = build_transform("val", 32, 32)(a[None], 0, None)[0][0].numpy()
    assert np.abs(resized.astype(int) - direct.astype(int)).mean() < 3


@pytest.mark.parametrize("decoder", ["torchvision", "torchcodec"])
def test_decoders_without_scaling_ignore_min_side(folder, decoder):
    reader = RawFrameReader(decoder=decoder, min_side=16)
    assert reader.min_side is None and reader.read(folder, [0]).shape == (1, H, W, 3)


def test_simplejpeg_is_strict_about_corrupt_data(folder, tmp_path):
    data = bytearray(open(f"{folder}/img_00002.jpg", "rb").read())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)   # a zeroed run inside the entropy-coded data, ends intact
    bad = write_frame_folder(str(tmp_path / "bad"), make_frames(1, H, W))
    open(f"{bad}/img_00001.jpg", "wb").write(bytes(data))
    with pytest.raises(BadSampleError, match="frame 0 .*cannot decode img_00001.jpg"):
        RawFrameReader().read(bad, [0])


def test_transform_tells_the_reader_its_first_scale():
    assert build_transform("train", 112, 128, train_aug="scale_crop").min_side == 128
    assert build_transform("val", 112, 128).min_side == 128
    assert build_transform("test", 112, (128, 160)).min_side is None
    assert build_transform("train", 224, 256).min_side is None   # multi-scale crop: full frames
    assert make_reader("rawframes", jpeg_decoder="pil", min_side=128).min_side == 128
    assert dataset.SCALED_JPEG_DECODERS == ("simplejpeg", "pil")
