"""Parameters and FLOPs of any registered model at a given input (and, optionally, its speed).

    python tools/model_info.py --arch stts --clip_len 32 --num_class 101
    python tools/model_info.py --model tsn --arch resnet50 --consensus_type TRN --num_segments 8
    python tools/model_info.py --arch i3d --clip_len 64 --speed --device cuda
    python tools/model_info.py --all            # markdown table of every registered model

Any model/data flag of main.py is accepted (--arch, --model, --ssl, --consensus_type,
--num_segments, --new_length, --clip_len, --crop_size, --num_class, ...); the input is the one the
data pipeline would feed the model in validation (its sampler's clips x frames at its crop size).
FLOPs are counted by torch.utils.flop_counter: a multiply-add counts as 2 FLOPs (papers often
quote multiply-adds, half these). Counting runs on the `meta` device by default, so it allocates
nothing and computes nothing; --speed needs a real device.
"""
import argparse
import contextlib
import os
import sys
import time
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from opts import build_train_parser, default_config  # noqa: E402
from ops.data import default_sampler, default_transform  # noqa: E402
from ops.model_api import as_output  # noqa: E402
from ops.models import BACKBONES, MODELS, build_model, model_label  # noqa: E402

# Settings the --all table uses where a model is usually quoted at something other than main.py's
# defaults: the clip lengths of the published settings (STTS project: 32 frames; VTDL: R3D 16
# frames, I3D fine-tuned on 64; the zoos' I3D and SlowOnly R50: 8; MMAction2's R(2+1)D-34: 8,
# PyTorchVideo's r2plus1d_r50: 16), and a clip model for VTDL's encoder.
REFERENCE_SETTINGS = {
    "c3d": dict(clip_len=32), "r2plus1d": dict(clip_len=32), "stts": dict(clip_len=32), "stts_a": dict(clip_len=32),
    "r3d18": dict(clip_len=16), "i3d": dict(clip_len=64), "vtdl": dict(arch="r3d18", clip_len=16),
    "i3d_r50": dict(clip_len=8), "slowonly_r50": dict(clip_len=8),
    "r2plus1d_r34": dict(clip_len=8), "r2plus1d_r50": dict(clip_len=16),
    "cpc_trans_ft": dict(arch="resnet18"),   # its encoder is DPC's ResNet-18 variant, whatever --arch says
}
DEFAULT_NUM_CLASS = 101


def run_config(argv=(), **overrides):
    """main.py's run configuration (a dict) for the given model/data flags, with `overrides`;
    num_class defaults to 101 (UCF101)."""
    args = build_train_parser().parse_args(["custom", "RGB", *argv])
    cfg = default_config(**dict(vars(args), **overrides))
    cfg["num_class"] = cfg["num_class"] or DEFAULT_NUM_CLASS
    return cfg


def count_parameters(model):
    """(all parameters, trainable parameters), shared tensors counted once."""
    params = {id(p): p for p in model.parameters()}.values()
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def input_shape(model, cfg, batch=1):
    """The float input the model gets from the data pipeline in validation, as a shape:
    [B, T, 3, H, W] (frames) or [B, 3, T, H, W] (clip), with a view axis after B when the model
    takes several views per item (VTDL). The views, T and the crop come from running the
    model's sampler and transform on a blank video."""
    spec = model.input_spec
    sampler = model.make_sampler("val") if hasattr(model, "make_sampler") else default_sampler(cfg, spec, "val")
    transform = model.make_transform("val") if hasattr(model, "make_transform") else \
        default_transform(cfg, spec, SimpleNamespace(flip="never", flip_map={}), "val")
    rng = np.random.default_rng(0)
    indices = sampler(1000, rng)
    side = max(spec.crop_size, spec.scale_size if isinstance(spec.scale_size, int) else spec.crop_size)
    frames, _ = transform(np.zeros((*indices.shape, side, side * 4 // 3, 3), np.uint8), 0, rng)
    views, t, h, w, _ = frames.shape
    item = [t, 3, h, w] if spec.layout == "frames" else [3, t, h, w]
    return [batch, views, *item] if views > 1 else [batch, *item]


def count_flops(model, x):
    """FLOPs of one forward pass of `model` (in eval mode) on x."""
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops()


def module_flops(model, shape, depth=2):
    """[(module name, FLOPs)] of one forward pass, for the modules at most `depth` levels deep."""
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(shape, device=next(model.parameters()).device))
    return sorted((name, sum(ops.values())) for name, ops in counter.get_flop_counts().items()
                  if name != "Global" and name.count(".") < depth)


def describe(cfg, device="meta", batch=1):
    """{model, input, params, trainable, flops} of the model of `cfg` at batch `batch`. On `meta`, a
    model that cannot run there (it reads a tensor's values, e.g. a mask check) is counted on the CPU."""
    if device != "meta":
        return _describe_on(cfg, device, batch)
    try:
        return _describe_on(cfg, "meta", batch)
    except (RuntimeError, NotImplementedError) as err:
        print(f"=> {model_label(cfg)} does not run on the meta device ({str(err).splitlines()[0]}); "
              "counting on the CPU", file=sys.stderr)
        return _describe_on(cfg, "cpu", batch)


def _describe_on(cfg, device, batch):
    with torch.device(device):
        with contextlib.redirect_stdout(sys.stderr):  # builders' notes must not break the table
            model = build_model(cfg)
        shape = input_shape(model, cfg, batch)
        total, trainable = count_parameters(model)
        return dict(model=model, input=shape, params=total, trainable=trainable,
                    flops=count_flops(model, torch.zeros(shape)))


def measure_speed(model, shape, device, iters=10, warmup=3, train_batch=8):
    """Clips/s of inference (eval, no grad, batch shape[0]) and of a training step (forward,
    backward, SGD step at batch `train_batch`) on `device`, synthetic inputs and labels."""
    def timed(step, n):
        for _ in range(warmup):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(n):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    model.to(device).eval()
    x = torch.randn(shape, device=device)
    with torch.no_grad():
        infer = shape[0] * iters / timed(lambda: model(x), iters)
    model.train()
    xt = torch.randn([train_batch, *shape[1:]], device=device)
    labels = torch.randint(0, getattr(model, "num_class", 2), (train_batch,), device=device)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def train_step():
        out = as_output(model(xt))
        loss = sum(out["losses"].values()) + (F.cross_entropy(out["logits"], labels) if out["logits"] is not None
                                               else 0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    train = train_batch * iters / timed(train_step, iters)
    return infer, train


def registry_configs(argv=()):
    """One run configuration per registered model at its usual input: each 2D backbone in TSN,
    TSM (TSN + temporal shift on ResNet-50), each other family on main.py's default backbone, each
    whole (clip) model, each pre-training method."""
    configs = []
    for name in MODELS.names():
        settings = REFERENCE_SETTINGS.get(name, {})
        role = MODELS.role(name)
        if name == "tsn":
            configs += [run_config(argv, model="tsn", arch=backbone) for backbone in BACKBONES.names()]
            configs.append(run_config(argv, model="tsn", arch="resnet50", shift=True))
        elif role == "family":
            configs.append(run_config(argv, **{"model": name, **settings}))
        else:
            configs.append(run_config(argv, **{"arch" if role == "whole" else "ssl": name, **settings}))
    return configs


def fmt_row(label, info, speed=None):
    """A table row; FLOPs per item, whatever --batch was counted."""
    shape = "x".join(str(s) for s in info["input"][1:])
    row = f"| {label} | {shape} | {info['params']:,} | {info['flops'] / info['input'][0] / 1e9:.2f} |"
    if speed is not None:
        row += f" {speed[0]:.1f} | {speed[1]:.1f} |"
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--all", action="store_true", help="a markdown table of every registered model")
    p.add_argument("--batch", type=int, default=1, help="batch size of the counted forward pass")
    p.add_argument("--device", default=None,
                   help="device to build on: meta (default; counts only) or cpu/cuda (default cuda with --speed)")
    p.add_argument("--speed", action="store_true",
                   help="also measure clips/s: inference at --batch and a training step at --train_batch")
    p.add_argument("--train_batch", type=int, default=8, help="batch of the timed training step")
    p.add_argument("--iters", type=int, default=10, help="timed iterations for --speed")
    p.add_argument("--breakdown", action="store_true", help="also print the FLOPs of every module down to a depth")
    p.add_argument("--breakdown_depth", type=int, default=2, help="module depth of --breakdown")
    args, rest = p.parse_known_args(argv)
    device = args.device or ("cuda" if args.speed and torch.cuda.is_available() else "cpu" if args.speed else "meta")
    if args.speed and device == "meta":
        p.error("--speed needs a real device (--device cpu or cuda)")

    configs = registry_configs(rest) if args.all else [run_config(rest)]
    header = "| model | input (per item) | parameters | GFLOPs (per item) |"
    if args.speed:
        header += " inference clips/s | training clips/s |"
    print(header)
    print("|" + " --- |" * (header.count("|") - 1))
    for cfg in configs:
        info = describe(cfg, device, args.batch)
        speed = measure_speed(info["model"], info["input"], torch.device(device), args.iters,
                              train_batch=args.train_batch) if args.speed else None
        print(fmt_row(model_label(cfg), info, speed), flush=True)
        if args.breakdown:
            for name, flops in module_flops(info["model"], info["input"], args.breakdown_depth):
                print(f"    {name:<40} {flops / 1e9:10.3f} GFLOPs")
    if not args.all:
        total, trainable = info["params"], info["trainable"]
        print(f"\n{model_label(configs[0])}: input {info['input']}, {total:,} parameters ({trainable:,} trainable), "
              f"{info['flops'] / 1e9:.3f} GFLOPs (torch.utils.flop_counter, multiply-add = 2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
