"""Weights from other projects' checkpoints: read safely, recognise the layout, rename by that
layout's rules, load strictly and report.

Used by --tune_from, --pretrained_weights and tools/convert_checkpoint.py. Layouts: this project's
(own, with its self-supervised checkpoints), TSM's TSN/TSM, the STTNet release (TDN), MMAction2,
PySlowFast, PyTorchVideo, torchvision (image and video; timm's ResNets share its names), timm's
MobileNetV2, and TSN's BN-Inception.

A file is read with `torch.load(weights_only=True)`; the non-tensor objects some projects pickle
beside the weights (MMEngine's message hub, numpy values in `meta`) are replaced by an inert
placeholder, so nothing the file names is ever called. The wrappers `model_state` (PySlowFast, PyTorchVideo),
`state_dict` (TSM, MMAction2), `model` (this project) and the `module.` / `_orig_mod.` prefixes
of DataParallel and torch.compile are unpacked.

Each layout has a detector and a renaming rule, written out per project (no matching by suffix).
A rule maps a source key to a part of the target: the backbone (by torchvision's names, e.g. the
ResNets' conv1, bn1, layerI.J.convK / bnK / downsample.0-1, relative to the target's backbone;
a factored (2+1)D conv's parts spatial / norm / temporal),
the classifier, or, for this project's own checkpoints, the whole model by name.

Loading is strict: every backbone tensor must load, and every source tensor must land somewhere.
What the report lists and does not count as an error: the source's classifier when the class
count differs (dropped), the target's classifier and modules the source never had (STTNet's
aggregator and heads over a TSN checkpoint: new), tensors resized by their module's load hook
(`resampled_on_load`), and a self-supervised checkpoint's pretext heads. Anything else left
unloaded raises a ValueError naming it, unless `allow_partial` says partial loading is intended.
"""
import logging
import pickle
import re

import torch
import torch.nn as nn

from ops.checkpoint import CheckpointError, load_checkpoint
from ops.temporal_shift import TemporalPool, TemporalShift

log = logging.getLogger(__name__)

WRAPPERS = ("model_state", "state_dict", "model")
PREFIXES = ("module.", "_orig_mod.")


class Skipped:
    """Stands in for a non-tensor object a checkpoint carries beside its weights: it takes any
    arguments and state and keeps none, so a weights-only load of such a file runs nothing of it."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, item):
        pass

    def extend(self, items):
        pass


def read_checkpoint(path):
    """(state dict with wrapper prefixes removed, the other top-level entries) of a file, read as
    data. Objects of types outside torch's weights-only allowlist become `Skipped` (logged)."""
    try:
        raw = load_checkpoint(path)
    except CheckpointError as err:
        if not isinstance(err.__cause__, pickle.UnpicklingError):
            raise   # empty, truncated, not a torch file: nothing to skip
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
            with torch.serialization.safe_globals([(Skipped, name) for name in unsafe]):
                raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as again:
            raise err from again
        log.info("%s: skipped non-tensor objects of types %s", path, ", ".join(unsafe))
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path} holds a {type(raw).__name__}, not a state dict")
    state, extras = raw, {}
    for wrapper in WRAPPERS:
        if isinstance(raw.get(wrapper), dict):
            state, extras = raw[wrapper], {k: v for k, v in raw.items() if k != wrapper}
            break
    bad = [k for k, v in state.items() if not torch.is_tensor(v)]
    if bad:
        raise CheckpointError(f"{path}: entries of the state dict that are not tensors: {', '.join(map(str, bad[:5]))}")
    return {strip_prefixes(k): v for k, v in state.items()}, extras


def strip_prefixes(key):
    """`module.` (DataParallel) and `_orig_mod.` (torch.compile) removed, however nested."""
    while key.startswith(PREFIXES):
        key = key.split(".", 1)[1]
    return key


# --- layouts: detect(keys) -> bool, rename(key) -> (part, name) or None (no counterpart) ---
# part: "backbone" (name relative to the target's backbone), "classifier" (name: weight/bias),
# "model" (this project's full key), "pretext" (a pre-training head, not fine-tuned).

def _top(keys):
    return {k.split(".", 1)[0] for k in keys}


BLOCK = r"(layer\d+\.\d+)"


# A factored (2+1)D conv's parts in each project -> ours (archs/r2plus1d_resnets.Conv2Plus1d).
MMACTION2_2PLUS1D = {"conv_s": "spatial", "bn_s": "norm", "conv_t": "temporal"}
PYTORCHVIDEO_2PLUS1D = {"conv_xy": "spatial", "norm": "norm", "conv_t": "temporal"}


def _factored(found, parts):
    """A renamed key whose conv (`conv1`, `layerI.J.convK`, `downsample.0`) is a factored (2+1)D
    conv: its part (the source's name, a key of `parts`) by ours. Other keys (a plain conv's
    `convK.weight`, TSM's `convK.net.weight`) pass unchanged."""
    if found is None:
        return None
    part, name = found
    m = re.fullmatch(r"(.*?)(conv\d|downsample\.0)\.(\w+)\.(\w+)", name)
    if m and m[3] in parts:
        name = f"{m[1]}{m[2]}.{parts[m[3]]}.{m[4]}"
    return part, name


def _mmaction2(key):
    """MMAction2's ResNet / ResNetTSM / ResNet3d(SlowOnly) / ResNet2Plus1d backbones and recognizer
    heads: ConvModules (`conv1.conv`, `conv1.bn`), `downsample.conv/bn`, head `cls_head.fc_cls`.
    In ResNet2Plus1d every ConvModule's conv (shortcuts included) is a Conv2plus1d:
    `.conv.conv_s`, `.conv.bn_s`, `.conv.conv_t`."""
    rules = ((r"backbone\.conv1\.conv\.(.+)", r"conv1.\1"),
             (r"backbone\.conv1\.bn\.(.+)", r"bn1.\1"),
             (rf"backbone\.{BLOCK}\.conv(\d)\.conv\.(.+)", r"\1.conv\2.\3"),
             (rf"backbone\.{BLOCK}\.conv(\d)\.bn\.(.+)", r"\1.bn\2.\3"),
             (rf"backbone\.{BLOCK}\.downsample\.conv\.(.+)", r"\1.downsample.0.\2"),
             (rf"backbone\.{BLOCK}\.downsample\.bn\.(.+)", r"\1.downsample.1.\2"))
    if key.startswith("cls_head.fc_cls."):
        return "classifier", key[len("cls_head.fc_cls."):]
    return _factored(_apply(rules, key), MMACTION2_2PLUS1D)


def _pyslowfast(key):
    """PySlowFast's single-pathway ResNets (Slow, I3D, C2D): stem `s1.pathway0_stem.conv/bn`,
    stage S block J `sS.pathway0_resJ.branch1(_bn)` (shortcut), `branch2.a/b/c(_bn)`; head
    `head.projection`."""
    if key.startswith("head.projection."):
        return "classifier", key[len("head.projection."):]
    m = re.fullmatch(r"s1\.pathway0_stem\.(conv|bn)\.(.+)", key)
    if m:
        return "backbone", f"{'conv1' if m[1] == 'conv' else 'bn1'}.{m[2]}"
    m = re.fullmatch(r"s(\d)\.pathway0_res(\d+)\.(branch1|branch1_bn|branch2\.[abc]|branch2\.[abc]_bn)\.(.+)", key)
    if not m:
        return None
    part = {"branch1": "downsample.0", "branch1_bn": "downsample.1"}.get(m[3])
    if part is None:
        conv = "abc".index(m[3][8]) + 1
        part = f"bn{conv}" if m[3].endswith("_bn") else f"conv{conv}"
    return "backbone", f"layer{int(m[1]) - 1}.{m[2]}.{part}.{m[4]}"


def _pytorchvideo(stages):
    """PyTorchVideo's hub ResNets (slow_r50, i3d_r50, r2plus1d_r50): stem `blocks.0.conv/norm`,
    stages `blocks.N.res_blocks.J.branch1_conv/norm`, `branch2.conv_a..c/norm_a..c`, head
    `blocks.M.proj`; r2plus1d_r50's conv_b is a Conv2plus1d (`conv_b.conv_t`, `.norm`,
    `.conv_xy`). `stages`: the block numbers holding res_blocks, in order (i3d_r50 has a pooling
    block between the first two stages)."""
    def by_block(key):
        m = re.fullmatch(r"blocks\.(\d+)\.proj\.(.+)", key)
        if m:
            return "classifier", m[2]
        m = re.fullmatch(r"blocks\.0\.(conv|norm)\.(.+)", key)
        if m:
            return "backbone", f"{'conv1' if m[1] == 'conv' else 'bn1'}.{m[2]}"
        m = re.fullmatch(r"blocks\.(\d+)\.res_blocks\.(\d+)\.(branch1_conv|branch1_norm|branch2\.\w+?_[abc])\.(.+)",
                         key)
        if not m or int(m[1]) not in stages:
            return None
        part = {"branch1_conv": "downsample.0", "branch1_norm": "downsample.1"}.get(m[3])
        if part is None:
            kind, letter = m[3][len("branch2."):].split("_")
            part = f"{'conv' if kind == 'conv' else 'bn'}{'abc'.index(letter) + 1}"
        return "backbone", f"layer{stages.index(int(m[1])) + 1}.{m[2]}.{part}.{m[4]}"

    return lambda key: _factored(by_block(key), PYTORCHVIDEO_2PLUS1D)


def _tsm(key):
    """TSM's TSN (mit-han-lab/temporal-shift-module): `base_model.*` is torchvision's network
    (with the shift, each block's conv1 is `conv1.net`), the classifier `new_fc`."""
    if key.startswith("new_fc."):
        return "classifier", key[len("new_fc."):]
    if key.startswith("base_model."):
        return "backbone", key[len("base_model."):]
    return None


def _sttnet_release(key):
    """The STTNet release (TDN's network): the plain ResNet-50 path is `base_model.conv1/bn1` and
    `base_model.layerN_bak`; the difference stem (conv1_5, resnext_layer1), the blocks' mSE and
    shift modules, the conv biases and its attention have no counterpart here."""
    if key.startswith("new_fc."):
        return "classifier", key[len("new_fc."):]
    return _apply(((r"base_model\.(conv1|bn1)\.(.+)", r"\1.\2"),
                   (r"base_model\.layer(\d)_bak\.(\d+)\.((?:conv|bn)\d|downsample\.\d)\.(.+)", r"layer\1.\2.\3.\4")),
                  key)


def _torchvision(key):
    """torchvision's models, image and video (timm's ResNets use the same names): the network by
    its own names, the classifier `fc` (ResNets), `classifier` (MobileNet, SqueezeNet, S3D) or
    `head` (MViT, Swin3D)."""
    top, _, rest = key.partition(".")
    if top in ("fc", "head", "classifier"):
        return "classifier", key.rsplit(".", 1)[1]
    return "backbone", key


def _timm_mobilenetv2(stage_sizes):
    """timm's mobilenetv2_100 (its EfficientNet builder) onto torchvision's MobileNetV2, the same
    network: stem `conv_stem`/`bn1` -> features.0, stage s block j (`blocks.s.j`) -> features.n
    with n counting blocks from 1, the first (depthwise-separable) block's conv_dw/bn1/conv_pw/bn2
    -> conv.0.0/conv.0.1/conv.1/conv.2, the others' conv_pw/bn1/conv_dw/bn2/conv_pwl/bn3 ->
    conv.0.0/conv.0.1/conv.1.0/conv.1.1/conv.2/conv.3, head `conv_head`/`bn2` -> features.18,
    classifier `classifier`. `stage_sizes`: blocks per stage, from the file."""
    first = {"conv_dw": "conv.0.0", "bn1": "conv.0.1", "conv_pw": "conv.1", "bn2": "conv.2"}
    other = {"conv_pw": "conv.0.0", "bn1": "conv.0.1", "conv_dw": "conv.1.0", "bn2": "conv.1.1",
             "conv_pwl": "conv.2", "bn3": "conv.3"}
    last = 1 + sum(stage_sizes)

    def rename(key):
        m = re.fullmatch(r"(conv_stem|bn1|conv_head|bn2|classifier)\.(\w+)", key)
        if m:
            if m[1] == "classifier":
                return "classifier", m[2]
            where = {"conv_stem": "0.0", "bn1": "0.1", "conv_head": f"{last}.0", "bn2": f"{last}.1"}[m[1]]
            return "backbone", f"features.{where}.{m[2]}"
        m = re.fullmatch(r"blocks\.(\d+)\.(\d+)\.(\w+)\.(\w+)", key)
        if not m:
            return None
        s, j = int(m[1]), int(m[2])
        part = (first if s == 0 else other).get(m[3])
        return ("backbone", f"features.{1 + sum(stage_sizes[:s]) + j}.{part}.{m[4]}") if part else None
    return rename


def _bninception(key):
    """The BN-Inception ImageNet model TSN started from (Caffe names: conv1_7x7_s2, ..._bn), its
    classifier `fc` (TSN's conversion) or `last_linear` (pretrainedmodels')."""
    top = key.split(".", 1)[0]
    if top in ("fc", "last_linear", "classifier"):
        return "classifier", key.rsplit(".", 1)[1]
    return "backbone", key


def _apply(rules, key):
    for pattern, replacement in rules:
        if re.fullmatch(pattern, key):
            return "backbone", re.sub(pattern, replacement, key)
    return None


TORCHVISION_TOPS = ({"conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"},   # ResNet (timm too)
                    {"features", "classifier"},                                      # MobileNet, SqueezeNet, S3D
                    {"stem", "layer1", "layer2", "layer3", "layer4", "fc"},          # VideoResNet
                    {"conv_proj", "pos_encoding", "blocks", "norm", "head"},         # MViT
                    {"patch_embed", "features", "norm", "head"})                     # Swin3D


def detect_layout(keys, extras):
    """(layout name, rename function) for a state dict's keys and the file's other entries."""
    keys = list(keys)
    top = _top(keys)
    if "config" in extras:
        return "own", None
    if any(k.startswith("base_model.") and ("_bak." in k or k.startswith("base_model.conv1_5.")) for k in keys):
        return "sttnet_release", _sttnet_release
    if "base_model" in top and top <= {"base_model", "new_fc"}:
        return "tsm", _tsm
    if "backbone" in top and any(re.search(r"\.(conv|bn)\.(weight|running_mean)$", k) for k in keys):
        return "mmaction2", _mmaction2
    if any(k.startswith("s1.pathway0_stem.") for k in keys):
        return "pyslowfast", _pyslowfast
    if any(".res_blocks." in k for k in keys) and "blocks.0.conv.weight" in keys:
        stages = sorted({int(k.split(".")[1]) for k in keys if ".res_blocks." in k})
        return "pytorchvideo", _pytorchvideo(stages)
    if "conv_stem.weight" in keys and "blocks.0.0.conv_dw.weight" in keys and "conv_head.weight" in keys:
        blocks = {tuple(map(int, k.split(".")[1:3])) for k in keys if k.startswith("blocks.")}
        sizes = [sum(1 for s, _ in blocks if s == stage) for stage in range(max(s for s, _ in blocks) + 1)]
        return "timm", _timm_mobilenetv2(sizes)
    if "conv1_7x7_s2.weight" in keys:
        return "bninception", _bninception
    if any(top <= tops for tops in TORCHVISION_TOPS):
        return "torchvision", _torchvision
    return "own", None


def source_num_class(path):
    """The class count of a checkpoint's classifier (its run configuration's for this project's
    own), or None when it has none."""
    state, extras = read_checkpoint(path)
    layout, rename = detect_layout(state, extras)
    if rename is None:
        return (extras.get("config") or {}).get("num_class")
    rows = [v.shape[0] for k, v in state.items() if rename(k) == ("classifier", "weight")]
    return rows[0] if len(rows) == 1 else None


# --- the target: where its backbone and classifier are ---

def classifier_name(model):
    """The module that outputs the class scores: the last Linear/Conv with num_class outputs
    (for TSN-style models, inside the consensus block); None for a bare backbone."""
    num_class = getattr(model, "num_class", None)
    if num_class is None:
        return None
    tsn = hasattr(model, "base_model") and isinstance(getattr(model, "consensus", None), nn.Module)
    scope, prefix = (model.consensus, "consensus.") if tsn else (model, "")
    names = [name for name, m in scope.named_modules()
             if isinstance(m, (nn.Linear, nn.Conv2d, nn.Conv3d)) and m.weight.shape[0] == num_class]
    return prefix + names[-1] if names else None


def _resampled_on_load(model, key):
    owner, _, name = key.rpartition(".")
    return name in getattr(model.get_submodule(owner), "resampled_on_load", ())


def shift_aliases(model):
    """{key without the `.net` of TSM's shift wrappers: key} for the tensors inside them
    (ops/temporal_shift), so an unshifted network's weights (a TSN checkpoint) go into the shifted
    one, as TSM fine-tunes; the shift itself has no weights."""
    wrappers = sorted((name + ".net." for name, m in model.named_modules()
                       if isinstance(m, (TemporalShift, TemporalPool))), key=len, reverse=True)
    aliases = {}
    for key in model.state_dict():
        plain = key
        for wrapper in wrappers:
            if plain.startswith(wrapper):
                plain = wrapper[:-len("net.")] + plain[len(wrapper):]
        if plain != key:
            aliases[plain] = key
    return aliases


def _plan(state, layout, rename, model, config):
    """{target key: source key} plus the report's lists of what went nowhere."""
    own = model.state_dict()
    head = classifier_name(model)
    backbone = "base_model." if hasattr(model, "base_model") else ""
    aliases = shift_aliases(model)
    plan, unmatched, pretext, dropped = {}, [], [], []
    ssl = (config or {}).get("ssl")
    for key in state:
        if rename is None:  # this project's own checkpoint
            target = key
            if ssl == "vtdl":
                target = key[len("encoder_q."):] if key.startswith("encoder_q.") else None
            part = "model"
        else:
            found = rename(key)
            part, name = found if found else (None, None)
            if part == "backbone":
                target = backbone + name
            elif part == "classifier":
                target = f"{head}.{name}" if head else None
            else:
                target = None
        if target not in own and ".net." not in key:
            target = aliases.get(target, target)
        if target in own:
            plan[target] = key
        elif ssl and rename is None:
            pretext.append(key)
        elif part == "classifier":
            dropped.append(key)
        else:
            unmatched.append(key)
    return plan, unmatched, pretext, dropped


def load_weights(model, path, allow_partial=False):
    """Load the weights of `path` (any layout above) into `model` (a whole model of this project,
    or a bare backbone); returns the report (lists of key names) after logging it. Raises a
    ValueError listing what did not load unless `allow_partial`."""
    state, extras = read_checkpoint(path)
    layout, rename = detect_layout(state, extras)
    config = extras.get("config") if isinstance(extras.get("config"), dict) else None
    own = model.state_dict()
    head = classifier_name(model)
    plan, unexpected, pretext, dropped = _plan(state, layout, rename, model, config)

    selected, mismatched, resampled = {}, [], []
    for target, key in plan.items():
        value, shape = state[key], tuple(own[target].shape)
        if tuple(value.shape) == shape:
            selected[target] = value
        elif _resampled_on_load(model, target):
            selected[target] = value
            resampled.append(f"{target} {tuple(value.shape)} -> {shape}")
        elif head and target.startswith(head + "."):
            dropped.append(key)
        else:
            mismatched.append(f"{key} {tuple(value.shape)} -> {target} {shape}")

    # BatchNorm's step counter, absent from older files, is not a weight: it is never missing.
    missing = sorted(k for k in set(own) - set(selected) if not (k.endswith(".num_batches_tracked") and k not in plan))
    source_tops = _top(plan) if rename is None else set()
    new, unloaded = [], []
    for key in missing:
        is_head = bool(head) and key.startswith(head + ".")
        if rename is None:
            fresh = is_head or key.split(".", 1)[0] not in source_tops
        else:
            fresh = not key.startswith("base_model.") if hasattr(model, "base_model") else is_head
        (new if fresh else unloaded).append(key)

    report = {"layout": layout, "loaded": sorted(selected), "missing": missing, "new": new,
              "unloaded": unloaded, "unexpected": sorted(unexpected), "mismatched": sorted(mismatched),
              "resampled": sorted(resampled), "dropped": sorted(dropped), "pretext": sorted(pretext)}
    log_report(report, path, len(own), head)
    problems = [f"{name} ({len(report[name])}): {_some(report[name])}"
                for name in ("unloaded", "mismatched", "unexpected") if report[name]]
    if problems and not allow_partial:
        hint = ""
        if any(".net." in k for k in unexpected):
            hint = " The checkpoint's convolutions are TSM's temporal shift (`conv1.net`): pass --shift."
        if layout == "sttnet_release":
            hint = (" This is the STTNet release's TDN network (difference stem, mSE and shift modules, conv "
                    "biases), which has no counterpart here; its plain ResNet-50 path loads with --allow_partial_load.")
        raise ValueError(f"{path} ({layout} layout) does not fit {type(model).__name__}: "
                         + "; ".join(problems) + "." + hint
                         + " Pass --allow_partial_load if loading part of it is intended.")
    model.load_state_dict(selected, strict=False)
    return report


def _some(names, n=8):
    return ", ".join(names[:n]) + (f" ... (+{len(names) - n})" if len(names) > n else "")


def _by_module(keys, head):
    """`aggregator (28), consensus.new_fc (2)`: tensors counted per top-level module (the classifier
    by its own name)."""
    counts = {}
    for key in keys:
        name = head if head and key.startswith(head + ".") else key.split(".", 1)[0]
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{name} ({n})" for name, n in sorted(counts.items()))


def log_report(report, path, total, head=None):
    log.info("=> %s (%s layout): loaded %d/%d tensors", path, report["layout"], len(report["loaded"]), total)
    if report["new"]:
        log.info("   new, the source has none (%d): %s", len(report["new"]), _by_module(report["new"], head))
    for name, what in (("dropped", "source classifier dropped"), ("resampled", "resized"),
                       ("pretext", "pre-training heads left out"), ("unloaded", "NOT LOADED"),
                       ("mismatched", "shape mismatch"), ("unexpected", "unexpected")):
        if report[name]:
            log.info("   %s (%d): %s", what, len(report[name]), _some(report[name]))
