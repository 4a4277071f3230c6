"""Published command lines resolve to the published system and settings."""
import shlex

import pytest

import main
from opts import build_train_parser, check_args

STTNET_HMDB51 = ("python -m torch.distributed.launch --nproc_per_node=1 main.py hmdb51 RGB --arch resnet50 "
                 "--num_segments 16 --gd 20 --lr 0.00015 --lr_steps 25 35 --epochs 50 --batch-size 4 --dropout 0.8 "
                 "--consensus_type=avg --eval-freq=1 -j 4")


def resolve(command):
    """check_args' view of a command line (everything after main.py)."""
    words = shlex.split(command)
    words = words[words.index("main.py") + 1:] if "main.py" in words else words
    parser = main.one_line_errors(build_train_parser())
    return check_args(parser.parse_args(words), parser)


@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "kinetics.pth"
    path.write_bytes(b"")
    return path


def test_the_published_sttnet_command_trains_sttnet_under_an_sttnet_name():
    args = resolve(STTNET_HMDB51)
    assert args.model == "sttnet"
    assert main.run_name(args) == "STTNet_hmdb51_RGB_resnet50_avg_segment16_e50"
    tsn = resolve(STTNET_HMDB51 + " --model tsn")
    assert main.run_name(tsn) == "TSN_hmdb51_RGB_resnet50_avg_segment16_e50"


@pytest.mark.parametrize("model", ["sttnet", "tsn"])
def test_partial_bn_is_off_without_loaded_weights(model):
    assert resolve(f"{STTNET_HMDB51} --model {model}").partial_bn is False


def test_partial_bn_without_weights_is_an_error(capsys):
    with pytest.raises(SystemExit):
        resolve(STTNET_HMDB51 + " --model tsn --partialbn")
    assert "--partialbn" in capsys.readouterr().err


def test_partial_bn_follows_tsn_on_loaded_weights_and_never_sttnet(weights):
    assert resolve(f"{STTNET_HMDB51} --model tsn --tune_from={weights}").partial_bn is True
    assert resolve(f"{STTNET_HMDB51} --model tsn --tune_from={weights} --npb").partial_bn is False
    # the STTNet reference's switch could never turn on: it trains every BatchNorm from any start
    assert resolve(f"{STTNET_HMDB51} --tune_from={weights}").partial_bn is False
    assert resolve(f"{STTNET_HMDB51} --tune_from={weights} --partialbn").partial_bn is True


def test_the_published_sttnet_command_runs_as_printed(tmp_path):
    """The published STTNet command, run as printed from scratch on tiny generated frames. Added only
    what a tiny run needs: the data flags (custom lists), 32 px crops, one epoch instead of 50,
    -j 0, and the output folders; one process instead of torch.distributed.launch."""
    import torch
    from ops.checkpoint import load_checkpoint
    from tests.test_main import make_colour_dataset

    lists = make_colour_dataset(str(tmp_path / "data"), per_class=(2, 1), frames=4, size=(32, 40))
    tiny = (f" --root_path {tmp_path / 'data'} --train_list {lists[0]} --val_list {lists[1]} --num_class 4 "
            f"--crop_size 32 --scale_size 32 --epochs 1 -j 0 --no_progress "
            f"--root_log {tmp_path / 'log'} --root_model {tmp_path / 'ckpt'}")
    command = STTNET_HMDB51.replace("main.py hmdb51", "main.py custom") + tiny
    words = shlex.split(command)
    main.main(words[words.index("main.py") + 1:])
    state = load_checkpoint(tmp_path / "ckpt" / "STTNet_custom_RGB_resnet50_avg_segment16_e1" / "ckpt.pth")
    assert state["config"]["model"] == "sttnet" and state["config"]["partial_bn"] is False
    weights = state["model"]
    for part in ("aggregator.", "rbrf_head.", "rbrc_head."):
        assert any(k.startswith(part) for k in weights), part
    means = [k for k in weights if k.endswith("running_mean")]
    assert len(means) >= 53
    for key in means:   # from scratch: initial mean 0, variance 1; every BatchNorm trained
        assert not torch.equal(weights[key], torch.zeros_like(weights[key])), key
        var = weights[key.replace("running_mean", "running_var")]
        assert not torch.equal(var, torch.ones_like(var)), key

    words = shlex.split(command + " --model tsn")
    main.main(words[words.index("main.py") + 1:])
    state = load_checkpoint(tmp_path / "ckpt" / "TSN_custom_RGB_resnet50_avg_segment16_e1" / "ckpt.pth")
    assert state["config"]["model"] == "tsn"
    assert not any(k.startswith(("aggregator.", "rbrf_head.", "rbrc_head.")) for k in state["model"])
