"""Train (or validate) any model of the framework: TSN with any consensus block, STTNet, 3D clip
models, or self-supervised pre-training (--ssl).

    python main.py ucf101 RGB --arch resnet50 --num_segments 8 ...
    torchrun --nproc_per_node 2 main.py ...
    python -m torch.distributed.launch --nproc_per_node=2 main.py ...

Logs (log.txt, args.json, TensorBoard events) go to <root_log>/<run name>/, checkpoints
(ckpt.pth = last, ckpt.best.pth = best validation) to <root_model>/<run name>/.
"""
import logging
import json
import os
import random
import sys

import numpy as np
import torch

from opts import MODEL_OPTIONS, build_train_parser, check_args, default_partial_bn, one_line_errors
from ops import checkpoint as ckpt
from ops.checkpoint_formats import load_weights
from ops import distributed as du
from ops.data import build_dataset, build_loader, preflight, train_aug_of
from ops.dataset import BadSampleError, SkipLimitError, check_skip_ceiling, check_torchcodec, skip_report
from ops.dataset_configs import get_dataset_config
from ops.engine import LRSchedule, RunLog, train_one_epoch, validate
from ops.evaluation import save_confusion_png
from ops.model_api import declared
from ops.models import build_model, model_name, names_whole_model
from ops.policies import (build_param_groups, classifier_is_new, describe_groups, freeze_for_linear_probe,
                          linear_probe_parameters, merge_equal_groups)
from ops.transforms import DeviceNormalize, place_normalize


RUN_TITLES = {"sttnet": "STTNet", "tsn": "TSN"}


def run_name(args):
    """<model>_<dataset>_<modality>_<arch>_<consensus>_segment<K>_e<epochs>[_suffix], <model> saying
    what is trained (STTNet, TSN, or the registry name: cpc_trans_ft, vtdl, ...). TSM's shift follows
    the arch as in TSM's names (resnet50_shift8_blockres[_tpool]); a pre-training method has no
    consensus; a 3D clip model names itself and has no segments or consensus:
    <model>_<dataset>_<modality>[_<arch> under SSL]_clip<T>[_stride<s>]_e<epochs>."""
    model = model_name(vars(args))
    clip_model = names_whole_model(args.arch)
    arch = [] if args.arch == model else [args.arch]
    if args.shift:
        arch = [arch[0] + f"_shift{args.shift_div}_{args.shift_place}" + ("_tpool" if args.temporal_pool else "")]
    if clip_model:
        stride = args.frame_stride or 1   # None before the model's default is resolved
        frames = f"clip{args.clip_len}" + (f"_stride{stride}" if stride != 1 else "")
    else:
        frames = f"segment{args.num_segments}"
    head = [] if args.ssl or clip_model else [args.consensus_type]
    name = "_".join([RUN_TITLES.get(model, model), args.dataset, args.modality, *arch, *head, frames,
                     f"e{args.epochs}"])
    return f"{name}_{args.suffix}" if args.suffix else name


def dataset_config(args, parser):
    """The dataset config with the command line's overrides (no file is read)."""
    try:
        return get_dataset_config(args.dataset, root=args.root_path, split=args.split, num_class=args.num_class,
                                  train_list=args.train_list, val_list=args.val_list, data_format=args.data_format,
                                  list_order=args.list_order, image_tmpl=args.image_tmpl)
    except ValueError as err:
        parser.error(str(err))


def data_settings(dataset_cfg):
    """The run configuration's data entries, as the dataset config resolves them."""
    return dict(num_class=dataset_cfg.num_class, root_path=dataset_cfg.root, train_list=dataset_cfg.train_list,
                val_list=dataset_cfg.val_list, data_format=dataset_cfg.data_format,
                list_order=dataset_cfg.list_order, image_tmpl=dataset_cfg.image_tmpl)


def print_config(args, parser):
    """--print_config: the configuration this command trains with, as its args.json would record
    it (the model's published defaults, the dataset's settings, partial BN and the training crop
    resolved), without reading any data: the model is built without weights for its input spec."""
    dataset_cfg = dataset_config(args, parser)
    config = dict(vars(args), **data_settings(dataset_cfg), trains=model_name(vars(args)), store_name=run_name(args))
    config.pop("local_rank")
    if config["partial_bn"] is None:
        config["partial_bn"] = default_partial_bn(args)
    spec = build_model(dict(config, pretrain="none")).input_spec
    config["train_aug"] = train_aug_of(config, spec, dataset_cfg)
    print(json.dumps(config, indent=1, sort_keys=True))
    return config


def resolve_dataset(args, parser):
    """The dataset config with the command line's overrides; list files must exist."""
    dataset_cfg = dataset_config(args, parser)
    needed = [("val", dataset_cfg.val_list)] + ([] if args.evaluate else [("train", dataset_cfg.train_list)])
    for subset, path in needed:
        if not path or not os.path.isfile(path):
            parser.error(f"{subset} list file not found: {path} (dataset root {dataset_cfg.root!r}; "
                         f"see --root_path, $STTNET_DATA, --{subset}_list)")
    if dataset_cfg.data_format == "video" and args.decoder == "torchcodec":
        try:
            check_torchcodec()
        except ImportError as err:
            parser.error(str(err))
    return dataset_cfg


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_cuda_flags(tf32, deterministic):
    """TF32 tensor cores for fp32 matmuls and convolutions (--no_tf32: full fp32), and cuDNN's
    autotuner, which pays off because training shapes are fixed (off with --deterministic)."""
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = not deterministic


def make_optimizer(args, groups):
    """The optimizer over `groups`, with torch's fused kernels (fused=True): one kernel per group
    for every parameter at once, on the CPU and on CUDA, where the per-tensor loop (torch's CPU
    choice) or the multi-tensor kernels (its CUDA choice) run several per group; and GradScaler
    hands a fused optimizer the inf check on the device instead of reading it on the host every
    step. A checkpoint's groups bring their own fused/foreach flags along; this run's are kept."""
    kernels = dict(fused=True, foreach=None)
    if args.optimizer == "sgd":
        optimizer = torch.optim.SGD(groups, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
                                    **kernels)
    else:
        cls = torch.optim.Adam if args.optimizer == "adam" else torch.optim.AdamW
        optimizer = cls(groups, lr=args.lr, weight_decay=args.weight_decay, **kernels)

    def keep_kernels(opt):
        for group in opt.param_groups:
            group.update(kernels)
    optimizer.register_load_state_dict_post_hook(keep_kernels)
    return optimizer


def make_schedule(args, optimizer, iters_per_epoch):
    return LRSchedule(optimizer, args.lr, args.lr_type, args.epochs, iters_per_epoch, args.lr_steps,
                      args.warmup_epochs, patience=args.lr_patience, decay=args.lr_decay)


def format_stats(stats, names=("loss", "top1", "top5", "mean_class_acc")):
    parts = [f"{n} {stats[n]:.4f}" if n == "loss" else f"{n} {stats[n]:.2f}" for n in names if n in stats]
    extra = [f"{n} {v:.4f}" if "loss" in n else f"{n} {v:.2f}" for n, v in sorted(stats.items())
             if n not in names and isinstance(v, float) and n not in ("lr", "clips_per_s", "data_time", "data_share")]
    return " ".join(parts + extra)


def scalar_stats(stats):
    return {k: v for k, v in stats.items() if isinstance(v, (int, float))}


def main(argv=None):
    parser = one_line_errors(build_train_parser())
    args = check_args(parser.parse_args(argv), parser)
    if args.print_config:
        return print_config(args, parser)
    dataset_cfg = resolve_dataset(args, parser)
    dist = du.init_distributed(args.local_rank, args.dist_backend)
    device = dist.device
    if args.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    if device.type == "cuda":
        set_cuda_flags(args.tf32, args.deterministic)
    store_name = run_name(args)
    log_dir = os.path.join(args.root_log, store_name)
    model_dir = os.path.join(args.root_model, store_name)
    resume_path = args.resume
    if args.auto_resume and not resume_path and os.path.isfile(os.path.join(model_dir, "ckpt.pth")):
        resume_path = os.path.join(model_dir, "ckpt.pth")
    if args.evaluate:
        weights = resume_path or args.tune_from
        if not weights:
            parser.error(f"--evaluate --auto_resume: no checkpoint of this run in {model_dir}")
        # An evaluation is not part of the training run: its log, args and events go to a folder of
        # their own, named after the checkpoint, inside the run's log folder.
        log_dir = os.path.join(log_dir, "evaluate_" + os.path.basename(weights).removesuffix(".pth"))
    config = dict(vars(args), **data_settings(dataset_cfg), store_name=store_name, world_size=dist.world_size,
                  num_threads=torch.get_num_threads(), torch_version=str(torch.__version__))
    config.pop("local_rank")
    if dist.is_main:  # pre-flight: an unwritable or full disk fails now, not after an epoch
        ckpt.check_writable(log_dir, what="log folder")
    log = RunLog(log_dir, rank=dist.rank)
    log.text(f"=> run {store_name} on {dist.world_size} process(es), device {device}")

    resume_flag = "--resume" if args.resume else "--auto_resume"
    try:
        state = ckpt.load_run_checkpoint(resume_path) if resume_path else None
    except ckpt.CheckpointError as err:
        parser.error(f"{resume_flag}: {err}")
    # A resumed run keeps the identity it started with: fine-tuning (the new classifier's x5/x10
    # groups), partial BN and, for a linear probe, which parameters learn.
    started = state["config"] if state else config
    if config["partial_bn"] is None:
        config["partial_bn"] = started.get("partial_bn") if state else default_partial_bn(args)
    config.update(tune_from=started.get("tune_from") or "", trainable=started.get("trainable"),
                  fc_lr5=started.get("fc_lr5", bool(started.get("tune_from"))) if state else False)

    seed_everything(args.seed)
    model = build_model(config)
    # the training crop as resolved (flag, else the dataset's, else the model family's), so
    # args.json and the checkpoint say what was trained with
    config["train_aug"] = train_aug_of(config, model.input_spec, dataset_cfg)
    log.save_json("args.json", ckpt.plain(config))
    # Same initial weights on every rank, then per-rank streams for dropout and model-side
    # augmentation (RBRF/RBRC draws) so the ranks do not repeat each other's random choices.
    torch.manual_seed(args.seed + dist.rank)
    if args.pretrain == "none" and not (args.resume or args.auto_resume or args.tune_from):
        log.text("=> no pretrained weights: training from scratch (--pretrain imagenet --pretrained_weights PATH "
                 "starts a 2D backbone from a local ImageNet file)")
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    frozen = len(model.frozen_bns()) if hasattr(model, "frozen_bns") else 0
    log.text(f"=> model {model_name(config)}: {len(bns) - frozen} of {len(bns)} BatchNorms train"
             + (f" (partial BN: {frozen} frozen at the loaded statistics)" if frozen else ""))
    if dist.distributed and declared(model, "needs_equal_batches") and args.on_bad_sample == "skip":
        parser.error(f"--on_bad_sample skip with {model_name(config)} under DDP: it needs equal batches on every "
                     "rank (VTDL's key queue); clean the list with tools/check_dataset.py, or train in one process")
    log.text("=> the model's settings: " + ", ".join(f"{k} {config[k]}" for k in MODEL_OPTIONS
                                                   if config[k] is not None))
    spec = model.input_spec
    keep_views = declared(model, "takes_views")
    loader_normalize, normalize = place_normalize(DeviceNormalize.from_spec(spec, channels_last=args.channels_last),
                                                  device)
    try:  # a malformed list line or a too-small list: one line naming the file and line
        val_set = build_dataset(config, model, dataset_cfg, "val")
        val_loader = build_loader(val_set, "val", args.batch_size, args.workers, dist.rank, dist.world_size,
                                  pin_memory=device.type == "cuda", prefetch_factor=args.prefetch_factor,
                                  normalize=loader_normalize)
        if not args.evaluate:
            train_set = build_dataset(config, model, dataset_cfg, "train")
            train_loader = build_loader(train_set, "train", args.batch_size, args.workers, dist.rank,
                                        dist.world_size, seed=args.seed, pin_memory=device.type == "cuda",
                                        prefetch_factor=args.prefetch_factor, normalize=loader_normalize)
    except ValueError as err:
        parser.error(str(err))
    if not args.evaluate:
        log.text(f"=> {len(train_set)} training and {len(val_set)} validation videos\n{train_set!r}", echo=False)
    # Pre-flight: one item of each list through the real pipeline, and room for the checkpoints.
    for dataset in (val_set,) if args.evaluate else (train_set, val_set):
        preflight(dataset, args.max_skip_fraction)
    if dist.is_main and not args.evaluate:
        slots = 2 if args.optimizer in ("adam", "adamw") else 1
        ckpt.check_writable(model_dir, 2 * ckpt.state_bytes(model, slots), what="checkpoint folder")  # best + last
        removed = ckpt.remove_temporary(model_dir)
        if removed:
            log.text(f"=> removed {len(removed)} temporary file(s) of interrupted checkpoint writes: "
                     f"{', '.join(removed)}")

    if args.sync_bn and dist.distributed:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last if spec.layout == "frames" else torch.channels_last_3d)

    report = None   # what --tune_from loaded
    if args.tune_from and not state:
        try:
            report = load_weights(model, args.tune_from, allow_partial=args.allow_partial_load)
        except ValueError as err:
            parser.error(f"--tune_from: {err}")
        # x5 / x10 on the classifier only when it is new (another class count), not when the
        # checkpoint provided it (same-dataset fine-tuning).
        config["fc_lr5"] = classifier_is_new(report["missing"])
    groups = build_param_groups(model, args.lr, args.weight_decay, fc_lr5=config["fc_lr5"])
    log.text("=> parameter groups:\n" + describe_groups(groups), echo=False)
    optimizer = make_optimizer(args, merge_equal_groups(groups))
    schedule = make_schedule(args, optimizer, 0 if args.evaluate else len(train_loader))
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp == "fp16")

    start_epoch, best_metric, best_epoch = 0, None, None
    best_path = os.path.join(model_dir, "ckpt.best.pth")
    if state:
        try:
            ckpt.resume(state, model, optimizer, schedule, scaler)
        except (RuntimeError, ValueError, KeyError) as err:
            parser.error(f"{resume_flag} {resume_path}: the checkpoint holds a {ckpt.describe(state['config'])} model, "
                         f"this run builds a {ckpt.describe(config)} model ({str(err).strip().splitlines()[0]}); "
                         "--tune_from starts a new run from another model's weights")
        start_epoch, best_metric, best_epoch = state["epoch"], state["best_metric"], state.get("best_epoch")
        log.text(f"=> resumed from {resume_path} after epoch {start_epoch} (best {best_metric})")
        if best_metric is not None and not args.evaluate and not os.path.isfile(best_path):
            best_metric, best_epoch, message = ckpt.repair_best(state, resume_path, best_path, write=dist.is_main)
            log.text(f"=> {message}")
        del state
    if args.train_what == "last" and not config["trainable"]:
        try:
            config["trainable"] = linear_probe_parameters(model, report)
        except ValueError as err:
            parser.error(str(err))
    if config["trainable"]:
        trainable = freeze_for_linear_probe(model, config["trainable"])
        log.text(f"=> linear probe: training only {', '.join(trainable)}")

    # Validation runs the model without DDP (ranks may hold different numbers of batches), compiled
    # too under --compile.
    val_model = torch.compile(model) if args.compile else model
    if dist.distributed:
        model = du.wrap_ddp(model, device, compiled=args.compile)
    if args.compile:
        model = torch.compile(model)

    def run_validation(epoch):
        du.broadcast_buffers(val_model)  # every rank validates rank 0's weights, the ones the checkpoint saves
        stats, skipped = validate(val_model, val_loader, normalize, device, dataset_cfg.num_class, amp=args.amp,
                                  keep_views=keep_views, progress=not args.no_progress,
                                  classifies=not args.ssl)
        if skipped:
            log.text(f"validation: {skip_report(skipped)}")
            check_skip_ceiling(skipped, len(val_set), args.max_skip_fraction, f"validation after epoch {epoch}")
        videos = f" on {stats['num_videos']} videos" if "num_videos" in stats else ""
        log.text(f"epoch {epoch} validation{videos}: {format_stats(stats)}")
        log.scalars("val", scalar_stats(stats), epoch)
        return stats

    if args.evaluate:
        stats = run_validation(start_epoch)
        log.record({"epoch": start_epoch, "val": scalar_stats(stats)})
        if "confusion" in stats and dist.is_main:
            png = save_confusion_png(stats["confusion"], dataset_cfg.class_names,
                                     os.path.join(log_dir, "confusion_val.png"))
            log.text(f"=> confusion matrix: {png}")
        log.close()
        du.cleanup()
        return stats

    for epoch in range(start_epoch, args.epochs):
        train_set.set_epoch(epoch)
        train_loader.sampler.set_epoch(epoch)
        stats, skipped = train_one_epoch(model, train_loader, optimizer, schedule, scaler, normalize, device, epoch,
                                         dataset_cfg.num_class, amp=args.amp, clip_gradient=args.clip_gradient,
                                         keep_views=keep_views, print_freq=args.print_freq,
                                         progress=not args.no_progress, log=log,
                                         agree_on_skips=dist.distributed and args.on_bad_sample == "skip",
                                         max_skip_fraction=args.max_skip_fraction, epochs=args.epochs)
        if stats["samples"] == 0:
            raise SkipLimitError(f"epoch {epoch + 1} trained on nothing: every sample was skipped as bad; "
                                 f"first: {skipped[0] if skipped else 'none'}")
        log.text(f"epoch {epoch + 1} train: {format_stats(stats)} lr {stats['lr']:.3e} "
                 f"{stats['clips_per_s']:.1f} clips/s data {stats['data_time']:.3f}s/iter "
                 f"({100 * stats['data_share']:.1f}% of the epoch)")
        log.text(f"epoch {epoch + 1}: {skip_report(skipped)}", echo=bool(skipped))
        log.scalars("train", scalar_stats(stats), epoch + 1)
        is_best, record = False, {"epoch": epoch + 1, "train": scalar_stats(stats)}
        if (epoch + 1) % args.eval_freq == 0 or epoch + 1 == args.epochs:
            val_stats = run_validation(epoch + 1)
            record["val"] = scalar_stats(val_stats)
            schedule.observe(val_stats["loss"])
            metric = val_stats["top1"] if "top1" in val_stats else -val_stats["loss"]
            is_best = best_metric is None or metric > best_metric
            best_metric, best_epoch = (metric, epoch + 1) if is_best else (best_metric, best_epoch)
            log.text(f"=> best {'top1' if 'top1' in val_stats else '-loss'} so far {best_metric:.3f}")
        log.record(record)
        rng = ckpt.gather_rng_states()  # collective: every rank takes part
        if dist.is_main:
            state = ckpt.make_checkpoint(model, optimizer, schedule, scaler, epoch + 1, best_metric, config, rng,
                                         best_epoch)
            if is_best:  # first, so that the ckpt.pth recording it never exists without it
                ckpt.save_checkpoint(state, best_path)
            ckpt.save_checkpoint(state, os.path.join(model_dir, "ckpt.pth"))
        du.barrier()
    log.text(f"=> done: logs in {log_dir}, checkpoints in {model_dir}")
    log.close()
    du.cleanup()
    return best_metric


def entry(argv=None):
    """main() with every failure the user can fix reported in one line, exit status 1."""
    try:
        main(argv)
    except BadSampleError as err:
        fail(f"bad sample: {err} (use --on_bad_sample skip to skip and report such samples)")
    except (SkipLimitError, ckpt.CheckpointError) as err:
        fail(str(err))
    except OSError as err:  # an unwritable or full disk under the log folder
        fail(f"{err.strerror or err}: {err.filename}" if err.filename else str(err))
    except torch.distributed.DistBackendError as err:  # a peer process stopped (its own line says why)
        fail(f"stopped: another process of the run failed ({str(err).strip().splitlines()[0]})")


def fail(message):
    """The one line on stderr (naming the rank under torchrun, whose own failure summary follows),
    and in the run's log.txt when logging to it was set up."""
    logging.getLogger(__name__).error(message, extra={"console": False})
    rank = f"[rank {du.get_rank()}] " if du.get_world_size() > 1 else ""
    print(f"main.py: error: {rank}{message}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    entry()
