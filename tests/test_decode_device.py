"""--decode_device cuda: which decoders it takes and the errors it gives, checked without a GPU."""
import re

import pytest
import torch

import main
from ops.data import build_loader
from ops.dataset import RawFrameReader, TorchCodecReader, VideoDataset, VideoList, make_reader
from ops.sampling import TSNSampler
import opts
from opts import check_args


def test_no_gpu_is_an_error_at_start(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        RawFrameReader(decoder="torchcodec", device="cuda")
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        make_reader("video", decoder="torchcodec", device="cuda")
    parser = main.build_train_parser()
    with pytest.raises(SystemExit):
        check_args(parser.parse_args(["custom", "RGB", "--num_class", "3", "--decode_device", "cuda", "-j", "0",
                                      "--jpeg_decoder", "torchcodec"]), parser)
    assert "--decode_device cuda needs a CUDA GPU" in capsys.readouterr().err


def test_decoders_that_cannot_use_the_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(ValueError, match="nvJPEG through torchcodec: JPEG decoder 'torchcodec' .not 'simplejpeg'"):
        make_reader("rawframes", jpeg_decoder="simplejpeg", device="cuda")
    with pytest.raises(ValueError, match="NVDEC through torchcodec: decoder 'torchcodec' .not 'pyav'"):
        make_reader("video", decoder="pyav", device="cuda")
    with pytest.raises(ValueError, match="not 'mps'"):
        RawFrameReader(decoder="torchcodec", device="mps")
    assert make_reader("rawframes", jpeg_decoder="torchcodec", device="cuda").device == "cuda"
    try:
        reader = make_reader("video", decoder="torchcodec", device="cuda")
    except ImportError:
        return   # torchcodec's FFmpeg libraries are missing here
    assert isinstance(reader, TorchCodecReader) and "device='cuda'" in repr(reader)


@pytest.mark.parametrize("flags,message", [
    (["-j", "2", "--jpeg_decoder", "torchcodec"], "main process .*give -j 0"),
    (["-j", "0"], "give --jpeg_decoder torchcodec"),
    (["-j", "0", "--data_format", "video", "--decoder", "decord"], "give --decoder torchcodec"),
])
def test_flag_combinations(monkeypatch, capsys, flags, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    parser = main.build_train_parser()
    with pytest.raises(SystemExit):
        check_args(parser.parse_args(["custom", "RGB", "--num_class", "3", "--decode_device", "cuda", *flags]), parser)
    assert re.search(message, capsys.readouterr().err)


def test_accepted_combination_and_loader(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    parser = main.build_train_parser()
    args = check_args(parser.parse_args(["custom", "RGB", "--num_class", "3", "--decode_device", "cuda", "-j", "0",
                                         "--jpeg_decoder", "torchcodec"]), parser)
    assert args.decode_device == "cuda" and args.workers == 0
    # -j left out: the main process decodes on the GPU; on the CPU the usual default
    args = check_args(parser.parse_args(["custom", "RGB", "--num_class", "3", "--decode_device", "cuda",
                                         "--jpeg_decoder", "torchcodec"]), parser)
    assert args.workers == 0
    args = check_args(parser.parse_args(["custom", "RGB", "--num_class", "3"]), parser)
    assert args.workers == opts.TRAIN_WORKERS
    (tmp_path / "list.txt").write_text("v 3 0\nw 3 1\n")
    dataset = VideoDataset(VideoList(str(tmp_path / "list.txt")), RawFrameReader(decoder="torchcodec", device="cuda"),
                           TSNSampler(2))
    with pytest.raises(ValueError, match="main process: use 0 workers"):
        build_loader(dataset, "val", 1, workers=2)
    assert build_loader(dataset, "val", 1, workers=0, pin_memory=True).pin_memory is False


def test_missing_ffmpeg_libraries_is_one_line_at_start(monkeypatch, tmp_path, capsys):
    torchcodec = pytest.importorskip("torchcodec")
    monkeypatch.setattr(torchcodec, "ffmpeg_major_version", None)
    (tmp_path / "list.txt").write_text("v.mp4 0\n")
    parser = main.build_train_parser()
    argv = ["custom", "RGB", "--num_class", "3", "--data_format", "video", "--train_list", str(tmp_path / "list.txt"),
            "--val_list", str(tmp_path / "list.txt")]
    with pytest.raises(SystemExit):
        main.resolve_dataset(parser.parse_args(argv), parser)
    assert "--decoder torchcodec needs FFmpeg's shared libraries" in capsys.readouterr().err
    assert main.resolve_dataset(parser.parse_args(argv + ["--decoder", "pyav"]), parser).data_format == "video"
