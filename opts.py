"""Every command-line option, declared once with its default and help, and checked once.

main.py's parser is built here (tools/model_info.py and tools/convert_checkpoint.py reuse it);
test_models.py and the other tools declare their own few flags and take the shared pieces from
here (decoder choices, --amp, the skip ceiling, the help format, one-line errors), so a flag means
the same thing everywhere. `check_args` is the single place where options are cross-checked;
nothing deeper in the code reads a global `args`.
"""
import argparse
import os
import sys

VIDEO_DECODERS = ("decord", "pyav", "torchcodec")   # ops.dataset.READERS
VIDEO_DECODER = "torchcodec"   # the default: the fastest measured, exact (docs/benchmarks.md)
JPEG_DECODERS = ("simplejpeg", "torchcodec", "pil", "torchvision")   # ops.dataset.JPEG_DECODERS
JPEG_DECODER = "simplejpeg"    # the default: the fastest measured, strict about corrupt data
DECODE_DEVICES = ("cpu", "cuda")
TRAIN_WORKERS = 4


def loader_workers(workers, decode_device, default):
    """Loader workers: `workers` when given (-j), else `default`, or 0 when frames are decoded on
    the GPU (that decoding runs in the main process: CUDA does not run in forked workers)."""
    if workers is not None:
        return workers
    return 0 if decode_device == "cuda" else default


def add_skip_ceiling(group):
    """--max_skip_fraction, shared by main.py and test_models.py."""
    group.add_argument("--max_skip_fraction", type=float, default=0.1,
                       help="with --on_bad_sample skip: stop with an error once more than this fraction of an "
                            "epoch's (or a test's) samples are bad (a wrong root or format, not a few damaged "
                            "videos); 1 never stops")


def add_data_args(parser):
    g = parser.add_argument_group("data")
    g.add_argument("dataset", help="dataset key from ops/dataset_configs.py (ucf101, hmdb51, something, "
                   "somethingv2, jester, kinetics, synthetic) or 'custom' with --train_list/--val_list/--num_class")
    g.add_argument("modality", choices=["RGB"], help="input modality (RGB frames)")
    g.add_argument("--root_path", default=None,
                   help="dataset root; default: $STTNET_DATA/<dataset> (or the dataset's own default)")
    g.add_argument("--train_list", default=None, help="override the training list file")
    g.add_argument("--val_list", default=None, help="override the validation list file")
    g.add_argument("--num_class", type=int, default=None, help="number of classes (needed for 'custom')")
    g.add_argument("--split", type=int, default=1, choices=[1, 2, 3], help="official split (ucf101, hmdb51)")
    g.add_argument("--data_format", default=None, choices=["rawframes", "video"],
                   help="frames in folders or videos decoded on the fly (default: the dataset's)")
    g.add_argument("--decoder", default=VIDEO_DECODER, choices=VIDEO_DECODERS,
                   help="video decoder (torchcodec needs FFmpeg's shared libraries: `make ffmpeg`)")
    g.add_argument("--jpeg_decoder", default=JPEG_DECODER, choices=JPEG_DECODERS,
                   help="JPEG decoder for frame folders (all give the same pixels; simplejpeg is the fastest)")
    g.add_argument("--decode_device", default="cpu", choices=DECODE_DEVICES,
                   help="'cuda': decode on the GPU (nvJPEG for frames with --jpeg_decoder torchcodec, NVDEC for "
                        "videos with --decoder torchcodec) in the main process (-j 0), transforms there too")
    g.add_argument("--no_scaled_decode", action="store_true",
                   help="decode JPEG frames at full size even when the pipeline first scales them to half "
                        "or less (default: decode at 1/2, 1/4 or 1/8 scale in the DCT domain, faster)")
    g.add_argument("--no_roi_decode", action="store_true",
                   help="decode JPEG frames whole, then crop (default: decode only the window the training "
                        "or centre crop keeps, ops/jpeg_roi.py: the same pixels, less CPU)")
    g.add_argument("--list_order", default=None, choices=["path_frames_label", "path_label_frames"],
                   help="field order of the list files (default: the dataset's)")
    g.add_argument("--image_tmpl", default=None, help="frame file name template, e.g. img_{:05d}.jpg")
    g.add_argument("--on_bad_sample", default="error", choices=["error", "skip"],
                   help="bad video/frame: stop with an error naming it, or skip it, count it and report")
    add_skip_ceiling(g)
    g.add_argument("--num_segments", type=int, default=8, help="K: segments per video (2D models)")
    g.add_argument("--new_length", type=int, default=1, help="L: consecutive frames per segment")
    g.add_argument("--dense_sample", action="store_true", help="I3D-style dense sampling (64-frame window)")
    g.add_argument("--clip_len", type=int, default=16, help="T: frames per clip (3D clip models)")
    g.add_argument("--frame_stride", type=int, default=None,
                   help="stride between clip frames with --clip_sampling consecutive (default: the model's)")
    g.add_argument("--clip_sampling", default=None, choices=["consecutive", "chunks"],
                   help="3D clip models: T consecutive frames at --frame_stride, or one frame per chunk of the whole "
                        "video (the STTS project's published sampling). Default: the model's")
    g.add_argument("--scale_size", type=int, default=None, help="short side before cropping (default 256/224*crop)")
    g.add_argument("--crop_size", type=int, default=None, help="input side (default: the model's)")
    g.add_argument("--no_flip", action="store_true", help="disable random horizontal flips")
    g.add_argument("--train_aug", default=None, choices=["multiscale", "rrc", "scale_crop", "center"],
                   help="training crop: TSN multi-scale crop, random resized crop, scale + random crop, or the "
                        "centre view (default: the dataset's own, else multiscale for 2D models and scale_crop "
                        "for clip models)")
    g.add_argument("-j", "--workers", type=int, default=None,
                   help=f"data-loading worker processes, persistent across epochs and validations (default: "
                        f"{TRAIN_WORKERS}; 0 with --decode_device cuda)")
    g.add_argument("--prefetch_factor", type=int, default=2, help="batches each worker loads ahead")
    return g


def add_model_args(parser):
    from ops.models import BACKBONES, MODELS
    g = parser.add_argument_group("model")
    g.add_argument("--model", default="sttnet",
                   help=f"model family from the registry ({', '.join(MODELS.names(role='family'))}): sttnet is "
                        "STTNet (the default), tsn plain TSN (also with the stmodeling blocks of --consensus_type); "
                        "whole (clip) models are chosen by --arch")
    g.add_argument("--arch", default="resnet50", help=f"2D backbone ({', '.join(BACKBONES.names())}) or whole "
                   f"model ({', '.join(MODELS.names(role='whole'))})")
    g.add_argument("--consensus_type", default="avg", help="segment consensus / spatio-temporal block")
    g.add_argument("--img_feature_dim", type=int, default=256, help="D: per-frame feature size for the blocks")
    g.add_argument("--dropout", type=float, default=None,
                   help="dropout before the classifier (0 disables). Default: the model's published value")
    g.add_argument("--pretrain", default="none", choices=["none", "imagenet"],
                   help="'imagenet' loads backbone weights from --pretrained_weights (never downloads)")
    g.add_argument("--pretrained_weights", default=None, help="local file of torchvision-format weights")
    g.add_argument("--partialbn", dest="partial_bn", action="store_true", default=None,
                   help="TSN's partial BN: freeze every BatchNorm of the backbone but the first, at the statistics "
                        "of the loaded weights (needs --tune_from or --pretrain imagenet). Default: on for --model "
                        "tsn with loaded weights, off otherwise (STTNet's reference trains every BatchNorm)")
    g.add_argument("--no_partialbn", "--npb", dest="partial_bn", action="store_false",
                   help="train every BatchNorm")
    # --- TSM's temporal shift (ops/temporal_shift.py) ---
    g.add_argument("--shift", action="store_true",
                   help="TSM: shift channels between neighbouring frames in every block of a ResNet backbone")
    g.add_argument("--shift_div", type=int, default=8,
                   help="TSM: 1/shift_div of the channels move forward in time and 1/shift_div backward")
    g.add_argument("--shift_place", default="blockres", choices=["blockres", "block"],
                   help="TSM: shift inside the residual branch (blockres) or before the whole block (block)")
    g.add_argument("--temporal_pool", action="store_true",
                   help="TSM: max-pool time by 2 before layer2 (needs --shift; K/2 segments reach the consensus)")
    # --- stmodeling blocks (issue: spatio-temporal blocks) ---
    g.add_argument("--rnn_hidden_size", type=int, default=256,
                   help="hidden size of RNN blocks (BLSTM: half per direction)")
    g.add_argument("--rnn_layer", type=int, default=1, help="layers of RNN blocks")
    g.add_argument("--rnn_dropout", type=float, default=0.2, help="dropout between RNN layers")
    # --- STTNet (issue: aggregator, RBRF, RBRC) ---
    for part, what in (("aggregator", "the SCSA aggregator"), ("rbrf", "the RBRF spatial pretext"),
                       ("rbrc", "the RBRC temporal pretext")):
        g.add_argument(f"--{part}", dest=part, action="store_true", default=True, help=f"--model sttnet: use {what}")
        g.add_argument(f"--no_{part}", dest=part, action="store_false", default=argparse.SUPPRESS,
                       help=f"--model sttnet: leave out {what}")
    g.add_argument("--lambda_rbrf", type=float, default=0.01,
                   help="weight of the RBRF loss (reference notes: ~0.005 on small datasets, ~0.001 on large)")
    g.add_argument("--lambda_rbrc", type=float, default=0.1,
                   help="weight of the RBRC loss (reference notes: ~0.01 on small datasets, ~0.1 on large)")
    g.add_argument("--rbrf_kinds", type=int, default=2, choices=[2, 5],
                   help="RBRF labels: 2 (clip transformed or not) or 5 (which of the four flips)")
    g.add_argument("--rbrf_grid", type=int, default=2,
                   help="RBRF head averages each map over grid x grid cells (1 = global pooling, blind to flips)")
    g.add_argument("--rbrf_hidden", type=int, default=256, help="width of the RBRF head's MLP")
    g.add_argument("--rbrc_ratio", type=float, default=0.5,
                   help="fraction of channels RBRC reverses in time in a chosen clip (the reference: one channel)")
    g.add_argument("--rbrc_hidden", type=int, default=256, help="width of the RBRC head (temporal conv + MLP)")
    g.add_argument("--rbrc_query", default="reversed", choices=["reversed", "clean"],
                   help="what the aggregator's query path takes in training: the RBRC-reversed maps "
                        "(the published design) or the clean maps it sees at evaluation")
    g.add_argument("--scsa_dim", type=int, default=256, help="d: width of the aggregator's attention")
    g.add_argument("--scsa_heads", type=int, default=1, help="attention heads (d must divide by 2 x heads)")
    g.add_argument("--scsa_gamma", type=float, default=0.01, help="initial residual scale gamma of the aggregator")
    g.add_argument("--scsa_norm", action="store_true", help="pre-norm LayerNorm in the aggregator (off in the design)")
    g.add_argument("--scsa_ffn", action="store_true",
                   help="residual feed-forward block after the attention (off in the design)")
    # --- 3D clip models ---
    return g


def add_ssl_args(parser):
    g = parser.add_argument_group("self-supervised pre-training")
    g.add_argument("--ssl", default=None,
                   help="pre-train without labels with this registered method (cpc_trans, vtdl) instead of "
                        "supervised training")
    # --- CPC-Trans / VTDL options ---
    g.add_argument("--num_seq", type=int, default=5, help="CPC-Trans: N steps per clip (one frame each)")
    g.add_argument("--seq_stride", type=int, default=3, help="CPC-Trans: frame stride between steps")
    g.add_argument("--pred_step", type=int, default=3, help="CPC-Trans: P future steps predicted from N - P")
    g.add_argument("--cpc_layers", type=int, default=2, help="CPC-Trans: transformer layers")
    g.add_argument("--cpc_heads", type=int, default=4, help="CPC-Trans: attention heads")
    g.add_argument("--cpc_ff_dim", type=int, default=2048, help="CPC-Trans: transformer feed-forward width")
    g.add_argument("--cpc_dropout", type=float, default=0.1, help="CPC-Trans: transformer dropout")
    g.add_argument("--test_windows", type=int, default=10,
                   help="cpc_trans_ft test: windows of N steps spread evenly over the whole video "
                        "(test_models.py --softmax averages their softmax)")
    g.add_argument("--train_what", default="ft", choices=["ft", "last"],
                   help="'last' = linear probe: cpc_trans_ft trains only BN1d + Linear; other models with "
                        "--tune_from train only what the checkpoint did not provide (the new classifier). "
                        "'ft' trains everything (cpc_trans_ft: encoder at lr/10)")
    g.add_argument("--moco_dim", type=int, default=128, help="VTDL: embedding size")
    g.add_argument("--moco_k", type=int, default=None,
                   help="VTDL: queue length (default: ucf101 5000, hmdb51 3569, kinetics 12500, else 5000)")
    g.add_argument("--moco_m", type=float, default=0.999, help="VTDL: key-encoder EMA momentum")
    g.add_argument("--moco_t", type=float, default=0.07, help="VTDL: softmax temperature")
    g.add_argument("--tca_max", type=float, default=0.1,
                   help="VTDL: temporal consistent augmentation, lambda ~ U(0, tca_max) (0 disables)")
    g.add_argument("--no_temporal_negative", action="store_true",
                   help="VTDL: leave out the same-video, different-time negative")
    g.add_argument("--bn_splits", type=int, default=1,
                   help="VTDL: BatchNorm groups per process; queries and shuffled keys are encoded in this many "
                        "chunks with statistics of their own, which gives one process MoCo's shuffling BN")
    return g


def add_amp_arg(group):
    """--amp, shared by main.py, test_models.py and tools/benchmark_train.py."""
    group.add_argument("--amp", default=None, choices=["bf16", "fp16"],
                       help="mixed precision: bf16 autocast (no loss scaling; Ampere or newer GPUs, CPUs), or "
                            "fp16 autocast with a GradScaler (whose inf check reads the device once per step)")


def add_train_args(parser):
    g = parser.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=50, help="training epochs")
    g.add_argument("-b", "--batch-size", "--batch_size", dest="batch_size", type=int, default=8,
                   help="clips per process (per GPU)")
    g.add_argument("--optimizer", default="sgd", choices=["sgd", "adam", "adamw"], help="optimizer")
    g.add_argument("--lr", "--learning-rate", dest="lr", type=float, default=0.001, help="base learning rate")
    g.add_argument("--lr_type", default="step", choices=["step", "cos", "plateau"],
                   help="schedule: step (x --lr_decay at --lr_steps), cosine, or x --lr_decay on a validation-loss "
                        "plateau")
    g.add_argument("--lr_steps", type=float, nargs="+", default=[20, 40], help="epochs where lr is x --lr_decay")
    g.add_argument("--lr_decay", type=float, default=0.1,
                   help="lr factor of each step / plateau (VTDL's fine-tuning: 0.3)")
    g.add_argument("--warmup_epochs", type=float, default=0, help="linear warm-up length in epochs")
    g.add_argument("--lr_patience", type=int, default=10,
                   help="plateau schedule: validations without val-loss improvement before lr x0.1")
    g.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    g.add_argument("--wd", "--weight-decay", "--weight_decay", dest="weight_decay", type=float, default=5e-4,
                   help="weight decay")
    g.add_argument("--gd", "--clip-gradient", "--clip_gradient", dest="clip_gradient", type=float, default=None,
                   help="clip gradients to this total norm")
    add_amp_arg(g)
    g.add_argument("--sync_bn", action="store_true", help="synchronise BatchNorm statistics across processes")
    g.add_argument("--channels_last", action="store_true",
                   help="channels-last memory format for the model and its input (CUDA convolutions; see "
                        "docs/benchmarks.md)")
    g.add_argument("--no_tf32", dest="tf32", action="store_false",
                   help="CUDA: full fp32 matmuls and convolutions (default: TF32 tensor cores, "
                        "torch.set_float32_matmul_precision('high'))")
    g.add_argument("--compile", action="store_true", help="torch.compile the model (training and validation)")
    g.add_argument("--seed", type=int, default=0, help="random seed (data order, augmentation, init)")
    g.add_argument("--deterministic", action="store_true", help="deterministic kernels (slower)")
    return g


def add_run_args(parser):
    g = parser.add_argument_group("run")
    g.add_argument("--eval-freq", "--eval_freq", dest="eval_freq", type=int, default=1,
                   help="validate every N epochs")
    g.add_argument("--print-freq", "--print_freq", dest="print_freq", type=int, default=20,
                   help="log every N iterations")
    g.add_argument("--root_log", default="log", help="logs go to <root_log>/<store_name>/")
    g.add_argument("--root_model", default="checkpoint", help="checkpoints go to <root_model>/<store_name>/")
    g.add_argument("--suffix", default=None, help="appended to the run name")
    g.add_argument("--resume", default="", help="checkpoint to continue the run from exactly")
    g.add_argument("--auto_resume", action="store_true", help="continue from the latest checkpoint of this run")
    g.add_argument("--tune_from", default="",
                   help="load weights only (fine-tuning), from a checkpoint of this project or of TSM, MMAction2, "
                        "PySlowFast, PyTorchVideo or torchvision (README: Starting from public weights)")
    g.add_argument("--allow_partial_load", action="store_true",
                   help="--tune_from / --pretrained_weights: load what fits and report the rest, instead of stopping "
                        "when anything but the classifier and modules the source never had is left unloaded")
    g.add_argument("--evaluate", "-e", action="store_true",
                   help="validate the weights of --resume/--tune_from once and exit (logs in "
                        "<root_log>/<run name>/evaluate_<checkpoint>/)")
    g.add_argument("--no_progress", action="store_true", help="no progress bars (logs only)")
    g.add_argument("--dist_backend", default=None, choices=["nccl", "gloo"],
                   help="process-group backend (default: nccl on CUDA, gloo on CPU; gloo runs several processes "
                        "on one GPU, which NCCL refuses)")
    g.add_argument("--print_config", action="store_true",
                   help="print the resolved configuration (every option; the model's defaults, the dataset's "
                        "settings and the training crop applied, as args.json records them) and exit")
    g.add_argument("--local_rank", "--local-rank", dest="local_rank", type=int,
                   default=int(os.environ.get("LOCAL_RANK", 0)),
                   help="set by torch.distributed.launch; torchrun uses $LOCAL_RANK")
    return g


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help with each default once: added where the help text does not already state it, and
    left out where there is nothing to show (None, off switches)."""

    def _get_help_string(self, action):
        if "default" in (action.help or "") or action.default in (None, False, argparse.SUPPRESS):
            return action.help
        return super()._get_help_string(action)


def one_line_errors(parser):
    """Errors as one line (`main.py: error: ...`) instead of argparse's long usage block."""
    def error(message):
        print(f"{parser.prog}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)
    parser.error = error
    return parser


def build_train_parser():
    parser = argparse.ArgumentParser(
        description="Train a video action-recognition model (TSN, STTNet, stmodeling blocks, 3D clip "
                    "models) or pre-train one without labels (CPC-Trans, VTDL).",
        formatter_class=HelpFormatter)
    for add in (add_data_args, add_model_args, add_ssl_args, add_train_args, add_run_args):
        add(parser)
    return parser


# Options whose default is the model's own (declared at its registration, MODELS.register(defaults=)).
MODEL_OPTIONS = ("dropout", "crop_size", "frame_stride", "clip_sampling")


def model_defaults(args):
    """The published settings of what a run trains: the SSL method's over its clip model's (--arch)
    over the model family's (--model)."""
    from ops.models import MODELS
    names = [args.model] + [args.arch] * (args.arch in MODELS) + [args.ssl] * bool(args.ssl)
    merged = {}
    for name in names:
        merged.update(MODELS.defaults(name))
    return merged


def resolve_model_defaults(args):
    """Options left unset take the model's value (None where the model has no use for them)."""
    defaults = model_defaults(args)
    for key in MODEL_OPTIONS:
        if getattr(args, key) is None:
            setattr(args, key, defaults.get(key))
    return args


def default_config(**overrides):
    """The run configuration main.py resolves for `custom RGB` with `overrides` (num_class, arch,
    ...), without checking files: the one source of defaults for tests and tools."""
    args = build_train_parser().parse_args(["custom", "RGB"])
    unknown = set(overrides) - set(vars(args))
    if unknown:
        raise KeyError(f"not options of main.py: {', '.join(sorted(unknown))}")
    vars(args).update(overrides)
    resolve_model_defaults(args)
    if args.partial_bn is None:
        args.partial_bn = default_partial_bn(args)
    return vars(args)


def complete_config(cfg):
    """A stored run configuration (a checkpoint's) with options added since it was written set to
    their defaults for its model."""
    # clips were consecutive frames before --clip_sampling existed
    cfg = dict(cfg, clip_sampling=cfg.get("clip_sampling", "consecutive"))
    return {**default_config(**{k: cfg[k] for k in ("model", "arch", "ssl") if k in cfg}), **cfg}


def check_registered(args, parser):
    """Model, backbone and block names must be registry entries (a typo is a one-line error, not a
    traceback from deep inside model construction)."""
    from ops.models import BACKBONES, CONSENSUS, MODELS, names_whole_model
    if not names_whole_model(args.arch) and args.arch not in BACKBONES:
        parser.error(f"--arch {args.arch!r} is neither a 2D backbone ({', '.join(BACKBONES.names())}) "
                     f"nor a whole model ({', '.join(MODELS.names(role='whole'))})")
    if MODELS.role(args.model) != "family":
        parser.error(f"--model {args.model!r} is not a registered model family; known: "
                     f"{', '.join(MODELS.names(role='family'))} (a whole model is named by --arch)")
    if args.ssl and MODELS.role(args.ssl) != "ssl":
        parser.error(f"--ssl {args.ssl!r} is not a registered pre-training method; known: "
                     f"{', '.join(MODELS.names(role='ssl'))}")
    if args.consensus_type not in CONSENSUS:
        parser.error(f"--consensus_type {args.consensus_type!r} is not registered; known: "
                     f"{', '.join(CONSENSUS.names())} (names are case-sensitive)")


def loads_weights(args):
    """Whether the run starts from loaded weights (a resumed run is judged by the run it continues)."""
    return args.pretrain == "imagenet" or bool(args.tune_from)


def default_partial_bn(args):
    """Partial BN freezes BatchNorms at loaded statistics, so it is on only on top of loaded weights,
    and only for TSN (the STTNet reference's switch could never turn on: every BatchNorm trains)."""
    from ops.models import names_whole_model
    return loads_weights(args) and args.model == "tsn" and not names_whole_model(args.arch) and not args.ssl


def resolve_partial_bn(args, parser):
    """--partialbn without weights is an error; unset, the default of `default_partial_bn` applies
    (a resumed run keeps its own setting: main.py reads it from the checkpoint)."""
    continues = bool(args.resume or args.auto_resume)
    if args.partial_bn and not loads_weights(args) and not continues:
        parser.error("--partialbn freezes BatchNorms at the statistics of loaded weights, and none are loaded: "
                     "give --tune_from CHECKPOINT or --pretrain imagenet --pretrained_weights PATH, or drop it")
    if args.partial_bn is None and not continues:
        args.partial_bn = default_partial_bn(args)


def check_shift(args, parser):
    """TSM's options apply to the torchvision ResNets inside TSN-family models."""
    if args.temporal_pool and not args.shift:
        parser.error("--temporal_pool is part of TSM's shift: give --shift as well")
    if not args.shift:
        return
    if not args.arch.startswith("resnet") or args.ssl:
        parser.error(f"--shift: TSM's temporal shift is defined for the ResNet backbones "
                     f"(resnet18/34/50/101), not --arch {args.arch}" + (f" with --ssl {args.ssl}" if args.ssl else ""))
    if args.shift_div < 2:
        parser.error(f"--shift_div must be >= 2 (two folds of C/shift_div channels move; got {args.shift_div})")
    if args.temporal_pool and (args.model != "tsn" or args.num_segments % 2 or args.new_length != 1):
        parser.error("--temporal_pool halves the segments inside the backbone: it needs --model tsn, an even "
                     f"--num_segments and --new_length 1 (got {args.model}, {args.num_segments}, {args.new_length})")


def check_args(args, parser):
    """Cross-check options once, at start; `parser.error` prints a one-line message and exits 2."""
    check_registered(args, parser)
    resolve_model_defaults(args)
    positive = ["num_segments", "new_length", "clip_len", "frame_stride", "epochs", "batch_size", "eval_freq",
                "bn_splits", "prefetch_factor"]
    for name in positive:
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1 (got {getattr(args, name)})")
    if args.bn_splits > args.batch_size:
        parser.error(f"--bn_splits {args.bn_splits} is more BatchNorm groups than clips per process "
                     f"(-b {args.batch_size})")
    if not 0 <= args.dropout < 1:
        parser.error(f"--dropout must be in [0, 1) (got {args.dropout})")
    if args.lr <= 0:
        parser.error(f"--lr must be > 0 (got {args.lr})")
    if not 0 < args.lr_decay <= 1:
        parser.error(f"--lr_decay must be in (0, 1] (got {args.lr_decay})")
    if args.workers is not None and args.workers < 0:
        parser.error("-j/--workers must be >= 0")
    if args.decode_device == "cuda":
        import torch
        if not torch.cuda.is_available():
            parser.error("--decode_device cuda needs a CUDA GPU (torch.cuda.is_available() is False)")
        if args.workers:
            parser.error("--decode_device cuda decodes in the main process (CUDA does not run in forked "
                         "loader workers): give -j 0 or leave -j out")
        if args.data_format != "video" and args.jpeg_decoder != "torchcodec":
            parser.error("--decode_device cuda decodes JPEG frames with nvJPEG through torchcodec: "
                         "give --jpeg_decoder torchcodec (or --data_format video)")
        if args.data_format == "video" and args.decoder != "torchcodec":
            parser.error("--decode_device cuda decodes video with NVDEC through torchcodec: give --decoder torchcodec")
    args.workers = loader_workers(args.workers, args.decode_device, TRAIN_WORKERS)
    if not 0 <= args.max_skip_fraction <= 1:
        parser.error(f"--max_skip_fraction must be in [0, 1] (got {args.max_skip_fraction})")
    check_registered(args, parser)
    if args.train_what == "last" and not args.tune_from and args.model != "cpc_trans_ft" \
            and args.arch != "cpc_trans_ft" and not args.resume:
        parser.error("--train_what last (linear probe) needs --tune_from CHECKPOINT to say what is frozen")
    check_shift(args, parser)
    if args.evaluate and not (args.resume or args.tune_from or args.auto_resume):
        parser.error("--evaluate needs the weights to evaluate: --resume CKPT (or --tune_from CKPT, or "
                     "--auto_resume for this run's last checkpoint); it would score a randomly initialised model")
    if args.resume and args.tune_from:
        parser.error("--resume continues a run and --tune_from starts a new one: give one of them")
    resolve_partial_bn(args, parser)
    if args.pretrain == "imagenet" and not args.pretrained_weights:
        parser.error("--pretrain imagenet needs --pretrained_weights PATH (a local torchvision-format file); "
                     "nothing is downloaded")
    for flag in ("resume", "tune_from", "pretrained_weights"):
        path = getattr(args, flag)
        if path and not os.path.isfile(path):
            parser.error(f"--{flag}: no such file: {path}")
    return args
