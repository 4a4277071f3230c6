"""Write another project's checkpoint (TSM, MMAction2, PySlowFast, PyTorchVideo, torchvision, timm,
the STTNet release) as a checkpoint of this project, with the loading report on the console.

    python tools/convert_checkpoint.py tsm_kinetics_resnet50.pth tsn_r50_k400.pth --model tsn --arch resnet50
    python tools/convert_checkpoint.py r2plus1d_18-91a641e6.pth r2plus1d_18_k400.pth --arch r2plus1d_18
    python tools/convert_checkpoint.py SLOW_8x8_R50.pyth slowonly_r50_k400.pth --arch slowonly_r50

The model flags are main.py's (--model, --arch, --num_segments, --shift, --allow_partial_load, ...);
--num_class defaults to the source classifier's class count, so its classifier is kept. The weights
load exactly as --tune_from loads them (ops/checkpoint_formats.py), strictly unless
--allow_partial_load. The output holds `model` and the run configuration `config`, so main.py
--tune_from, test_models.py and the tools read it like any checkpoint of main.py.
"""
import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from opts import build_train_parser, check_args  # noqa: E402
from ops.checkpoint import CheckpointError, make_checkpoint, plain, save_checkpoint  # noqa: E402
from ops.checkpoint_formats import load_weights, source_num_class  # noqa: E402
from ops.logging_setup import setup_logging  # noqa: E402
from ops.models import build_model  # noqa: E402

logger = logging.getLogger("convert_checkpoint")


def convert(source, output, model_argv=()):
    """Build the model main.py would build from `model_argv`, load `source` into it, save `output`;
    returns the loading report."""
    train_parser = build_train_parser()
    args = train_parser.parse_args(["custom", "RGB", *model_argv, "--tune_from", source])
    if args.num_class is None:
        args.num_class = source_num_class(source)
        if args.num_class is None:
            train_parser.error(f"{source} has no classifier to take the class count from: give --num_class")
    args = check_args(args, train_parser)
    config = dict(vars(args), pretrain="none", pretrained_weights=None)
    config.pop("local_rank")
    model = build_model(config)
    report = load_weights(model, source, allow_partial=args.allow_partial_load)
    save_checkpoint(make_checkpoint(model, config=plain(config)), output)
    logger.info("=> wrote %s (%s, %d classes)", output, config["arch"], config["num_class"])
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     usage="%(prog)s SOURCE OUTPUT [main.py model flags]")
    parser.add_argument("source", help="checkpoint of another project (or of this one)")
    parser.add_argument("output", help="where to write this project's checkpoint")
    args, model_argv = parser.parse_known_args(argv)
    setup_logging()
    try:
        convert(args.source, args.output, model_argv)
    except (CheckpointError, ValueError, FileNotFoundError) as err:
        print(f"convert_checkpoint.py: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
