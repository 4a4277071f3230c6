"""The one entry to the models: `build_model(cfg)` builds what a run configuration names
(`model_name` is the rule), `model_from_checkpoint` rebuilds a trained model. Importing this module
imports ops/model_zoo.py, so the registries taken from here (MODELS, BACKBONES, CONSENSUS) are
complete, whatever was imported first.
"""
from ops import model_zoo  # noqa: F401  (fills MODELS, BACKBONES and CONSENSUS)
from ops.checkpoint import load_checkpoint
from ops.checkpoint_formats import load_weights
from ops.registry import BACKBONES, CONSENSUS, MODELS  # noqa: F401  (complete when taken from here)


def model_name(cfg):
    """The registry name of the model a run configuration builds, the one rule for every caller:
    `ssl` (a pre-training method) if set, else `arch` when it names a whole model (the 3D clip
    models), else `model` (a family: tsn, sttnet, ...) around the 2D backbone `arch`."""
    if cfg.get("ssl"):
        return cfg["ssl"]
    if names_whole_model(cfg.get("arch")):
        return cfg["arch"]
    return cfg["model"]


def model_label(cfg):
    """A run configuration's model in a few words: `tsn (resnet50, avg)`, `sttnet (resnet50 + shift
    1/8 blockres, avg)`, a whole model's name, an SSL method's (with its encoder when that is a
    whole model: `vtdl (r3d18)`)."""
    name = model_name(cfg)
    if MODELS.role(name) == "ssl":
        return f"{name} ({cfg['arch']})" if names_whole_model(cfg["arch"]) else name
    if MODELS.role(name) == "whole":
        return name
    shift = f" + shift 1/{cfg['shift_div']} {cfg['shift_place']}" if cfg.get("shift") else ""
    return f"{name} ({cfg['arch']}{shift}, {cfg['consensus_type']})"


def names_whole_model(arch):
    """Whether `arch` names a whole model (a 3D clip model) rather than a 2D backbone."""
    return MODELS.role(arch) == "whole"


def frames_option(cfg):
    """The option that sets how many frames a model of this configuration sees per clip:
    `clip_len` for a whole clip model (or a method whose encoder is one), `num_segments` for the
    2D families."""
    return "clip_len" if names_whole_model(cfg.get("arch")) else "num_segments"


def build_model(cfg):
    """The model for a run configuration (a dict), see `model_name`."""
    return MODELS.create(model_name(cfg), cfg)


def model_from_checkpoint(path, overrides=None, needs_logits=False, random_init=False):
    """(model in eval mode, cfg) for a checkpoint written by main.py: the model is rebuilt from the
    run configuration stored in it (never from its file name), with `overrides` applied to that
    configuration (a dict, or a function of the stored configuration returning one), and given the
    checkpoint's weights.

    The weights come from the checkpoint, so the ImageNet file the run started from is not read.
    A pre-training checkpoint (`ssl`) rebuilds its method, unless the overrides turn `ssl` off and
    name the model fine-tuning would start from: then its weights go in as `--tune_from` puts them
    (ops.checkpoint_formats.load_weights). `needs_logits` refuses a pre-training checkpoint that would
    stay one (it has no classifier). `random_init`: the same network with fresh weights (the caller
    seeds torch), the checkpoint giving only the configuration."""
    state = load_checkpoint(path)
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict) or not state.get("config"):
        raise ValueError(f"{path} holds no run configuration: it was not written by main.py "
                         "(a checkpoint needs 'model' and 'config')")
    from opts import complete_config  # opts reads the registry: imported here, not at the top
    trained = complete_config(state["config"])
    cfg = dict(trained, pretrain="none", pretrained_weights=None, tune_from="")
    overrides = (overrides(trained) if callable(overrides) else overrides) or {}
    cfg.update(overrides)
    if needs_logits and cfg["ssl"]:
        raise ValueError(f"{path} is a self-supervised pre-training checkpoint (--ssl {cfg['ssl']}): it has no "
                         "classifier; fine-tune it with main.py --tune_from first, or use tools/extract_features.py")
    model = build_model(cfg)
    if random_init:
        pass
    elif trained["ssl"] and not cfg["ssl"]:
        load_weights(model, path)
    else:
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as err:
            changed = {k: v for k, v in overrides.items() if trained.get(k) != v}
            if changed and "size mismatch" in str(err):
                as_trained = ", ".join(f"{k}={trained.get(k)}" for k in changed)
                raise ValueError(f"{path}: parameters of this model are sized for {as_trained} as trained (e.g. the "
                                 f"TRN and MLP blocks' layers); it cannot run with "
                                 f"{', '.join(f'{k}={v}' for k, v in changed.items())}") from err
            raise
    return model.eval(), cfg
