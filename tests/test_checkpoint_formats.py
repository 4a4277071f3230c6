"""Other projects' checkpoints (ops/checkpoint_formats.py). torchvision's are saved from the
installed torchvision's real models; TSM's from torchvision's ResNet-50 as TSM wraps it; MMAction2's,
PySlowFast's and PyTorchVideo's are written here with the key names and shapes their model
definitions give (ResNet-50 TSN/TSM, I3D R50, SlowOnly R50, MMAction2's R(2+1)D-34, PyTorchVideo's
r2plus1d_r50). Every tensor is filled with its own number, so a spot check shows where it landed
(the R(2+1)D stems and one block are random, and run against the source's computation written out
here). Each loads fully with a report; a wrong architecture is refused with a message naming what
did not load."""
import logging

import pytest
import torch
import torch.nn.functional as F
import torchvision

import main
from ops.checkpoint_formats import Skipped, classifier_name, load_weights, read_checkpoint
from ops.models import BACKBONES, build_model, model_from_checkpoint
from ops.scsa import resize_time
from opts import default_config
from tests.videogen import write_list_dataset
from tools import convert_checkpoint

BN_PARAMS = ("weight", "bias", "running_mean", "running_var")
BLOCKS = (3, 4, 6, 3)
I3D_KERNELS = ((3, 3, 3), (3, 1, 3, 1), (3, 1, 3, 1, 3, 1), (1, 3, 1))
SLOW_KERNELS = ((1,) * 3, (1,) * 4, (3,) * 6, (3,) * 3)


def resnet50_convs(stem_t=None, kernels=None):
    """ResNet-50's convolutions, project-neutral: (where, shape) with where = ("stem",) or
    (stage 1-4, block, "conv1" | "conv2" | "conv3" | "down"); 2D shapes unless stem_t is given
    (then 3D, each block's conv1 t x 1 x 1 with t from `kernels`)."""
    three_d = stem_t is not None
    out = [(("stem",), (64, 3) + ((stem_t,) if three_d else ()) + (7, 7))]
    cin = 64
    for s, n in enumerate(BLOCKS, 1):
        planes = 64 * 2 ** (s - 1)
        for j in range(n):
            t = ((kernels[s - 1][j],) if three_d else ())
            one = (1,) if three_d else ()
            block_in = cin if j == 0 else planes * 4
            out.append(((s, j, "conv1"), (planes, block_in) + t + (1, 1)))
            out.append(((s, j, "conv2"), (planes, planes) + one + (3, 3)))
            out.append(((s, j, "conv3"), (planes * 4, planes) + one + (1, 1)))
            if j == 0:
                out.append(((s, j, "down"), (planes * 4, block_in) + one + (1, 1)))
        cin = planes * 4
    return out


def number(i, shape):
    """A tensor of `shape` filled with i, stored as one number (files of ResNet-50s stay small)."""
    return torch.tensor(float(i)).expand(shape)


def filled(names_and_shapes):
    """{name: tensor filled with its position} (BatchNorm counters as int64 zeros)."""
    state = {}
    for i, (name, shape) in enumerate(names_and_shapes):
        state[name] = torch.zeros((), dtype=torch.long) if name.endswith("num_batches_tracked") else number(i, shape)
    return state


def with_bn(conv_name, bn_prefix, shape):
    return [(conv_name, shape)] + [(f"{bn_prefix}.{p}", (shape[0],)) for p in BN_PARAMS] \
        + [(f"{bn_prefix}.num_batches_tracked", ())]


def mmaction2_resnet(convs, num_class=400, shift=False):
    """MMAction2's Recognizer2D/3D over ResNet / ResNetTSM / ResNet3d: every conv a ConvModule
    (`.conv`, `.bn`), TSM's shift wrapping `conv1.conv` as `.net`, head `cls_head.fc_cls`."""
    keys = []
    for where, shape in convs:
        if where == ("stem",):
            module = "backbone.conv1"
        else:
            s, j, conv = where
            module = f"backbone.layer{s}.{j}.{'downsample' if conv == 'down' else conv}"
        net = ".net" if shift and where[-1] == "conv1" and where != ("stem",) else ""
        keys += with_bn(f"{module}.conv{net}.weight", f"{module}.bn", shape)
    keys += [("cls_head.fc_cls.weight", (num_class, 2048)), ("cls_head.fc_cls.bias", (num_class,))]
    return filled(keys)


def pyslowfast_resnet(convs, num_class=400):
    """PySlowFast's ResNet (one pathway): s1.pathway0_stem.conv/bn, sS.pathway0_resJ.branch1(_bn)
    and branch2.a/b/c(_bn) for stages s2-s5, head.projection."""
    keys = []
    for where, shape in convs:
        if where == ("stem",):
            keys += with_bn("s1.pathway0_stem.conv.weight", "s1.pathway0_stem.bn", shape)
            continue
        s, j, conv = where
        block = f"s{s + 1}.pathway0_res{j}"
        name = "branch1" if conv == "down" else "branch2." + "abc"["conv1 conv2 conv3".split().index(conv)]
        keys += with_bn(f"{block}.{name}.weight", f"{block}.{name}_bn", shape)
    keys += [("head.projection.weight", (num_class, 2048)), ("head.projection.bias", (num_class,))]
    return filled(keys)


def pytorchvideo_resnet(convs, stage_blocks, num_class=400):
    """PyTorchVideo's create_resnet: blocks.0 stem conv/norm, blocks.N.res_blocks.J.branch1_conv/
    norm and branch2.conv_a-c/norm_a-c, the head's proj in the last block. `stage_blocks`: the
    block number of each stage (i3d_r50 has a pooling block after the first)."""
    keys = []
    for where, shape in convs:
        if where == ("stem",):
            keys += with_bn("blocks.0.conv.weight", "blocks.0.norm", shape)
            continue
        s, j, conv = where
        block = f"blocks.{stage_blocks[s - 1]}.res_blocks.{j}"
        if conv == "down":
            keys += with_bn(f"{block}.branch1_conv.weight", f"{block}.branch1_norm", shape)
        else:
            letter = "abc"["conv1 conv2 conv3".split().index(conv)]
            keys += with_bn(f"{block}.branch2.conv_{letter}.weight", f"{block}.branch2.norm_{letter}", shape)
    head = stage_blocks[-1] + 1
    keys += [(f"blocks.{head}.proj.weight", (num_class, 2048)), (f"blocks.{head}.proj.bias", (num_class,))]
    return filled(keys)


def tsm_checkpoint(shift, num_class=174, trained=False):
    """What TSM saves: torchvision's ResNet-50 as `module.base_model` (its fc replaced by dropout;
    with the shift each block's conv1 wrapped as `conv1.net`), `module.new_fc`, in a dict with the
    epoch, arch and best accuracy. Numbered tensors, or with `trained` torchvision's initial
    values (a network that runs)."""
    torch.manual_seed(0)
    state = {}
    for i, (key, value) in enumerate(torchvision.models.resnet50().state_dict().items()):
        if key.startswith("fc."):
            continue
        if shift and key.startswith("layer") and ".conv1." in key:
            key = key.replace(".conv1.", ".conv1.net.")
        state["module.base_model." + key] = value if trained or value.dtype == torch.long else number(i, value.shape)
    state["module.new_fc.weight"] = 0.001 * torch.randn(num_class, 2048) if trained else number(-1, (num_class, 2048))
    state["module.new_fc.bias"] = torch.zeros(num_class) if trained else number(-2, (num_class,))
    return {"epoch": 25, "arch": "resnet50", "state_dict": state, "best_prec1": 45.3}


def sttnet_release_checkpoint(num_class=51):
    """The STTNet release's TSN over TDN's network (ICME2022/CTNet ops/tdn_net.py, base_module.py):
    `base_model.conv1/bn1` and `base_model.layerN_bak` are fbresnet50 (convolutions with biases;
    in layers 2-4 each block also has an mSE module and a learnable shift `shift.conv`), beside the
    difference stem (`conv1_temp`, `conv1_5`, `resnext_layer1`), the pretext projections and the
    attention; `new_fc` classifies."""
    keys = []
    for where, shape in resnet50_convs():
        if where == ("stem",):
            for stem in ("conv1", "conv1_temp"):
                keys += [(f"base_model.{stem}.weight", shape), (f"base_model.{stem}.bias", shape[:1])]
            keys += [(f"base_model.bn1.{p}", shape[:1]) for p in BN_PARAMS]
            keys += with_bn("base_model.conv1_5.0.weight", "base_model.conv1_5.1", (64, 12, 7, 7))
            continue
        s, j, conv = where
        for layer in ([f"layer{s}_bak"] + (["resnext_layer1"] if s == 1 else [])):
            block = f"base_model.{layer}.{j}"
            conv_name, bn_name = (f"{block}.downsample.0", f"{block}.downsample.1") if conv == "down" \
                else (f"{block}.{conv}", f"{block}.bn{conv[-1]}")
            keys += with_bn(f"{conv_name}.weight", bn_name, shape) + [(f"{conv_name}.bias", shape[:1])]
            if s > 1 and conv == "conv1":
                planes = shape[0]
                keys += with_bn(f"{block}.mse.conv1.weight", f"{block}.mse.bn1", (planes // 16, planes, 1, 1))
                keys += [(f"{block}.mse.conv3.weight", (planes, planes // 16, 1, 1)),
                         (f"{block}.shift.conv.weight", (planes, 1, 3))]
    keys += [("base_model.fc_shuffle_rbrf.weight", (2048, 2048)), ("base_model.fc_shuffle_rbrc.weight", (2048, 1)),
             ("base_model.scsattention.query_conv.weight", (256, 2048, 1, 1)),
             ("new_fc.weight", (num_class, 2048)), ("new_fc.bias", (num_class,))]
    return {"epoch": 50, "arch": "resnet50", "state_dict": {"module." + k: v for k, v in filled(keys).items()}}


class HistoryBuffer:
    """Stands for a non-tensor type a checkpoint pickles (MMEngine's message hub); restoring it
    would run this code, which the loader must never do."""
    restored = False

    def __setstate__(self, state):
        HistoryBuffer.restored = True


def assert_full(report, new=()):
    assert report["unloaded"] == [] and report["unexpected"] == [] and report["mismatched"] == []
    assert sorted(report["new"]) == sorted(new)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Paths of the checkpoints of every layout (written once: ResNet-50s are ~100 MB)."""
    folder = tmp_path_factory.mktemp("layouts")
    paths = {}

    def save(name, obj):
        paths[name] = str(folder / f"{name}.pth")
        torch.save(obj, paths[name])

    save("tsm", tsm_checkpoint(shift=False))
    save("tsm_shift", tsm_checkpoint(shift=True))
    save("tsm_trained", tsm_checkpoint(shift=False, trained=True))
    buf = HistoryBuffer()
    save("mmaction2_tsn", {"meta": {"mmaction2_version": "1.2.0", "CLASSES": None}, "message_hub": buf,
                           "state_dict": mmaction2_resnet(resnet50_convs())})
    save("mmaction2_tsm", {"state_dict": mmaction2_resnet(resnet50_convs(), shift=True)})
    save("sttnet_release", sttnet_release_checkpoint())
    save("mmaction2_i3d", {"meta": {"epoch": 100}, "state_dict": mmaction2_resnet(resnet50_convs(5, I3D_KERNELS))})
    save("mmaction2_slowonly", {"state_dict": mmaction2_resnet(resnet50_convs(1, SLOW_KERNELS))})
    save("pyslowfast_i3d", {"epoch": 196, "model_state": pyslowfast_resnet(resnet50_convs(5, I3D_KERNELS)),
                            "optimizer_state": {}, "cfg": "MODEL:\n  ARCH: i3d\n"})
    save("pyslowfast_slow", {"epoch": 196, "model_state": pyslowfast_resnet(resnet50_convs(1, SLOW_KERNELS)),
                             "optimizer_state": {}, "cfg": "MODEL:\n  ARCH: slow\n"})
    save("ptv_slow_r50", {"model_state": pytorchvideo_resnet(resnet50_convs(1, SLOW_KERNELS), (1, 2, 3, 4))})
    save("ptv_i3d_r50", {"model_state": pytorchvideo_resnet(resnet50_convs(5, I3D_KERNELS), (1, 3, 4, 5))})
    return paths


def test_tsm_tsn_resnet50_loads_fully_into_tsn(files, caplog):
    caplog.set_level(logging.INFO, logger="ops.checkpoint_formats")
    source = torch.load(files["tsm"], weights_only=True)["state_dict"]
    model = build_model(default_config(model="tsn", arch="resnet50", num_class=174, num_segments=2))
    report = load_weights(model, files["tsm"])
    assert report["layout"] == "tsm" and len(report["loaded"]) == len(model.state_dict()) == 320
    assert_full(report)
    assert torch.equal(model.base_model.layer3[4].conv2.weight, source["module.base_model.layer3.4.conv2.weight"])
    assert torch.equal(model.consensus.new_fc.bias, source["module.new_fc.bias"])
    assert "(tsm layout): loaded 320/320 tensors" in caplog.text


def test_tsm_checkpoint_into_sttnet_reports_new_modules_and_drops_other_classifier(files, caplog):
    caplog.set_level(logging.INFO, logger="ops.checkpoint_formats")
    model = build_model(default_config(model="sttnet", arch="resnet50", num_class=5, num_segments=2, crop_size=64,
                                       scsa_dim=32))
    report = load_weights(model, files["tsm"])
    backbone = [k for k in model.state_dict() if k.startswith("base_model.")]
    assert set(backbone) <= set(report["loaded"])
    assert report["dropped"] == ["new_fc.bias", "new_fc.weight"]
    tops = {k.split(".")[0] for k in report["new"]}
    assert tops == {"aggregator", "rbrf_head", "rbrc_head", "consensus"}
    assert {"consensus.new_fc.weight", "consensus.new_fc.bias"} <= set(report["new"])
    assert_full(report, report["new"])
    assert "new, the source has none" in caplog.text and "source classifier dropped (2)" in caplog.text


SHIFT = dict(shift=True, shift_div=8, shift_place="blockres", temporal_pool=False)


def test_tsm_shifted_checkpoint_loads_fully_with_the_shift(files):
    source = torch.load(files["tsm_shift"], weights_only=True)["state_dict"]
    model = build_model(default_config(model="tsn", arch="resnet50", num_class=174, num_segments=2, **SHIFT))
    report = load_weights(model, files["tsm_shift"])
    assert len(report["loaded"]) == len(model.state_dict()) == 320
    assert_full(report)
    assert torch.equal(model.base_model.layer2[1].conv1.net.weight,
                       source["module.base_model.layer2.1.conv1.net.weight"])


def test_tsn_checkpoint_fills_the_shifted_network(files):
    """TSM fine-tunes a shifted network from an unshifted one: the shift has no weights, so the
    plain convolutions go inside its wrappers."""
    source = torch.load(files["tsm"], weights_only=True)["state_dict"]
    model = build_model(default_config(model="tsn", arch="resnet50", num_class=174, num_segments=2, **SHIFT))
    report = load_weights(model, files["tsm"])
    assert len(report["loaded"]) == 320
    assert_full(report)
    assert torch.equal(model.base_model.layer4[2].conv1.net.weight, source["module.base_model.layer4.2.conv1.weight"])


def test_tsm_shifted_checkpoint_is_refused_without_the_shift(files):
    model = build_model(default_config(model="tsn", arch="resnet50", num_class=5, num_segments=2))
    with pytest.raises(ValueError, match=r"pass --shift") as err:
        load_weights(model, files["tsm_shift"])
    assert "layer1.0.conv1.net.weight" in str(err.value) and "--allow_partial_load" in str(err.value)
    report = load_weights(model, files["tsm_shift"], allow_partial=True)
    assert "base_model.layer1.0.conv1.weight" in report["unloaded"] and len(report["unloaded"]) == 16


def test_mmaction2_tsn_resnet50_loads_and_its_metadata_is_never_run(files):
    HistoryBuffer.restored = False
    state, extras = read_checkpoint(files["mmaction2_tsn"])
    assert isinstance(extras["message_hub"], Skipped) and not HistoryBuffer.restored
    assert extras["meta"]["mmaction2_version"] == "1.2.0"
    model = build_model(default_config(model="tsn", arch="resnet50", num_class=400, num_segments=2))
    report = load_weights(model, files["mmaction2_tsn"])
    assert report["layout"] == "mmaction2" and not HistoryBuffer.restored
    assert_full(report)
    assert torch.equal(model.base_model.layer2[0].downsample[1].running_var,
                       state["backbone.layer2.0.downsample.bn.running_var"])
    assert torch.equal(model.base_model.bn1.weight, state["backbone.conv1.bn.weight"])
    assert torch.equal(model.consensus.new_fc.weight, state["cls_head.fc_cls.weight"])


def test_mmaction2_tsm_resnet50_loads_fully_with_the_shift(files):
    state, _ = read_checkpoint(files["mmaction2_tsm"])
    model = build_model(default_config(model="tsn", arch="resnet50", num_class=400, num_segments=2, **SHIFT))
    report = load_weights(model, files["mmaction2_tsm"])
    assert report["layout"] == "mmaction2" and len(report["loaded"]) == 320
    assert_full(report)
    assert torch.equal(model.base_model.layer3[5].conv1.net.weight, state["backbone.layer3.5.conv1.conv.net.weight"])
    with pytest.raises(ValueError, match="pass --shift"):
        load_weights(build_model(default_config(model="tsn", arch="resnet50", num_class=400, num_segments=2)),
                     files["mmaction2_tsm"])


def test_sttnet_release_is_refused_and_its_resnet_path_loads_on_request(files):
    state, _ = read_checkpoint(files["sttnet_release"])
    model = build_model(default_config(model="sttnet", arch="resnet50", num_class=51, num_segments=2, crop_size=64,
                                       scsa_dim=32))
    with pytest.raises(ValueError, match="STTNet release's TDN network"):
        load_weights(model, files["sttnet_release"])
    report = load_weights(model, files["sttnet_release"], allow_partial=True)
    assert report["layout"] == "sttnet_release" and report["unloaded"] == [] and report["mismatched"] == []
    assert "consensus.new_fc.weight" in report["loaded"]
    assert {k.split(".")[1] for k in report["unexpected"]} == {"conv1_5", "conv1_temp", "resnext_layer1",
                                                              "fc_shuffle_rbrf", "fc_shuffle_rbrc", "scsattention",
                                                              "conv1", "layer1_bak", "layer2_bak", "layer3_bak",
                                                              "layer4_bak"}
    assert all(k.endswith(".bias") or ".mse." in k or ".shift." in k
               for k in report["unexpected"] if "_bak." in k)
    assert torch.equal(model.base_model.layer2[3].conv2.weight, state["base_model.layer2_bak.3.conv2.weight"])


@pytest.mark.parametrize("arch,name", [("i3d_r50", "mmaction2_i3d"), ("i3d_r50", "pyslowfast_i3d"),
                                       ("i3d_r50", "ptv_i3d_r50"), ("slowonly_r50", "mmaction2_slowonly"),
                                       ("slowonly_r50", "pyslowfast_slow"), ("slowonly_r50", "ptv_slow_r50")])
def test_3d_resnet50_checkpoints_load_fully(files, arch, name):
    state, _ = read_checkpoint(files[name])
    model = build_model(default_config(arch=arch, num_class=7))
    report = load_weights(model, files[name])
    assert report["layout"] == name.split("_")[0].replace("ptv", "pytorchvideo")
    assert_full(report, ["fc.bias", "fc.weight"])
    assert len(report["dropped"]) == 2 and len(report["loaded"]) == len(model.state_dict()) - 2
    # res4's third block: the only conv1 of that shape; its values say which source tensor it was
    source = [v for k, v in state.items() if v.dim() == 5 and v.shape[:2] == (256, 1024)][1]
    assert torch.equal(model.layer3[2].conv1.weight, source)


def test_wrong_architecture_is_refused(files):
    with pytest.raises(ValueError, match=r"does not fit TSN: .*mismatched"):
        load_weights(build_model(default_config(model="tsn", arch="resnet18", num_class=5, num_segments=2)),
                     files["tsm"])
    with pytest.raises(ValueError, match=r"does not fit ResNet3d50"):   # I3D weights into SlowOnly
        load_weights(build_model(default_config(arch="slowonly_r50", num_class=5)), files["pyslowfast_i3d"])
    two_pathways = pyslowfast_resnet(resnet50_convs(1, SLOW_KERNELS))
    two_pathways["s1.pathway1_stem.conv.weight"] = torch.zeros(8, 3, 5, 7, 7)   # SlowFast's fast pathway
    path = files["tsm"].replace("tsm.pth", "slowfast.pth")
    torch.save({"model_state": two_pathways}, path)
    with pytest.raises(ValueError, match=r"unexpected \(1\): s1.pathway1_stem.conv.weight"):
        load_weights(build_model(default_config(arch="slowonly_r50", num_class=5)), path)


# ---- R(2+1)D: MMAction2's R(2+1)D-34 and PyTorchVideo's r2plus1d_r50 ----

def bn_keys(prefix, channels):
    return [(f"{prefix}.{p}", (channels,)) for p in BN_PARAMS] + [(f"{prefix}.num_batches_tracked", ())]


def mmaction2_conv2plus1d(prefix, cin, cout, t, d):
    """MMAction2's Conv2plus1d (mmaction/models/common/conv2plus1d.py): conv_s (1, d, d) to M,
    bn_s, conv_t (t, 1, 1) to cout, M computed as there: int(3 * cin cout d^2 / (cin d^2 + 3 cout))."""
    mid = int(3 * (cin * cout * d * d) / (cin * d * d + 3 * cout))
    return with_bn(f"{prefix}.conv_s.weight", f"{prefix}.bn_s", (mid, cin, 1, d, d)) \
        + [(f"{prefix}.conv_t.weight", (cout, mid, t, 1, 1))]


def mmaction2_r2plus1d_r34(num_class=400):
    """MMAction2's Recognizer3D over ResNet2Plus1d depth 34 (configs/_base_/models/r2plus1d_r34.py):
    ConvModules whose conv is a Conv2plus1d, the stem's 3x7x7; BasicBlock3d conv1/conv2 3x3x3;
    layers 2-4's first block a factored 1x1x1 `downsample.conv` + `downsample.bn`; I3DHead fc_cls."""
    keys = mmaction2_conv2plus1d("backbone.conv1.conv", 3, 64, 3, 7) + bn_keys("backbone.conv1.bn", 64)
    cin = 64
    for s, n in enumerate(BLOCKS, 1):
        planes = 64 * 2 ** (s - 1)
        for j in range(n):
            block, block_in = f"backbone.layer{s}.{j}", cin if j == 0 else planes
            for conv, cin_conv in (("conv1", block_in), ("conv2", planes)):
                keys += mmaction2_conv2plus1d(f"{block}.{conv}.conv", cin_conv, planes, 3, 3) \
                    + bn_keys(f"{block}.{conv}.bn", planes)
            if j == 0 and s > 1:
                keys += mmaction2_conv2plus1d(f"{block}.downsample.conv", block_in, planes, 1, 1) \
                    + bn_keys(f"{block}.downsample.bn", planes)
        cin = planes
    keys += [("cls_head.fc_cls.weight", (num_class, 512)), ("cls_head.fc_cls.bias", (num_class,))]
    return filled(keys)


def pytorchvideo_r2plus1d_r50(num_class=400):
    """PyTorchVideo's create_r2plus1d (hub r2plus1d_r50): stem blocks.0.conv 1x7x7 / norm; stage
    blocks 1-4 of 2plus1d bottlenecks, each first block with branch1_conv/norm; conv_b a
    Conv2plus1d on the inner width (conv_t 3x1x1, norm, conv_xy 1x3x3); head blocks.5.proj."""
    keys = with_bn("blocks.0.conv.weight", "blocks.0.norm", (64, 3, 1, 7, 7))
    cin = 64
    for s, n in enumerate(BLOCKS, 1):
        inner = 64 * 2 ** (s - 1)
        for j in range(n):
            block, block_in = f"blocks.{s}.res_blocks.{j}", cin if j == 0 else inner * 4
            if j == 0:
                keys += with_bn(f"{block}.branch1_conv.weight", f"{block}.branch1_norm", (inner * 4, block_in, 1, 1, 1))
            keys += with_bn(f"{block}.branch2.conv_a.weight", f"{block}.branch2.norm_a", (inner, block_in, 1, 1, 1))
            conv_b = f"{block}.branch2.conv_b"
            keys += with_bn(f"{conv_b}.conv_t.weight", f"{conv_b}.norm", (inner, inner, 3, 1, 1))
            keys += [(f"{conv_b}.conv_xy.weight", (inner, inner, 1, 3, 3))] + bn_keys(f"{block}.branch2.norm_b", inner)
            keys += with_bn(f"{block}.branch2.conv_c.weight", f"{block}.branch2.norm_c", (inner * 4, inner, 1, 1, 1))
        cin = inner * 4
    keys += [("blocks.5.proj.weight", (num_class, 2048)), ("blocks.5.proj.bias", (num_class,))]
    return filled(keys)


def randomized(state, prefixes):
    """`state` with the tensors under `prefixes` drawn at random (BatchNorm variances small and
    positive, so that each BatchNorm's eps shows)."""
    out = dict(state)
    for key, value in state.items():
        if key.startswith(prefixes) and value.is_floating_point():
            small = key.endswith("running_var")
            out[key] = torch.rand(value.shape) * 0.01 + 1e-4 if small else torch.randn(value.shape)
    return out


R2PLUS1D_BLOCKS = {"r2plus1d_r34": ("backbone.conv1.", "backbone.layer2.0."),
                   "r2plus1d_r50": ("blocks.0.", "blocks.3.res_blocks.0.")}


@pytest.fixture(scope="module")
def r2plus1d_files(tmp_path_factory):
    """The two zoos' R(2+1)D checkpoints (400 classes), the stem and one downsampling block random."""
    folder = tmp_path_factory.mktemp("r2plus1d")
    torch.manual_seed(0)
    states = {"r2plus1d_r34": {"meta": {"mmaction2_version": "1.0.0"},
                               "state_dict": randomized(mmaction2_r2plus1d_r34(), R2PLUS1D_BLOCKS["r2plus1d_r34"])},
              "r2plus1d_r50": {"model_state": randomized(pytorchvideo_r2plus1d_r50(), R2PLUS1D_BLOCKS["r2plus1d_r50"])}}
    paths = {}
    for name, obj in states.items():
        paths[name] = str(folder / f"{name}.pth")
        torch.save(obj, paths[name])
    return paths


@pytest.mark.parametrize("arch,layout", [("r2plus1d_r34", "mmaction2"), ("r2plus1d_r50", "pytorchvideo")])
def test_r2plus1d_checkpoints_load_fully(r2plus1d_files, arch, layout):
    state, _ = read_checkpoint(r2plus1d_files[arch])
    model = build_model(default_config(arch=arch, num_class=400))
    report = load_weights(model, r2plus1d_files[arch])
    assert report["layout"] == layout and len(report["loaded"]) == len(model.state_dict()) == len(state)
    assert_full(report)
    model = build_model(default_config(arch=arch, num_class=7))
    report = load_weights(model, r2plus1d_files[arch])
    assert_full(report, ["fc.bias", "fc.weight"])
    assert len(report["dropped"]) == 2 and len(report["loaded"]) == len(state) - 2
    if arch == "r2plus1d_r34":
        assert torch.equal(model.layer3[4].conv2.spatial.weight, state["backbone.layer3.4.conv2.conv.conv_s.weight"])
        assert torch.equal(model.layer4[0].downsample[0].norm.running_var,
                           state["backbone.layer4.0.downsample.conv.bn_s.running_var"])
    else:
        assert torch.equal(model.layer2[3].conv2.temporal.weight,
                           state["blocks.2.res_blocks.3.branch2.conv_b.conv_t.weight"])
        assert torch.equal(model.layer4[1].conv2.spatial.weight,
                           state["blocks.4.res_blocks.1.branch2.conv_b.conv_xy.weight"])


def batch_norm(x, state, prefix, eps, relu):
    x = F.batch_norm(x, state[f"{prefix}.running_mean"], state[f"{prefix}.running_var"], state[f"{prefix}.weight"],
                     state[f"{prefix}.bias"], False, 0.0, eps)
    return F.relu(x) if relu else x


def mmaction2_reference(state, x, y):
    """MMAction2's stem (with its max pool) on x and its layer2.0 on y, written from resnet3d.py and
    conv2plus1d.py over the checkpoint's tensors: a Conv2plus1d is conv_s, bn_s (eps 1e-5), ReLU,
    conv_t; each ConvModule's BN has eps 1e-3 (SyncBN's in the config)."""
    def conv2plus1d(x, prefix, stride, t_pad, s_pad):
        x = F.conv3d(x, state[f"{prefix}.conv_s.weight"], stride=(1, stride[1], stride[1]), padding=(0, s_pad, s_pad))
        x = batch_norm(x, state, f"{prefix}.bn_s", 1e-5, relu=True)
        return F.conv3d(x, state[f"{prefix}.conv_t.weight"], stride=(stride[0], 1, 1), padding=(t_pad, 0, 0))

    def conv_module(x, prefix, stride, t_pad, s_pad, relu):
        return batch_norm(conv2plus1d(x, f"{prefix}.conv", stride, t_pad, s_pad), state, f"{prefix}.bn", 1e-3, relu)

    stem = F.max_pool3d(conv_module(x, "backbone.conv1", (1, 2), 1, 3, True), (1, 3, 3), (1, 2, 2), (0, 1, 1))
    b = "backbone.layer2.0"
    out = conv_module(conv_module(y, f"{b}.conv1", (2, 2), 1, 1, True), f"{b}.conv2", (1, 1), 1, 1, False)
    return stem, F.relu(out + conv_module(y, f"{b}.downsample", (2, 2), 0, 0, False))


def pytorchvideo_reference(state, x, y):
    """PyTorchVideo's stem on x and its res4's first block (blocks.3.res_blocks.0) on y, written
    from resnet.py, r2plus1d.py, stem.py and convolutions.py over the checkpoint's tensors: conv_b
    is conv_t (temporal stride), norm, ReLU, conv_xy (spatial stride); every BN eps 1e-5."""
    stem = batch_norm(F.conv3d(x, state["blocks.0.conv.weight"], stride=(1, 2, 2), padding=(0, 3, 3)), state,
                      "blocks.0.norm", 1e-5, relu=True)
    b = "blocks.3.res_blocks.0"
    out = batch_norm(F.conv3d(y, state[f"{b}.branch2.conv_a.weight"]), state, f"{b}.branch2.norm_a", 1e-5, True)
    out = F.conv3d(out, state[f"{b}.branch2.conv_b.conv_t.weight"], stride=(2, 1, 1), padding=(1, 0, 0))
    out = batch_norm(out, state, f"{b}.branch2.conv_b.norm", 1e-5, True)
    out = F.conv3d(out, state[f"{b}.branch2.conv_b.conv_xy.weight"], stride=(1, 2, 2), padding=(0, 1, 1))
    out = batch_norm(out, state, f"{b}.branch2.norm_b", 1e-5, True)
    out = batch_norm(F.conv3d(out, state[f"{b}.branch2.conv_c.weight"]), state, f"{b}.branch2.norm_c", 1e-5, False)
    shortcut = F.conv3d(y, state[f"{b}.branch1_conv.weight"], stride=(2, 2, 2))
    return stem, F.relu(out + batch_norm(shortcut, state, f"{b}.branch1_norm", 1e-5, False))


@pytest.mark.parametrize("arch", ["r2plus1d_r34", "r2plus1d_r50"])
def test_r2plus1d_computes_what_the_source_network_computes(r2plus1d_files, arch):
    """The stem and a downsampling block, loaded from the checkpoint, against the source project's
    computation written out here: conv order, strides, paddings, middle widths, BN eps."""
    state, _ = read_checkpoint(r2plus1d_files[arch])
    model = build_model(default_config(arch=arch, num_class=400)).eval()
    load_weights(model, r2plus1d_files[arch])
    torch.manual_seed(1)
    x = torch.randn(1, 3, 4, 16, 16)
    if arch == "r2plus1d_r34":
        block, y = model.layer2[0], torch.randn(1, 64, 4, 8, 8)
        stem_ref, block_ref = mmaction2_reference(state, x, y)
    else:
        block, y = model.layer3[0], torch.randn(1, 512, 4, 8, 8)
        stem_ref, block_ref = pytorchvideo_reference(state, x, y)
    with torch.no_grad():
        stem = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        torch.testing.assert_close(stem, stem_ref)
        torch.testing.assert_close(block(y), block_ref)
        assert model(torch.randn(2, 3, 4, 32, 32)).shape == (2, 400)


def test_r2plus1d_checkpoints_refused_by_other_architectures(r2plus1d_files, tmp_path):
    for arch, other in (("r2plus1d_r34", "r2plus1d_r50"), ("r2plus1d_r50", "r2plus1d_r34"),
                        ("r2plus1d_r34", "r2plus1d_18"), ("r2plus1d_r50", "slowonly_r50")):
        with pytest.raises(ValueError, match=r"does not fit .*unexpected"):
            load_weights(build_model(default_config(arch=other, num_class=400)), r2plus1d_files[arch])
    # PyTorchVideo's SlowOnly R50 shares r2plus1d_r50's key layout but not its conv_b
    with pytest.raises(ValueError, match=r"conv_b\.conv_t"):
        load_weights(build_model(default_config(arch="slowonly_r50", num_class=400)), r2plus1d_files["r2plus1d_r50"])
    path = tmp_path / "r2plus1d_18.pth"
    torch.save(torchvision.models.video.r2plus1d_18().state_dict(), path)
    with pytest.raises(ValueError, match="does not fit R2Plus1dResNet"):
        load_weights(build_model(default_config(arch="r2plus1d_r34", num_class=400)), str(path))


def test_torchvision_video_models_take_torchvision_state_dicts(tmp_path):
    for name in ("mc3_18", "s3d"):
        path = tmp_path / f"{name}.pth"
        torch.manual_seed(0)
        source = getattr(torchvision.models.video, name)()
        torch.save(source.state_dict(), path)
        model = build_model(default_config(arch=name, num_class=5))
        report = load_weights(model, str(path))
        head = classifier_name(model)
        assert report["layout"] == "torchvision"
        assert_full(report, [f"{head}.bias", f"{head}.weight"])
        assert report["dropped"] == [f"{head}.bias", f"{head}.weight"]
        for key, value in model.state_dict().items():
            if not key.startswith(head + "."):
                assert torch.equal(value, source.state_dict()[key]), key
    with pytest.raises(ValueError, match="does not fit VideoResNet"):
        load_weights(build_model(default_config(arch="r2plus1d_18", num_class=5)), str(tmp_path / "mc3_18.pth"))


def test_imagenet_backbones_from_torchvision_and_timm_names(tmp_path):
    torch.manual_seed(0)
    source = torchvision.models.resnet50()
    path = tmp_path / "resnet50.pth"
    torch.save(source.state_dict(), path)   # timm's resnet50 uses the same names (conv1, bn1, layerN, fc)
    model = build_model(default_config(model="tsn", arch="resnet50", num_class=5, num_segments=2, pretrain="imagenet",
                                       pretrained_weights=str(path)))
    assert torch.equal(model.base_model.layer4[2].bn3.running_mean, source.layer4[2].bn3.running_mean)
    model = build_model(default_config(model="tsn", arch="resnet50", num_class=5, num_segments=2))
    report = load_weights(model, str(path))
    assert report["dropped"] == ["fc.bias", "fc.weight"]   # ImageNet's 1000-way classifier
    assert_full(report, ["consensus.new_fc.bias", "consensus.new_fc.weight"])
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(ValueError, match="does not fit ResNetFeatures"):
        BACKBONES.create("resnet50", pretrained_weights=str(path))


def timm_mobilenetv2_100():
    """timm's mobilenetv2_100 as its EfficientNet builder names it: conv_stem/bn1, blocks.s.j
    (stage 0 one depthwise-separable block: conv_dw, bn1, conv_pw, bn2; then inverted residuals
    with expansion 6: conv_pw, bn1, conv_dw, bn2, conv_pwl, bn3), conv_head/bn2, classifier."""
    keys = with_bn("conv_stem.weight", "bn1", (32, 3, 3, 3))
    keys += with_bn("blocks.0.0.conv_dw.weight", "blocks.0.0.bn1", (32, 1, 3, 3))
    keys += with_bn("blocks.0.0.conv_pw.weight", "blocks.0.0.bn2", (16, 32, 1, 1))
    cin = 16
    for s, (n, c) in enumerate(((2, 24), (3, 32), (4, 64), (3, 96), (3, 160), (1, 320)), 1):
        for j in range(n):
            block, mid = f"blocks.{s}.{j}", cin * 6
            keys += with_bn(f"{block}.conv_pw.weight", f"{block}.bn1", (mid, cin, 1, 1))
            keys += with_bn(f"{block}.conv_dw.weight", f"{block}.bn2", (mid, 1, 3, 3))
            keys += with_bn(f"{block}.conv_pwl.weight", f"{block}.bn3", (c, mid, 1, 1))
            cin = c
    keys += with_bn("conv_head.weight", "bn2", (1280, 320, 1, 1))
    return filled(keys + [("classifier.weight", (1000, 1280)), ("classifier.bias", (1000,))])


def test_timm_mobilenetv2_loads_into_torchvisions(tmp_path):
    state = timm_mobilenetv2_100()
    path = tmp_path / "mobilenetv2_100.pth"
    torch.save(state, path)
    net = BACKBONES.create("mobilenet_v2")
    report = load_weights(net, str(path))
    assert report["layout"] == "timm" and len(report["loaded"]) == len(net.state_dict())
    assert_full(report)
    assert report["dropped"] == ["classifier.bias", "classifier.weight"]
    assert torch.equal(net.features[5].conv[1][0].weight, state["blocks.2.1.conv_dw.weight"])
    assert torch.equal(net.features[1].conv[1].weight, state["blocks.0.0.conv_pw.weight"])
    assert torch.equal(net.features[18][1].running_var, state["bn2.running_var"])


def test_own_checkpoint_strips_prefixes_and_refuses_strays(tmp_path):
    source = build_model(default_config(model="tsn", arch="resnet18", num_class=7, num_segments=2))
    state = {"module." + k: v for k, v in source.state_dict().items()}
    path = tmp_path / "own.pth"
    torch.save({"model": state, "config": {"arch": "resnet18"}}, path)
    target = build_model(default_config(model="tsn", arch="resnet18", num_class=4, num_segments=2))
    report = load_weights(target, str(path))
    assert report["layout"] == "own" and report["dropped"] == ["consensus.new_fc.bias", "consensus.new_fc.weight"]
    assert_full(report, ["consensus.new_fc.bias", "consensus.new_fc.weight"])
    assert torch.equal(target.base_model.layer3[0].conv1.weight, source.base_model.layer3[0].conv1.weight)
    state["module.extra.weight"] = torch.zeros(1)
    torch.save({"model": state, "config": {}}, path)
    with pytest.raises(ValueError, match=r"unexpected \(1\): extra.weight"):
        load_weights(target, str(path))
    assert load_weights(target, str(path), allow_partial=True)["unexpected"] == ["extra.weight"]


def test_own_sttnet_checkpoint_resamples_positional_tables_to_another_segment_count(tmp_path):
    """Fine-tuning an 8-segment STTNet into a 5-segment one on another dataset: the temporal table is
    resampled (not dropped), the classifier of the other class count is dropped."""
    cfg = default_config(model="sttnet", arch="tinynet", num_class=7, num_segments=8, crop_size=64, scsa_dim=32)
    torch.manual_seed(0)
    source = build_model(cfg)
    path = tmp_path / "sttnet.pth"
    torch.save({"model": {"module." + k: v for k, v in source.state_dict().items()}, "config": cfg}, path)
    target = build_model(dict(cfg, num_class=4, num_segments=5))
    report = load_weights(target, str(path))
    assert report["resampled"] == ["aggregator.pos_time (8, 128) -> (5, 128)"]
    assert all("new_fc" in m for m in report["dropped"])
    assert_full(report, ["consensus.new_fc.bias", "consensus.new_fc.weight"])
    torch.testing.assert_close(target.aggregator.pos_time, resize_time(source.aggregator.pos_time, 5))
    assert torch.equal(target.aggregator.w6.weight, source.aggregator.w6.weight)


def test_code_carrying_file_gives_no_weights(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": torch.nn.Linear(2, 2)}, path)  # a pickled module, not a state dict
    with pytest.raises(ValueError, match="not tensors"):
        read_checkpoint(str(path))
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"evil.pth (cannot be read|is not a checkpoint)"):
        read_checkpoint(str(path))


# ---- through main.py and tools/convert_checkpoint.py ----

@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    write_list_dataset(str(root), num_videos=6, num_train=4)
    return root


def run_args(root, out, *extra):
    return ["custom", "RGB", "--root_path", str(root), "--num_class", "3", "--train_list", str(root / "train.txt"),
            "--val_list", str(root / "val.txt"), "--epochs", "1", "-b", "2", "-j", "0", "--no_progress",
            "--root_log", str(out / "log"), "--root_model", str(out / "ckpt"), *extra]


def test_finetune_torchvision_r2plus1d_18_through_main(clips, tmp_path):
    torch.manual_seed(0)
    source = torchvision.models.video.r2plus1d_18().state_dict()   # Kinetics-400 layout: 400-way fc
    path = tmp_path / "r2plus1d_18.pth"
    torch.save(source, path)
    # torchvision's R(2+1)D is not the STTS project's (mid widths, block layout): refused, not 11/337
    with pytest.raises(ValueError, match="does not fit FactoredResNet18"):
        load_weights(build_model(default_config(arch="r2plus1d", num_class=5)), str(path))
    main.main(run_args(clips, tmp_path, "--arch", "r2plus1d_18", "--clip_len", "4", "--crop_size", "32",
                       "--lr", "1e-5", "--tune_from", str(path)))
    log = next((tmp_path / "log").glob("*/log.txt")).read_text()
    assert "(torchvision layout): loaded 222/224 tensors" in log
    assert "new, the source has none (2): fc (2)" in log and "NOT LOADED" not in log
    tuned = torch.load(next((tmp_path / "ckpt").glob("*/ckpt.pth")), weights_only=True)["model"]
    assert tuned["fc.weight"].shape == (3, 512)
    for key in ("stem.0.weight", "layer4.1.conv2.0.3.weight"):   # one step at lr 1e-5 from the source
        torch.testing.assert_close(tuned[key], source[key], atol=1e-3, rtol=0)


def test_finetune_sttnet_from_a_tsm_tsn_resnet50_through_main(files, clips, tmp_path):
    main.main(run_args(clips, tmp_path, "--model", "sttnet", "--arch", "resnet50", "--num_segments", "2",
                       "--crop_size", "64", "--scsa_dim", "32", "--tune_from", files["tsm_trained"]))
    log = next((tmp_path / "log").glob("*/log.txt")).read_text()
    report = next(line for line in log.splitlines() if "(tsm layout): loaded" in line)
    loaded, total = map(int, report.split("loaded ")[1].split(" ")[0].split("/"))
    new = next(line for line in log.splitlines() if "new, the source has none" in line)
    assert "aggregator (" in new and "rbrf_head (" in new and "rbrc_head (" in new and "consensus.new_fc (2)" in new
    assert "source classifier dropped (2): new_fc.bias, new_fc.weight" in log and "NOT LOADED" not in log
    assert loaded == 318 and total > loaded    # the whole ResNet-50: TSM's 320 tensors less its classifier
    assert "loss nan" not in log


def test_convert_tool_writes_a_checkpoint_of_this_project(tmp_path, capsys):
    torch.manual_seed(0)
    source = torchvision.models.video.mc3_18().state_dict()
    path, out = tmp_path / "mc3_18.pth", tmp_path / "converted.pth"
    torch.save(source, path)
    assert convert_checkpoint.main([str(path), str(out), "--arch", "mc3_18"]) == 0
    assert "(torchvision layout): loaded" in capsys.readouterr().out
    converted = torch.load(out, weights_only=True)
    assert converted["config"]["arch"] == "mc3_18" and converted["config"]["num_class"] == 400
    assert all(torch.equal(converted["model"][k], v) for k, v in source.items())   # classifier kept: 400 classes
    model, cfg = model_from_checkpoint(str(out))
    assert torch.equal(model.fc.weight, source["fc.weight"])
    assert convert_checkpoint.main([str(path), str(tmp_path / "no.pth"), "--arch", "r2plus1d_18"]) == 1
    assert "does not fit VideoResNet" in capsys.readouterr().err and not (tmp_path / "no.pth").exists()
