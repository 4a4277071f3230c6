"""Every video reader returns exactly the frames of a decode from the start, on every container,
and names a cut-off or undecodable file."""
import os

import av
import numpy as np
import pytest

from ops.dataset import (READERS, BadSampleError, DecordReader, PyAVReader, TorchCodecReader, avi_reorders_frames,
                         container_truncation, make_reader)
from opts import VIDEO_DECODERS
from tests.decoders import DECODER_PARAMS
from tests.videogen import frame_indices_of, make_frames, truncate_file, unknown_size_segment, write_video

H, W, N = 32, 40, 40  # decord 0.6 mis-converts some widths (16, 24, 48, 72); 40 is safe

# name -> (file name, write_video keywords): every container, B-frames, timestamps not from 0
VIDEOS = {
    "mp4": ("v.mp4", {}),
    "mp4 b-frames, from 3": ("vb.mp4", {"bframes": 2, "first_pts": 3}),
    "avi": ("v.avi", {"codec": "mpeg4"}),
    "avi b-frames": ("vb.avi", {"codec": "mpeg4", "bframes": 2}),   # like real Xvid clips: times from 1
    "mkv from 5": ("v.mkv", {"bframes": 2, "first_pts": 5}),
    "webm from 4": ("v.webm", {"codec": "libvpx", "first_pts": 4}),
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("containers")
    frames = make_frames(N, H, W)
    return {name: write_video(str(root / file), frames, gop_size=10, **kw) for name, (file, kw) in VIDEOS.items()}


def decode_all(path):
    with av.open(path) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


@pytest.mark.parametrize("decoder", DECODER_PARAMS)
@pytest.mark.parametrize("name", sorted(VIDEOS))
def test_readers_return_the_frames_of_a_sequential_decode(videos, decoder, name):
    path = videos[name]
    truth = decode_all(path)
    assert frame_indices_of(truth) == list(range(N))   # the file itself is right
    reader = make_reader("video", decoder=decoder)
    assert reader.num_frames(path) == N
    rng = np.random.default_rng(0)
    index_sets = [rng.choice(N, size=k, replace=False) for k in (1, 3, 8)] + \
                 [np.sort(rng.choice(N, size=8, replace=False)), np.arange(12, 28), [N - 1, 0, 7, 7, 7, 30]]
    for indices in index_sets:
        frames = reader.read(path, indices)
        assert frames.shape == (len(indices), H, W, 3) and frames.dtype == np.uint8
        assert frame_indices_of(frames) == list(indices), (name, decoder)
        # same pixels as the sequential decode (decord converts colours with its own rounding)
        assert np.abs(frames.astype(int) - truth[indices].astype(int)).max() <= (0 if decoder == "pyav" else 3)


@pytest.mark.parametrize("decoder", DECODER_PARAMS)
@pytest.mark.parametrize("name", sorted(VIDEOS))
def test_read_sampled_counts_and_reads_from_one_open(videos, decoder, name):
    """For lists without frame counts: the count handed to the sampler is the video's, and the
    frames are those of the indices it drew (AVI with B-frames: counted in a pass of its own)."""
    reader, counts = make_reader("video", decoder=decoder), []

    def sample(count):
        counts.append(count)
        return np.array([[count - 1, 0, 7], [7, 30, 2]])
    frames, indices = reader.read_sampled(videos[name], sample)
    assert counts == [N] and frames.shape == (6, H, W, 3)
    assert frame_indices_of(frames) == indices.reshape(-1).tolist() == [N - 1, 0, 7, 7, 30, 2]


def test_decord_width_bug_is_read_exactly(tmp_path):
    path = write_video(str(tmp_path / "w48.mp4"), make_frames(6, H, 48))   # decord's conversion fails at 48 px
    frames = DecordReader().read(path, [4, 1, 4])
    assert frames.shape == (3, H, 48, 3) and frame_indices_of(frames) == [4, 1, 4]


def test_avi_with_b_frames_is_detected(videos):
    assert avi_reorders_frames(videos["avi b-frames"])
    assert not avi_reorders_frames(videos["avi"])
    assert not avi_reorders_frames(videos["mp4 b-frames, from 3"])


def _count_decoded(monkeypatch):
    """The timestamps of the frames PyAVReader decodes (appended as it reads)."""
    decoded = []
    original = PyAVReader._decode_skipping

    def counting(container, stream, wanted):
        for frame in original(container, stream, wanted):
            decoded.append(frame.pts)
            yield frame

    monkeypatch.setattr(PyAVReader, "_decode_skipping", staticmethod(counting))
    return decoded


def test_pyav_seeks_instead_of_decoding_from_the_start(videos, monkeypatch):
    decoded = _count_decoded(monkeypatch)
    frames = PyAVReader().read(videos["mp4"], [35, 36])
    assert frame_indices_of(frames) == [35, 36]
    assert 2 <= len(decoded) <= 7   # from the key frame at 30, not 37 frames from the start


def _longest_gop(path):
    """(first, last) display positions of the longest run of frames between two key frames."""
    with PyAVReader._open(path) as container:
        _, keys = PyAVReader._index(path, container, container.streams.video[0])
    i = int(np.argmax(np.diff(keys)))
    return int(keys[i]), int(keys[i + 1]) - 1


@pytest.mark.parametrize("name", ["mp4", "mp4 b-frames, from 3", "mkv from 5"])
def test_pyav_skips_only_unneeded_non_reference_frames(videos, monkeypatch, name):
    key, last = _longest_gop(videos[name])
    decoded = _count_decoded(monkeypatch)
    frames = PyAVReader().read(videos[name], [last])
    assert frame_indices_of(frames) == [last]
    if "b-frames" in name or "mkv" in name:   # B-frames nobody refers to are not decoded
        assert len(decoded) < last - key + 1
    else:                                     # every P-frame is a reference: all are decoded
        assert len(decoded) == last - key + 1


# ---- cut-off and broken files ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def cut(videos, tmp_path_factory):
    """The first 60% of each container's bytes (a download that stopped)."""
    root = tmp_path_factory.mktemp("cut")
    out = {}
    for name in ("mp4", "avi", "mkv from 5", "webm from 4"):
        data = open(videos[name], "rb").read()
        out[name] = str(root / os.path.basename(videos[name]))
        with open(out[name], "wb") as f:
            f.write(data[:len(data) * 6 // 10])
    frames = make_frames(N, H, W)
    out["mp4 faststart"] = write_video(str(root / "fast.mp4"), frames, faststart=True)
    truncate_file(out["mp4 faststart"], os.path.getsize(out["mp4 faststart"]) * 6 // 10)
    out["mkv live"] = unknown_size_segment(videos["mkv from 5"], str(root / "live.mkv"))
    truncate_file(out["mkv live"], os.path.getsize(out["mkv live"]) * 6 // 10)
    return out


TOP_LEVEL_IDS = {bytes.fromhex(h) for h in ("1f43b675", "1c53bb6b", "114d9b74", "1549a966", "1654ae6b", "1254c367")}


def test_container_sizes_tell_a_cut_file(videos, cut, tmp_path):
    for path in videos.values():
        assert container_truncation(path) is None
    for name, path in cut.items():
        assert "truncated file" in (container_truncation(path) or ""), name
    assert "Matroska Cluster" in container_truncation(cut["mkv live"])
    # a live recording's Segment has no size: whole, it is whole; cut anywhere, its elements tell
    live = unknown_size_segment(videos["mkv from 5"], str(tmp_path / "live.mkv"))
    assert container_truncation(live) is None
    data = open(live, "rb").read()
    cuts = 0
    for keep in range(data.find(b"\x18\x53\x80\x67") + 12, len(data), 7):
        with open(tmp_path / "cut.mkv", "wb") as f:
            f.write(data[:keep])
        problem = container_truncation(str(tmp_path / "cut.mkv"))
        # only a cut exactly before a top-level element (Cluster, Cues, ...) looks like a shorter recording
        assert (problem is None) == (data[keep:keep + 4] in TOP_LEVEL_IDS), keep
        cuts += problem is not None
    assert cuts > len(data) // 8


@pytest.mark.parametrize("decoder", DECODER_PARAMS)
def test_live_recording_reads_every_frame(videos, decoder, tmp_path):
    live = unknown_size_segment(videos["mkv from 5"], str(tmp_path / "live.mkv"))
    reader = make_reader("video", decoder=decoder)
    assert reader.num_frames(live) == N
    indices = [0, 17, N - 1]
    assert np.array_equal(np.asarray(reader.read(live, indices)), decode_all(videos["mkv from 5"])[indices])


@pytest.mark.parametrize("decoder", DECODER_PARAMS)
@pytest.mark.parametrize("name", ["mp4", "avi", "mkv from 5", "webm from 4", "mp4 faststart", "mkv live"])
def test_cut_file_is_a_named_error_for_every_decoder(cut, decoder, name):
    """decord alone reads the first half of a cut AVI as a whole video; no reader may."""
    path = cut[name]
    reader = make_reader("video", decoder=decoder)
    for call in (lambda: reader.read(path, [0, 1]), lambda: reader.num_frames(path)):
        with pytest.raises(BadSampleError, match="truncated file|cannot open video") as e:
            call()
        assert e.value.video == path and str(e.value).startswith(path)


@pytest.mark.parametrize("decoder", DECODER_PARAMS)
def test_frame_past_the_end(videos, decoder):
    with pytest.raises(BadSampleError, match=f"frame {N} .*outside the video's {N}"):
        make_reader("video", decoder=decoder).read(videos["avi"], [3, N])


def test_registry_and_missing_torchcodec(monkeypatch):
    assert tuple(READERS) == VIDEO_DECODERS
    assert READERS["decord"] is DecordReader and READERS["torchcodec"] is TorchCodecReader
    import builtins
    real_import = builtins.__import__

    def no_torchcodec(name, *args, **kwargs):
        if name.startswith("torchcodec"):
            raise ImportError("No module named 'torchcodec'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torchcodec)
    with pytest.raises(ImportError, match="--decoder torchcodec: torchcodec is not installed"):
        make_reader("video", decoder="torchcodec")
    monkeypatch.undo()
    torchcodec = pytest.importorskip("torchcodec")
    monkeypatch.setattr(torchcodec, "ffmpeg_major_version", None)
    with pytest.raises(ImportError, match="needs FFmpeg's shared libraries .*make ffmpeg"):
        make_reader("video", decoder="torchcodec")
