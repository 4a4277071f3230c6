"""One feature vector per video from any checkpoint of the framework, for linear evaluation,
retrieval or plots.

    python tools/extract_features.py checkpoint/<run>/ckpt.best.pth --subset test --out feats.npz
    python tools/extract_features.py ckpt.pth --list data/synthetic/val_rawframes.txt --clips 10 --crops 3

The model is rebuilt from the checkpoint's `config`. A pre-training checkpoint gives the features
of the network fine-tuning would start from (VTDL: the query encoder inside the plain clip model;
CPC-Trans: the context network of `cpc_trans_ft`). The feature is the model's `forward_features`
when it has one, else the input of its last Linear layer (the classifier). Views (clips x crops,
the test pipeline of the model) are averaged per video.

Output (.npz): `features` float32 [num_videos, D] in list order, `labels` int64 [num_videos],
`video_ids` (the paths as written in the list) and `indices` (line order in the list).

Linear probe: `--probe_train train.npz` (an earlier output of this tool) fits a logistic regression
on standardised training features and scores it on the videos just extracted:

    python tools/extract_features.py ckpt.pth --subset train --out train.npz
    python tools/extract_features.py ckpt.pth --subset test --out test.npz --probe_train train.npz
"""
import argparse
import json
import logging
import os
import sys

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ops.checkpoint import CheckpointError  # noqa: E402
from ops.data import build_dataset, build_loader  # noqa: E402
from ops.dataset_configs import get_dataset_config  # noqa: E402
from ops.logging_setup import setup_logging  # noqa: E402
from ops.models import model_from_checkpoint  # noqa: E402
from ops.transforms import DeviceNormalize, place_normalize  # noqa: E402
from opts import DECODE_DEVICES, loader_workers  # noqa: E402

# Pre-training method -> the model whose features it pre-trains; any other method pre-trains the
# plain --arch model (VTDL: the clip model).
FEATURE_MODEL = {"cpc_trans": "cpc_trans_ft"}
FEATURE_WORKERS = 2

logger = logging.getLogger("extract_features")


def feature_model(path, random_init=False, seed=0):
    """The checkpoint's model ready for feature extraction (eval mode) and its configuration; a
    pre-training checkpoint gives the model fine-tuning would start from (FEATURE_MODEL).
    random_init: the same network freshly initialised from `seed` (the random-init baseline)."""
    def feature_overrides(trained):
        ssl = trained.get("ssl")
        return dict(ssl=None, model=FEATURE_MODEL.get(ssl) or trained.get("model")) if ssl else {}

    torch.manual_seed(seed)
    model, cfg = model_from_checkpoint(path, feature_overrides, random_init=random_init)
    if random_init:
        logger.info(f"=> {type(model).__name__} with random weights (seed {seed}): {path} only gives the configuration")
    return model, cfg


class Features:
    """x -> [N, D]: `forward_features` (pooled if it returns maps), else the input of the last
    Linear module (per-segment inputs are averaged)."""

    def __init__(self, model):
        self.model = model
        self.linear = None
        if not hasattr(model, "forward_features"):
            linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
            if not linears:
                raise ValueError(f"{type(model).__name__} has neither forward_features nor a Linear classifier")
            self.linear = linears[-1]

    def __call__(self, x):
        n = x.shape[0]
        if self.linear is None:
            feats = self.model.forward_features(x)
            return feats.flatten(2).mean(2) if feats.dim() > 2 else feats
        captured = []
        handle = self.linear.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
        try:
            self.model(x)
        finally:
            handle.remove()
        inp = captured[-1]
        return inp.reshape(n, -1, inp.shape[-1]).mean(1)


@torch.no_grad()
def extract(model, loader, normalize, device, progress=True):
    """Returns (features [N, D], labels [N], indices [N]) sorted by list index."""
    features_of = Features(model)
    feats, labels, indices = [], [], []
    for frames, label, index, skipped in tqdm(loader, desc="features", disable=not progress, dynamic_ncols=True):
        if skipped:
            raise RuntimeError(f"bad samples: {skipped}")
        b, v = frames.shape[:2]
        x = frames.to(device) if normalize is None else normalize(frames.to(device))  # None: the loader did
        x = x.flatten(0, 1)
        feats.append(features_of(x).float().reshape(b, v, -1).mean(1).cpu())
        labels.append(label)
        indices.append(index)
    feats, labels, indices = torch.cat(feats), torch.cat(labels), torch.cat(indices)
    order = torch.argsort(indices)
    return feats[order].numpy(), labels[order].numpy(), indices[order].numpy()


def linear_probe(train_npz, features, labels):
    """Top-1 (%) of a logistic regression fitted on the features in `train_npz`, on (features, labels)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train = np.load(train_npz)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    clf.fit(train["features"], train["labels"])
    return 100.0 * clf.score(features, labels)


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("checkpoint", help="a checkpoint written by main.py (supervised or pre-training)")
    p.add_argument("--out", required=True, help="output .npz file")
    p.add_argument("--subset", default="test", choices=["train", "val", "test"], help="which list of the dataset")
    p.add_argument("--list", default=None, help="a list file instead of --subset")
    p.add_argument("--root_path", default=None, help="dataset root (default: the checkpoint's)")
    p.add_argument("--clips", type=int, default=1, help="clips per video (CPC-Trans: windows of N steps)")
    p.add_argument("--crops", type=int, default=1, choices=[1, 3, 5, 10], help="spatial crops per clip")
    p.add_argument("-b", "--batch_size", type=int, default=8, help="videos per batch")
    p.add_argument("-j", "--workers", type=int, default=None,
                   help=f"data-loading workers (default: {FEATURE_WORKERS}; 0 when decoding on the GPU, which "
                        "runs in the main process)")
    p.add_argument("--decode_device", default=None, choices=DECODE_DEVICES,
                   help="where frames are decoded (default: the checkpoint's)")
    p.add_argument("--probe_train", default=None,
                   help="features of the training videos (.npz from this tool): fit a linear probe on them, "
                        "score it on these videos, write <out>.probe.json")
    p.add_argument("--random_init", action="store_true",
                   help="features of the checkpoint's network with fresh random weights (a baseline)")
    p.add_argument("--seed", type=int, default=0, help="initialisation seed for --random_init")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    setup_logging()
    if args.clips < 1:
        raise SystemExit("--clips must be >= 1")
    try:
        model, cfg = feature_model(args.checkpoint, args.random_init, args.seed)
    except CheckpointError as err:
        raise SystemExit(f"extract_features.py: error: {err}") from None
    cfg["test_windows"] = args.clips
    if args.decode_device:
        cfg["decode_device"] = args.decode_device
    if hasattr(model, "test_windows"):
        model.test_windows = args.clips
    # the run's own list files, unless another root is given (then that root's lists)
    lists = {} if args.root_path else dict(train_list=cfg.get("train_list"), val_list=cfg.get("val_list"))
    dataset_cfg = get_dataset_config(cfg["dataset"], root=args.root_path or cfg.get("root_path"),
                                     split=cfg.get("split", 1), num_class=cfg.get("num_class"),
                                     data_format=cfg.get("data_format"), list_order=cfg.get("list_order"),
                                     image_tmpl=cfg.get("image_tmpl"), **lists)
    list_file = args.list or getattr(dataset_cfg, f"{args.subset}_list")
    dataset = build_dataset(cfg, model, dataset_cfg, "test", list_file=list_file, num_clips=args.clips,
                            test_crops=args.crops)
    device = torch.device(args.device)
    model.to(device)
    # as in main.py: on the CPU the loader's workers normalise, on a GPU the device does
    loader_normalize, normalize = place_normalize(DeviceNormalize.from_spec(model.input_spec), device)
    workers = loader_workers(args.workers, cfg["decode_device"], FEATURE_WORKERS)
    loader = build_loader(dataset, "test", args.batch_size, workers, normalize=loader_normalize)
    feats, labels, indices = extract(model, loader, normalize, device, progress=not args.no_progress)
    video_ids = np.array([dataset.video_list.name(i) for i in indices])
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.savez(args.out, features=feats, labels=labels, video_ids=video_ids, indices=indices)
    print(f"=> {feats.shape[0]} videos x {feats.shape[1]} features from {args.checkpoint} -> {args.out}")
    if args.probe_train:
        top1 = linear_probe(args.probe_train, feats, labels)
        with open(os.path.splitext(args.out)[0] + ".probe.json", "w", encoding="utf-8") as f:
            json.dump({"top1": top1, "train": args.probe_train, "num_videos": int(len(labels))}, f, indent=2)
        print(f"=> linear probe (fitted on {args.probe_train}): top-1 {top1:.2f}%")
    return args.out


if __name__ == "__main__":
    main()
