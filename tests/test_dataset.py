import os
import pickle

import numpy as np
import pytest
import torch

from ops.dataset import (JPEG_DECODERS, READERS, BadSampleError, DecordReader, PyAVReader, RawFrameReader, Skipped,
                         VideoDataset, VideoList, collate_skip, make_reader, parse_list_line, skip_report)
from ops.evaluation import gather_names
from ops.sampling import TSNSampler
from tests.decoders import DECODER_PARAMS
from tests.videogen import frame_indices_of, make_frames, truncate_file, write_frame_folder, write_video

H, W = 32, 40  # decord 0.6 mis-converts some widths (16, 24, 48, 72); 40 is safe
LENGTHS = {"a": 20, "b": 13, "c": 5}
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Three videos, each as a JPEG folder and an mp4 of the same frames; lists of both kinds."""
    root = tmp_path_factory.mktemp("data")
    for seed, (name, n) in enumerate(LENGTHS.items()):
        frames = make_frames(n, H, W, seed=seed)
        write_frame_folder(str(root / "rawframes" / name), frames)
        write_video(str(root / "videos" / f"{name}.mp4"), frames)
    (root / "frames.txt").write_text("".join(f"rawframes/{v} {n} {i}\n" for i, (v, n) in enumerate(LENGTHS.items())))
    (root / "videos.txt").write_text("".join(f"videos/{v}.mp4 {i}\n" for i, v in enumerate(LENGTHS)))
    return root


def write_list(tmp_path, text, name="list.txt"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# ---- readers --------------------------------------------------------------------------------------

@pytest.mark.parametrize("decoder", DECODER_PARAMS)
def test_rawframes_and_video_readers_return_the_same_frames(root, decoder):
    indices = np.array([0, 5, 5, 19, 3, 12])
    raw = RawFrameReader("img_{:05d}.jpg").read(str(root / "rawframes" / "a"), indices)
    vid = READERS[decoder]().read(str(root / "videos" / "a.mp4"), indices)
    assert raw.shape == vid.shape == (6, H, W, 3) and raw.dtype == vid.dtype == np.uint8
    assert frame_indices_of(raw) == frame_indices_of(vid) == indices.tolist()


@pytest.mark.parametrize("decoder", DECODER_PARAMS)
def test_num_frames(root, decoder):
    for name, n in LENGTHS.items():
        assert RawFrameReader().num_frames(str(root / "rawframes" / name)) == n
        assert READERS[decoder]().num_frames(str(root / "videos" / f"{name}.mp4")) == n


def test_jpeg_decoders_give_identical_pixels(root):
    path = str(root / "rawframes" / "b")
    frames = {name: RawFrameReader(decoder=name).read(path, [2, 7, 2]) for name in JPEG_DECODERS}
    for name, got in frames.items():
        assert frame_indices_of(got) == [2, 7, 2], name
        assert np.array_equal(got, frames["simplejpeg"]), name


def test_each_frame_decoded_once(root):
    calls = []

    class Counting(RawFrameReader):
        def read_bytes(self, path, index):
            calls.append(index)
            return super().read_bytes(path, index)

    frames = Counting().read(str(root / "rawframes" / "a"), [4, 4, 4, 9, 4, 9])
    assert sorted(calls) == [4, 9]
    assert frame_indices_of(frames) == [4, 4, 4, 9, 4, 9]


def test_template_setting(tmp_path):
    write_frame_folder(str(tmp_path / "v"), make_frames(3, H, W), tmpl="{:06d}.jpg")
    reader = RawFrameReader("{:06d}.jpg")
    assert reader.num_frames(str(tmp_path / "v")) == 3
    assert frame_indices_of(reader.read(str(tmp_path / "v"), [2, 0])) == [2, 0]
    assert RawFrameReader("img_{:05d}.jpg").num_frames(str(tmp_path / "v")) == 0


def test_make_reader():
    assert isinstance(make_reader("rawframes", "{:05d}.jpg"), RawFrameReader)
    assert make_reader("rawframes", "{:05d}.jpg").image_tmpl == "{:05d}.jpg"
    assert isinstance(make_reader("video", decoder="pyav"), PyAVReader)
    assert isinstance(make_reader("video", decoder="decord"), DecordReader)
    with pytest.raises(ValueError, match="decoder"):
        make_reader("video", decoder="opencv")


# ---- bad frames and videos ------------------------------------------------------------------------

@pytest.fixture
def broken_frames(tmp_path):
    folder = tmp_path / "v"
    write_frame_folder(str(folder), make_frames(6, H, W))
    (folder / "img_00003.jpg").write_bytes(b"")
    truncate_file(str(folder / "img_00005.jpg"), os.path.getsize(folder / "img_00005.jpg") // 2)
    os.remove(folder / "img_00006.jpg")
    return str(folder)


@pytest.mark.parametrize("backend", sorted(JPEG_DECODERS))
@pytest.mark.parametrize("index,message", [
    (2, r"frame 2 \(0-based\): img_00003.jpg: empty file \(0 bytes\)"),
    (4, r"frame 4 \(0-based\): img_00005.jpg: truncated JPEG"),
    (5, r"frame 5 \(0-based\): missing img_00006.jpg"),
])
def test_bad_frames_name_video_and_frame(broken_frames, backend, index, message):
    reader = RawFrameReader(decoder=backend)
    assert frame_indices_of(reader.read(broken_frames, [0, 1, 3])) == [0, 1, 3]
    with pytest.raises(BadSampleError, match=message) as e:
        reader.read(broken_frames, [0, index])
    assert e.value.video == broken_frames and e.value.frame == index


def test_undecodable_jpeg(tmp_path):
    folder = tmp_path / "v"
    write_frame_folder(str(folder), make_frames(2, H, W))
    data = bytearray((folder / "img_00001.jpg").read_bytes())
    data[2:-2] = b"\x00" * (len(data) - 4)  # JPEG markers at both ends, garbage between
    (folder / "img_00001.jpg").write_bytes(bytes(data))
    with pytest.raises(BadSampleError, match="frame 0 .*cannot decode img_00001.jpg"):
        RawFrameReader().read(str(folder), [0])


def test_missing_folder():
    with pytest.raises(BadSampleError, match="no such frame folder"):
        RawFrameReader().read("/nonexistent/video", [0])


@pytest.fixture(scope="module")
def broken_videos(root, tmp_path_factory):
    out = tmp_path_factory.mktemp("broken")
    good = (root / "videos" / "a.mp4").read_bytes()
    (out / "truncated.mp4").write_bytes(good[:len(good) // 2])
    (out / "empty.mp4").write_bytes(b"")
    (out / "garbage.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    write_video(str(out / "faststart.mp4"), make_frames(20, H, W), faststart=True)
    truncate_file(str(out / "faststart.mp4"), os.path.getsize(out / "faststart.mp4") * 6 // 10)
    return out


@pytest.mark.parametrize("decoder", DECODER_PARAMS)
@pytest.mark.parametrize("name,message", [
    ("truncated.mp4", "truncated file: .* bytes, its mp4 box .mdat. ends at byte"),
    ("empty.mp4", r"empty file \(0 bytes\)"),
    ("garbage.mp4", "cannot open video"),
    ("missing.mp4", "no such video file"),
])
def test_bad_videos(broken_videos, decoder, name, message):
    path = str(broken_videos / name)
    with pytest.raises(BadSampleError, match=message) as e:
        READERS[decoder]().read(path, [0, 1])
    assert e.value.video == path and str(e.value).startswith(path)
    with pytest.raises(BadSampleError):
        READERS[decoder]().num_frames(path)


@pytest.mark.parametrize("decoder", DECODER_PARAMS)
def test_truncated_video_with_index_first(broken_videos, decoder):
    # the header survives, so decoders would open it; the container's sizes tell it is cut
    path = str(broken_videos / "faststart.mp4")
    with pytest.raises(BadSampleError, match="truncated file") as e:
        READERS[decoder]().read(path, [0, 19])
    assert e.value.video == path


@pytest.mark.parametrize("decoder", DECODER_PARAMS)
def test_frame_past_the_end_is_an_error(root, decoder):
    with pytest.raises(BadSampleError, match="frame 25 .*outside the video's 20"):
        READERS[decoder]().read(str(root / "videos" / "a.mp4"), [3, 25])


def test_bad_sample_error_pickles_and_rebuilds_from_message():
    e = BadSampleError("v.mp4", 3, "broken")
    assert str(e) == "v.mp4: frame 3 (0-based): broken"
    back = pickle.loads(pickle.dumps(e))
    assert (back.video, back.frame, back.reason, str(back)) == ("v.mp4", 3, "broken", str(e))
    assert str(BadSampleError(str(e))) == str(e)  # how DataLoader workers re-raise it


# ---- list files -----------------------------------------------------------------------------------

def test_video_list_numpy_storage(root):
    vl = VideoList(str(root / "frames.txt"), str(root), num_class=3)
    assert len(vl) == 3
    assert [vl.name(i) for i in range(3)] == ["rawframes/a", "rawframes/b", "rawframes/c"]
    assert vl.path(1) == os.path.join(str(root), "rawframes/b")
    assert vl.num_frames.tolist() == [20, 13, 5] and vl.labels.tolist() == [0, 1, 2]
    for value in vars(vl).values():
        assert not isinstance(value, (list, tuple, dict))
    assert vl._paths.dtype == np.uint8 and vl.num_frames.dtype == vl.labels.dtype == np.int64
    assert "3 videos" in repr(vl)


def test_field_orders(tmp_path):
    a = VideoList(write_list(tmp_path, "x 30 2\n\ny 8 0\n", "a.txt"), list_order="path_frames_label")
    b = VideoList(write_list(tmp_path, "x 2 30\ny 0 8\n", "b.txt"), list_order="path_label_frames")
    for vl in (a, b):
        assert vl.num_frames.tolist() == [30, 8] and vl.labels.tolist() == [2, 0]
    assert a.where(1) == f"{tmp_path / 'a.txt'}:3"  # the blank line counts
    assert parse_list_line("v.mp4 7") == ("v.mp4", -1, 7)
    assert parse_list_line("v.mp4 7", "path_label_frames") == ("v.mp4", -1, 7)


def test_absolute_paths_kept(tmp_path):
    vl = VideoList(write_list(tmp_path, "/abs/v 3 0\n"), root="/root")
    assert vl.path(0) == "/abs/v"


@pytest.mark.parametrize("text,message", [
    ("a 10 1\nb 1\nc ten 1\n", "list.txt:3: malformed line 'c ten 1'"),
    ("a 10 1\nb 10 1 extra\n", "list.txt:2: malformed line"),
    ("a 10 1\nb 10 5\n", r"list.txt:2: label 5 outside \[0, 5\)"),
    ("a 10 -1\n", r"list.txt:1: label -1 outside \[0, 5\)"),
    ("a 10 1\n\nb 0 1\n", "list.txt:3: num_frames must be >= 1, got 0"),
    ("\n\n", "list.txt: the list has no videos"),
])
def test_list_errors_name_file_and_line(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        VideoList(write_list(tmp_path, text), num_class=5)


def test_missing_paths_when_checked(root, tmp_path):
    text = "rawframes/a 20 0\nrawframes/zz 20 1\n"
    VideoList(write_list(tmp_path, text), str(root), num_class=3)  # not checked: fine
    with pytest.raises(ValueError, match=r"list.txt:2: no such folder or video: .*rawframes/zz"):
        VideoList(write_list(tmp_path, text), str(root), num_class=3, check_paths=True)
    with pytest.raises(ValueError, match=r"list.txt:1: no such folder or video: .*videos/zz.mp4"):
        VideoList(write_list(tmp_path, "videos/zz.mp4 1\n"), str(root), check_paths=True)


# ---- dataset --------------------------------------------------------------------------------------

def frames_dataset(root, **kwargs):
    vl = VideoList(str(root / "frames.txt"), str(root), num_class=3)
    return VideoDataset(vl, RawFrameReader(), kwargs.pop("sampler", TSNSampler(4)), **kwargs)


def test_item_format_and_frames_follow_sampler(root):
    ds = frames_dataset(root, sampler=TSNSampler(4, mode="val"))
    frames, label, index = ds[0]
    assert frames.dtype == torch.uint8 and frames.shape == (1, 4, H, W, 3)
    assert (label, index) == (0, 0)
    assert frame_indices_of(frames[0]) == TSNSampler(4, mode="val")(20, None)[0].tolist() == [2, 7, 12, 17]
    short, label, _ = ds[2]
    assert frame_indices_of(short[0]) == [0, 1, 3, 4] and label == 2


@pytest.mark.parametrize("decoder", DECODER_PARAMS)
def test_video_list_without_counts_reader_counts(root, decoder, monkeypatch):
    vl = VideoList(str(root / "videos.txt"), str(root), num_class=3)
    assert vl.num_frames.tolist() == [-1, -1, -1]
    reader, opened = READERS[decoder](), []
    real_open = reader._open
    monkeypatch.setattr(reader, "_open", lambda path: opened.append(path) or real_open(path))
    ds = VideoDataset(vl, reader, TSNSampler(2, mode="test", num_clips=2))
    frames, label, index = ds[1]
    assert frames.shape == (2, 2, H, W, 3) and (label, index) == (1, 1)
    assert [frame_indices_of(clip) for clip in frames] == TSNSampler(2, mode="test", num_clips=2)(13, None).tolist()
    assert opened == [vl.path(1)]   # one open gives the count and the frames


def test_determinism_seed_epoch_index(root):
    ds = frames_dataset(root, seed=5)
    first = [ds[i][0] for i in range(2)]
    assert all(torch.equal(a, ds[i][0]) for i, a in enumerate(first))
    picks = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        picks.add(tuple(frame_indices_of(ds[0][0][0])))
    assert len(picks) > 1
    ds.set_epoch(0)
    assert torch.equal(ds[0][0], first[0])
    expected = TSNSampler(4)(20, np.random.default_rng([5, 0, 0]))[0].tolist()
    assert frame_indices_of(first[0][0]) == expected
    other = TSNSampler(4)(20, np.random.default_rng([6, 0, 0]))[0].tolist()
    assert frame_indices_of(frames_dataset(root, seed=6)[0][0][0]) == other


def test_transform_gets_clips_label_and_item_rng(root):
    seen = {}

    def transform(frames, label, rng):
        seen["shape"], seen["draw"] = frames.shape, rng.random()
        return torch.from_numpy(frames[:, :, ::2].copy()), label + 10

    ds = frames_dataset(root, sampler=TSNSampler(3, mode="val"), transform=transform)
    frames, label, _ = ds[1]
    assert seen["shape"] == (1, 3, H, W, 3) and frames.shape == (1, 3, H // 2, W, 3) and label == 11
    first_draw = seen["draw"]
    ds[1]
    assert seen["draw"] == first_draw


@pytest.fixture
def mixed_list(root, tmp_path):
    """Good, missing folder, good, bad frame: the bad ones on lines 2 and 4."""
    bad = tmp_path / "bad"
    write_frame_folder(str(bad), make_frames(8, H, W))
    (bad / "img_00003.jpg").write_bytes(b"")  # frame 2, which the val sampler (K=2) reads
    text = f"rawframes/a 20 0\nrawframes/gone 9 1\nrawframes/b 13 1\n{bad} 8 2\n"
    return VideoList(write_list(tmp_path, text), str(root), num_class=3)


def test_bad_sample_error_names_list_line(mixed_list):
    ds = VideoDataset(mixed_list, RawFrameReader(), TSNSampler(2, mode="val"))
    assert ds[0][1] == 0
    with pytest.raises(BadSampleError, match=r"rawframes/gone: no such frame folder \(.*list.txt:2\)"):
        ds[1]
    with pytest.raises(BadSampleError, match=r"frame 2 \(0-based\): img_00003.jpg: empty file .*list.txt:4"):
        ds[3]


def test_skip_policy_and_collate(mixed_list):
    ds = VideoDataset(mixed_list, RawFrameReader(), TSNSampler(2, mode="val"), on_bad_sample="skip")
    items = [ds[i] for i in range(4)]
    assert isinstance(items[1], Skipped) and isinstance(items[3], Skipped)
    assert items[1].index == 1 and items[1].name == "rawframes/gone"
    frames, labels, indices, skipped = collate_skip(items)
    assert frames.shape == (2, 1, 2, H, W, 3) and frames.dtype == torch.uint8
    assert labels.tolist() == [0, 1] and indices.tolist() == [0, 2]
    assert len(skipped) == 2 and skipped[0].startswith("rawframes/gone: ") and "list.txt:4" in skipped[1]
    frames, labels, indices, skipped = collate_skip([items[1]])
    assert frames is None and labels.numel() == indices.numel() == 0 and len(skipped) == 1


def test_skip_through_dataloader_workers(mixed_list):
    ds = VideoDataset(mixed_list, RawFrameReader(), TSNSampler(2, mode="val"), on_bad_sample="skip")
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=1, collate_fn=collate_skip)
    seen, skipped_names = [], []
    for frames, labels, indices, skipped in loader:
        skipped_names += skipped
        seen += indices.tolist()
    assert seen == [0, 2] and len(skipped_names) == 2
    report = skip_report(gather_names(skipped_names))
    assert report.startswith("skipped 2 bad sample(s)") and "rawframes/gone" in report
    assert skip_report([]) == "skipped 0 bad samples"


def test_error_through_dataloader_workers_keeps_message(mixed_list):
    ds = VideoDataset(mixed_list, RawFrameReader(), TSNSampler(2, mode="val"))
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=1, collate_fn=collate_skip)
    with pytest.raises(BadSampleError, match=r"rawframes/gone: no such frame folder"):
        list(loader)


def test_skip_report_truncates_long_lists():
    names = [f"v{i}: bad" for i in range(30)]
    report = skip_report(names, limit=5)
    assert report.startswith("skipped 30 bad sample(s)") and "v4: bad" in report and "v5: bad" not in report
    assert "and 25 more" in report


def test_bad_policy_name(root):
    with pytest.raises(ValueError, match="on_bad_sample"):
        frames_dataset(root, on_bad_sample="ignore")
