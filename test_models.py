"""Evaluate trained checkpoints with multi-view testing (clips x crops), alone or as an ensemble.

    python test_models.py --weights checkpoint/<run>/ckpt.best.pth --num_clips 2 --test_crops 3
    torchrun --nproc_per_node 2 test_models.py --weights a.pth b.pth --coeff 1 0.5 --softmax

The model is rebuilt from the configuration stored in the checkpoint (never from its file name).
Every view of a video is scored and the scores are averaged per video; under torchrun the videos
are split between processes and gathered by video index, so each counts exactly once. Writes, to
--save_dir: metrics.json, per_class_accuracy.csv, confusion.npy, confusion.png and scores.npz
(per-video scores with video ids, labels and indices, for later fusion).
"""
import argparse
import hashlib
import json
import logging
import os
import sys

import numpy as np
import torch

from ops import distributed as du
from ops.data import build_dataset, build_loader
from ops.dataset import BadSampleError, SkipLimitError, check_skip_ceiling, skip_report
from ops.dataset_configs import get_dataset_config
from ops.engine import amp_dtype
from ops.evaluation import compute_metrics, gather_names, gather_predictions, predict, save_confusion_png
from ops.logging_setup import setup_logging, teardown_logging
from ops.model_api import declared
from ops.models import frames_option, model_from_checkpoint, model_label
from ops.sampling import TimeReversed
from ops.transforms import DeviceNormalize, place_normalize
from opts import (DECODE_DEVICES, JPEG_DECODERS, VIDEO_DECODERS, HelpFormatter, add_amp_arg, add_skip_ceiling,
                  loader_workers, one_line_errors)

logger = logging.getLogger("test_models")
TEST_WORKERS = 4


def build_parser():
    p = argparse.ArgumentParser(prog="test_models.py", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("dataset", nargs="?", default=None,
                   help="dataset key; default: the one the checkpoint was trained on")
    p.add_argument("--weights", nargs="+", required=True, help="checkpoint(s); several make an ensemble")
    p.add_argument("--coeff", type=float, nargs="+", default=None,
                   help="ensemble weight of each checkpoint (default: all 1)")
    p.add_argument("--test_list", default=None, help="list file to test on (default: the dataset's test list)")
    p.add_argument("--root_path", default=None, help="dataset root (default: the checkpoint's)")
    p.add_argument("--data_format", default=None, choices=["rawframes", "video"], help="default: the checkpoint's")
    p.add_argument("--decoder", default=None, choices=VIDEO_DECODERS, help="default: the checkpoint's")
    p.add_argument("--jpeg_decoder", default=None, choices=JPEG_DECODERS,
                   help="JPEG decoder for frame folders (default: the checkpoint's; all give the same pixels)")
    p.add_argument("--decode_device", default=None, choices=DECODE_DEVICES,
                   help="where frames are decoded (default: the checkpoint's); 'cpu' tests a run that decoded on "
                        "the GPU on a machine without one")
    p.add_argument("--test_segments", type=int, default=None,
                   help="segments per clip (2D models) or frames per clip (3D models); default: as trained")
    p.add_argument("--num_clips", type=int, default=1, help="clips per video, spread evenly over it")
    p.add_argument("--test_crops", type=int, default=1, choices=[1, 3, 5, 10],
                   help="1 centre crop, 3 crops along the long side, 5 (corners + centre), 10 (the 5 and their "
                        "flips; refused where flips change the class)")
    p.add_argument("--full_res", action="store_true",
                   help="crop at the scaled short side (full-resolution protocol) instead of crop_size")
    p.add_argument("--twice_sample", action="store_true", help="TSM's protocol: segment centres + starts")
    p.add_argument("--dense_sample", action="store_true", help="I3D-style dense windows (2D models)")
    p.add_argument("--reverse_time", action="store_true",
                   help="test on time-reversed views (the same frames played backwards): how much the model "
                        "relies on frame order")
    p.add_argument("--softmax", action="store_true", help="average softmax probabilities instead of raw scores")
    p.add_argument("--batch_size", type=int, default=1, help="videos per forward (each with all its views)")
    p.add_argument("--max_views", type=int, default=None, help="views per model call at most (memory bound)")
    p.add_argument("-j", "--workers", type=int, default=None,
                   help=f"data-loading workers (default: {TEST_WORKERS}; 0 when decoding on the GPU, which "
                        "runs in the main process)")
    p.add_argument("--on_bad_sample", default=None, choices=["error", "skip"], help="default: error")
    add_skip_ceiling(p)
    add_amp_arg(p)
    p.add_argument("--save_dir", default=None, help="output folder (default: beside the first checkpoint)")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.add_argument("--local_rank", "--local-rank", dest="local_rank", type=int,
                   default=int(os.environ.get("LOCAL_RANK", 0)), help="set by torch.distributed.launch")
    return p


def check_args(args, parser):
    for path in args.weights:
        if not os.path.isfile(path):
            parser.error(f"--weights: no such file: {path}")
    if args.coeff is not None and len(args.coeff) != len(args.weights):
        parser.error(f"--coeff has {len(args.coeff)} values for {len(args.weights)} checkpoints")
    if args.test_list and not os.path.isfile(args.test_list):
        parser.error(f"--test_list: no such file: {args.test_list}")
    for name in ("num_clips", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if args.test_segments is not None and args.test_segments < 1:
        parser.error("--test_segments must be >= 1")
    if not 0 <= args.max_skip_fraction <= 1:
        parser.error(f"--max_skip_fraction must be in [0, 1] (got {args.max_skip_fraction})")
    if args.workers is not None and args.workers < 0:
        parser.error("-j/--workers must be >= 0")
    return args


def test_overrides(trained, args):
    """This test's changes to the checkpoint's run configuration `trained`."""
    overrides = dict(dataset=args.dataset, root_path=args.root_path, data_format=args.data_format,
                     decoder=args.decoder, jpeg_decoder=args.jpeg_decoder, decode_device=args.decode_device,
                     on_bad_sample=args.on_bad_sample)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    # A named dataset's lists live in its root, so another dataset or root brings its own lists; a
    # custom run's lists are files given by path, kept unless --test_list replaces them.
    if (args.dataset or args.root_path) and overrides.get("dataset", trained.get("dataset")) != "custom":
        overrides.update(train_list=None, val_list=None)
    if args.dense_sample:
        overrides["dense_sample"] = True
    if args.test_segments:
        overrides[frames_option(trained)] = args.test_segments
    return overrides


def evaluate_checkpoint(path, args, dist):
    """Per-video scores of one checkpoint on the test list: (indices, scores, labels, dataset config)."""
    model, cfg = model_from_checkpoint(path, lambda trained: test_overrides(trained, args), needs_logits=True)
    dataset_cfg = get_dataset_config(cfg["dataset"], root=cfg.get("root_path"), split=cfg.get("split", 1),
                                     num_class=cfg.get("num_class"), data_format=cfg.get("data_format"),
                                     list_order=cfg.get("list_order"), image_tmpl=cfg.get("image_tmpl"),
                                     train_list=cfg.get("train_list"), val_list=cfg.get("val_list"),
                                     test_list=args.test_list)
    test_list = dataset_cfg.test_list
    if not test_list or not os.path.isfile(test_list):
        raise FileNotFoundError(f"test list not found: {test_list} (give --test_list or --root_path)")
    model.to(dist.device)
    dataset = build_dataset(cfg, model, dataset_cfg, "test", list_file=test_list, num_clips=args.num_clips,
                            test_crops=args.test_crops, twice_sample=args.twice_sample, full_res=args.full_res)
    if args.reverse_time:
        dataset.sampler = TimeReversed(dataset.sampler)
    loader_normalize, normalize = place_normalize(DeviceNormalize.from_spec(model.input_spec), dist.device)
    workers = loader_workers(args.workers, cfg["decode_device"], TEST_WORKERS)
    loader = build_loader(dataset, "test", args.batch_size, workers, dist.rank, dist.world_size,
                          pin_memory=dist.device.type == "cuda", normalize=loader_normalize)
    logger.info(f"=> {path}: {model_label(cfg)} on {len(dataset)} videos of {test_list}\n"
                f"   {dataset.sampler!r}\n   {dataset.transform!r}")
    amp = amp_dtype(args.amp)
    softmax = args.softmax or declared(model, "test_softmax")
    indices, scores, labels, skipped = predict(model, loader, normalize, dist.device, softmax=softmax,
                                               amp_dtype=amp, chunk=args.max_views,
                                               progress=dist.is_main and not args.no_progress)
    skipped = gather_names(skipped)
    if skipped:
        logger.info(f"=> {skip_report(skipped)}")
        check_skip_ceiling(skipped, len(dataset), args.max_skip_fraction, f"test of {path}")
    indices, scores, labels = gather_predictions(indices, scores, labels)
    return indices, scores, labels, dataset, dataset_cfg, skipped


def main(argv=None):
    parser = one_line_errors(build_parser())
    args = check_args(parser.parse_args(argv), parser)
    dist = du.init_distributed(args.local_rank)
    setup_logging(rank=dist.rank)
    coeff = args.coeff or [1.0] * len(args.weights)
    total, ref = None, None
    for path, weight in zip(args.weights, coeff):
        indices, scores, labels, dataset, dataset_cfg, skipped = evaluate_checkpoint(path, args, dist)
        if ref is None:
            ref = (indices, labels, dataset, dataset_cfg, skipped)
        elif not torch.equal(indices, ref[0]):
            raise ValueError(f"{path} was tested on other videos than {args.weights[0]}: an ensemble needs "
                             "the same test list (and skip policy)")
        total = weight * scores if total is None else total + weight * scores
    indices, labels, dataset, dataset_cfg, skipped = ref
    if dist.is_main:
        report(args, total, indices, labels, dataset, dataset_cfg, skipped)
    teardown_logging()
    du.cleanup()


def result_folder(args):
    """The default output folder: test_<clips>x<crops>, then a word for each option that changes
    the result, so two different evaluations never share a folder. Data overrides and ensembles
    (several --weights, --coeff) add a short hash of their values, recorded in full in metrics.json."""
    flags = [("twice", args.twice_sample), ("dense", args.dense_sample), ("fullres", args.full_res),
             (f"seg{args.test_segments}", args.test_segments), ("softmax", args.softmax), ("amp", args.amp),
             ("reversed", args.reverse_time)]
    parts = [f"test_{args.num_clips}x{args.test_crops}"] + [word for word, on in flags if on]
    data = [args.dataset, args.test_list and os.path.abspath(args.test_list),
            args.root_path and os.path.abspath(args.root_path), args.data_format, args.decoder, args.decode_device,
            args.on_bad_sample]
    if any(data):
        parts.append("data-" + short_hash(data))
    if len(args.weights) > 1 or args.coeff:
        parts.append(f"ensemble{len(args.weights)}-" + short_hash([os.path.abspath(w) for w in args.weights], args.coeff))
    return "_".join(parts)


def short_hash(*values):
    return hashlib.sha1(json.dumps(values).encode()).hexdigest()[:8]


def report(args, scores, indices, labels, dataset, dataset_cfg, skipped=()):
    num_class = dataset_cfg.num_class
    metrics = compute_metrics(scores, labels, num_class)
    views = (f"{args.num_clips} clip(s) x {args.test_crops} crop(s)" + (" twice-sampled" if args.twice_sample else "")
             + (" time-reversed" if args.reverse_time else ""))
    logger.info(f"=> {metrics['num_videos']} videos, {views}: top-1 {metrics['top1']:.2f}%  top-5 {metrics['top5']:.2f}%  "
                f"mean class accuracy {metrics['mean_class_acc']:.2f}%")
    save_dir = args.save_dir or os.path.join(os.path.dirname(os.path.abspath(args.weights[0])),
                                             result_folder(args))
    os.makedirs(save_dir, exist_ok=True)
    names = list(dataset_cfg.class_names) if dataset_cfg.class_names else [str(c) for c in range(num_class)]
    with open(os.path.join(save_dir, "per_class_accuracy.csv"), "w", encoding="utf-8") as f:
        f.write("label,class,videos,accuracy\n")
        for c in range(num_class):
            acc = metrics["per_class_acc"][c]
            f.write(f"{c},{names[c]},{int(metrics['confusion'][c].sum())},{'' if np.isnan(acc) else f'{acc:.2f}'}\n")
    np.save(os.path.join(save_dir, "confusion.npy"), metrics["confusion"])
    save_confusion_png(metrics["confusion"], names, os.path.join(save_dir, "confusion.png"),
                       title=f"{dataset_cfg.name}: top-1 {metrics['top1']:.1f}%")
    video_ids = np.array([dataset.video_list.path(int(i)) for i in indices])
    np.savez(os.path.join(save_dir, "scores.npz"), scores=scores.numpy(), labels=labels.numpy(),
             indices=indices.numpy(), video_ids=video_ids)
    summary = {k: metrics[k] for k in ("top1", "top5", "mean_class_acc", "num_videos")}
    # every option that shapes the result (the output folder, workers and progress bar do not)
    summary.update({k: v for k, v in vars(args).items() if k not in ("save_dir", "workers", "no_progress", "local_rank")})
    summary.update(weights=[os.path.abspath(w) for w in args.weights], test_list=os.path.abspath(dataset_cfg.test_list),
                   dataset=dataset_cfg.name, skipped=len(skipped), skipped_samples=list(skipped))
    with open(os.path.join(save_dir, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    logger.info(f"=> results in {save_dir} (metrics.json, per_class_accuracy.csv, confusion.png, scores.npz)")


def entry(argv=None):
    """main() with a bad sample, checkpoint, list or disk reported in one line, exit status 1."""
    try:
        main(argv)
    except (BadSampleError, SkipLimitError, OSError, ValueError) as err:
        print(f"test_models.py: error: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    entry()
