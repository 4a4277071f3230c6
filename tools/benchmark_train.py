"""How much does the framework cost on top of the network? A full training step beside a bare
hand-written loop on the same batch.

full: the batch as main.py's loader gives it, on the device -> TSN (backbone, consensus) ->
      as_output -> loss -> backward -> optimizer step with the parameter groups, driven by
      ops.engine.train_one_epoch itself (schedule, meters, logging bookkeeping included). Where
      the batch is normalised follows ops.transforms.place_normalize: on a GPU the step
      normalises uint8 frames (DeviceNormalize, counted here); on the CPU the loader's workers
      do, so the step starts from float frames.
bare: a float batch already normalised -> the same network written plainly (torchvision ResNet of
      the same depth with its own pooling and fc; for `--arch trivial`, the same 1x1 conv and fc)
      -> mean over segments -> cross-entropy -> backward -> SGD step on one param group.
The two are timed in alternating rounds (median per iteration), so load changes on a shared
machine hit both alike. Reported: the overhead full / bare - 1 (GPU target: <= 10%, i.e. the
full step at >= 90% of the bare loop's throughput) and the fixed cost full - bare per iteration,
which `--arch trivial` (a network that costs next to nothing) isolates (CPU target: <= 100 us).
Both sides get their optimizer from main.make_optimizer (SGD, momentum 0.9, weight decay 5e-4):
the full step over TSN's parameter groups, the bare loop over one group. Neither clips gradients.

    python tools/benchmark_train.py --arch resnet18 --num_segments 4 --crop_size 112 --batch_size 8
    python tools/benchmark_train.py --arch trivial --iters 200 --rounds 15 --threads 1
"""
import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from main import make_optimizer  # noqa: E402
from ops.engine import LRSchedule, amp_dtype, train_one_epoch  # noqa: E402
from ops.model_api import IMAGENET_SPEC  # noqa: E402
from ops.models import build_model  # noqa: E402
from ops.policies import build_param_groups, merge_equal_groups  # noqa: E402
from ops.transforms import DeviceNormalize, place_normalize  # noqa: E402
from ops.tsn import TSN  # noqa: E402
from opts import add_amp_arg, default_config  # noqa: E402


class Trivial(nn.Sequential):
    """A backbone that costs next to nothing (a 1x1 conv to 16 channels), so that what remains of
    a step is the loop itself. A Sequential, as the bare loop's layers are: the backbone is the
    user's network, the same on both sides, not the framework's cost."""

    feature_dim = 16

    def __init__(self):
        super().__init__(nn.Conv2d(3, self.feature_dim, 1))
        self.input_spec = dict(IMAGENET_SPEC)


def bare_network(arch, num_class):
    """The network of the bare loop: [N, 3, H, W] -> [N, num_class]."""
    if arch == "trivial":
        return nn.Sequential(nn.Conv2d(3, Trivial.feature_dim, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Dropout(0.5), nn.Linear(Trivial.feature_dim, num_class))
    return getattr(torchvision.models, arch)(num_classes=num_class)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="resnet18", choices=["trivial", "resnet18", "resnet34", "resnet50", "resnet101"])
    p.add_argument("--num_segments", type=int, default=4)
    p.add_argument("--crop_size", type=int, default=112)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--num_class", type=int, default=101)
    p.add_argument("--iters", type=int, default=10, help="timed iterations per round")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds of bare and full")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    add_amp_arg(p)
    p.add_argument("--channels_last", action="store_true",
                   help="channels-last memory format for both models and inputs (as main.py --channels_last)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                   help="wall-clock time, or this process's CPU time (a CPU run on a shared machine: time spent "
                        "waiting for a core is not counted)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    b, k, s, c = args.batch_size, args.num_segments, args.crop_size, args.num_class
    dtype = amp_dtype(args.amp)

    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    if args.arch == "trivial":
        model = TSN(Trivial(), c, k, dropout=0.5, partial_bn=False, crop_size=s)
    else:
        model = build_model(default_config(model="tsn", arch=args.arch, num_class=c, num_segments=k, crop_size=s,
                                           dropout=0.5, partial_bn=False))
    model = model.to(device, memory_format=fmt)
    loader_normalize, normalize = place_normalize(
        DeviceNormalize.from_spec(model.input_spec, channels_last=args.channels_last), device)
    recipe = argparse.Namespace(optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4)
    optimizer = make_optimizer(recipe, merge_equal_groups(build_param_groups(model, recipe.lr, recipe.weight_decay)))
    schedule = LRSchedule(optimizer, 0.01, "step", 1, args.iters)
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp == "fp16")
    frames = torch.randint(0, 256, (b, 1, k, s, s, 3), dtype=torch.uint8, device=device)
    if loader_normalize is not None:
        frames = loader_normalize(frames)
    labels = torch.randint(0, c, (b,), device=device)
    batches = [(frames, labels, torch.arange(b), [])] * args.iters

    bare = bare_network(args.arch, c).to(device, memory_format=fmt)
    bare_opt = make_optimizer(recipe, [dict(params=list(bare.parameters()))])
    x = torch.randn(b * k, 3, s, s, device=device).contiguous(memory_format=fmt)

    def run_full():
        train_one_epoch(model, batches, optimizer, schedule, scaler, normalize, device, 0, c, amp=args.amp,
                        progress=False, print_freq=0)

    def run_bare():
        bare.train()
        for _ in range(args.iters):
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = F.cross_entropy(bare(x).view(b, k, c).mean(1).float(), labels)
            bare_opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(bare_opt)
            scaler.update()

    clock = time.process_time if args.clock == "cpu" else time.perf_counter

    def timed(fn):
        sync(device)
        start = clock()
        fn()
        sync(device)
        return (clock() - start) / args.iters

    run_bare(), run_full()  # warm-up
    times = {"bare": [], "full": []}
    for _ in range(args.rounds):
        times["bare"].append(timed(run_bare))
        times["full"].append(timed(run_full))
    med = {name: statistics.median(t) for name, t in times.items()}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{args.arch}, K={k}, {s}x{s}, batch {b}, {args.amp or 'fp32'}"
          f"{', channels_last' if args.channels_last else ''}, {name}, {args.clock} clock")
    print("| loop | ms / iteration | clips / s |")
    print("| --- | ---: | ---: |")
    for key in ("bare", "full"):
        print(f"| {key} | {med[key] * 1000:.1f} | {b / med[key]:.1f} |")
    ratios = sorted(f / b_ - 1 for f, b_ in zip(times["full"], times["bare"]))
    extra = sorted(1e6 * (f - b_) for f, b_ in zip(times["full"], times["bare"]))
    print(f"overhead of the full step: {100 * (med['full'] / med['bare'] - 1):+.1f}% (median; per round "
          f"{100 * ratios[0]:+.1f}% to {100 * ratios[-1]:+.1f}%)")
    print(f"fixed cost of the full step: {statistics.median(extra):+.0f} us per iteration (median of the rounds' "
          f"differences; per round {extra[0]:+.0f} to {extra[-1]:+.0f} us)")


if __name__ == "__main__":
    main()
