"""Parameter groups with learning-rate and weight-decay multipliers (TSN's optimisation policy).

Every parameter is filed exactly once, by the module that owns it directly:
  first conv weight 1/1, first conv bias 2/0, other weights 1/1, other biases 2/0,
  normalisation layers 1/0, the new classifier `new_fc` 5/1 (weight) and 10/0 (bias) with fc_lr5
(fine-tuning onto a new dataset), else like any other layer. Each group gets
`lr = base lr x lr_mult`, `weight_decay = wd x decay_mult`, and the scheduler scales each group from
`lr_mult` (the reference codes computed such groups and then never applied them). The optimizer
takes them with the groups of equal multipliers merged (`merge_equal_groups`).

A module type with parameters of its own that no rule below covers must declare
`param_policy() -> {param_name: group}`, group being a name from GROUPS or a tuple
(new_name, lr_mult, decay_mult); anything left unmatched is an error, never silently untrained.
The names are relative to the module, so a model may also file a part it does not own directly
(CPC-Trans's encoder at lr/10: `encoder.layer1.0.conv1.weight`); a declaration wins over the rules.

A linear probe (`freeze_for_linear_probe`) trains only the parameters `linear_probe_parameters`
names; the frozen parts run as in evaluation.
"""
import torch.nn as nn

GROUPS = {
    "first_conv_weight": (1, 1),
    "first_conv_bias": (2, 0),
    "normal_weight": (1, 1),
    "normal_bias": (2, 0),
    "bn": (1, 0),
    "no_decay": (1, 0),
    "lr5_weight": (5, 1),
    "lr10_bias": (10, 0),
}

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm,
         nn.LocalResponseNorm)
# Layers whose parameters are plain weights and biases (recurrent weights included: the
# stmodeling reference trained only an RNN's input weights).
WEIGHTED = (nn.Linear, nn.Bilinear, nn.RNNBase, nn.RNNCellBase, nn.Embedding, nn.MultiheadAttention, nn.PReLU)


def _rule(module, module_name, param_name, is_first_conv, fc_lr5):
    kind = "bias" if "bias" in param_name else "weight"
    if is_first_conv:
        return f"first_conv_{kind}"
    if isinstance(module, NORMS):
        return "bn"
    if fc_lr5 and module_name.rsplit(".", 1)[-1] == "new_fc":
        return "lr5_weight" if kind == "weight" else "lr10_bias"
    if isinstance(module, CONVS + WEIGHTED):
        return f"normal_{kind}"
    return None


def build_param_groups(model, lr, weight_decay, fc_lr5=False):
    """Optimizer param groups for `model`: a list of dicts with params, lr, weight_decay, and the
    group's name, lr_mult and decay_mult (empty groups are left out)."""
    mults = dict(GROUPS)
    groups = {name: [] for name in GROUPS}
    seen, unmatched = set(), []
    first_conv_done = False
    declared = {}
    for module_name, module in model.named_modules():
        if hasattr(module, "param_policy"):
            declared.update({f"{module_name}.{name}" if module_name else name: group
                             for name, group in module.param_policy().items()})
    for module_name, module in model.named_modules():
        own = list(module.named_parameters(recurse=False))
        if not own:
            continue
        is_first_conv = isinstance(module, CONVS) and not first_conv_done
        first_conv_done = first_conv_done or isinstance(module, CONVS)
        for param_name, param in own:
            if id(param) in seen:
                continue
            seen.add(id(param))
            full_name = f"{module_name}.{param_name}" if module_name else param_name
            group = declared.get(full_name) or _rule(module, module_name, param_name, is_first_conv, fc_lr5)
            if isinstance(group, tuple):
                group, lr_mult, decay_mult = group
                if mults.setdefault(group, (lr_mult, decay_mult)) != (lr_mult, decay_mult):
                    raise ValueError(f"param group {group!r} declared with two different multipliers")
            if group is None:
                unmatched.append(f"{module_name or '<model>'}.{param_name} ({type(module).__name__})")
                continue
            if group not in mults:
                raise ValueError(f"{type(module).__name__}.param_policy() names unknown group {group!r}; "
                                 f"known: {', '.join(mults)} (or give (name, lr_mult, decay_mult))")
            groups.setdefault(group, []).append(param)
    if unmatched:
        raise ValueError("no optimisation policy for these parameters (give their module a "
                         f"param_policy() or a rule in ops/policies.py): {', '.join(unmatched)}")
    return [dict(params=params, lr=lr * mults[name][0], weight_decay=weight_decay * mults[name][1],
                 name=name, lr_mult=mults[name][0], decay_mult=mults[name][1])
            for name, params in groups.items() if params]


def classifier_is_new(missing):
    """Whether fine-tuning starts a new classifier: the checkpoint did not provide a `new_fc`
    parameter (`missing`: the model's parameter names it lacked). TSN's x5 / x10 classifier
    groups (fc_lr5) are for that case only, not for a classifier loaded with the rest."""
    return any(name.split(".")[-2:-1] == ["new_fc"] for name in missing)


def merge_equal_groups(groups):
    """The optimizer's groups: the declared groups with equal multipliers merged, in first-seen
    order (TSN's four become two: weights at 1/1, biases at 2/0). The update of each parameter is
    the same; the optimizer pays its per-group work once per merged group instead of once per
    name (docs/benchmarks.md). A merged group's `name` joins its members' names with "+"."""
    merged = {}
    for g in groups:
        key = (g["lr_mult"], g["decay_mult"])
        if key in merged:
            merged[key]["params"].extend(g["params"])
            merged[key]["name"] += "+" + g["name"]
        else:
            merged[key] = dict(g, params=list(g["params"]))
    return list(merged.values())


def regroup_optimizer_state(state, optimizer):
    """An optimizer state_dict saved with the declared groups separate (checkpoints written before
    `merge_equal_groups`) rearranged into `optimizer`'s merged groups, so such runs resume exactly;
    a state already in the optimizer's layout is returned as it is. Each saved group's name must
    be a member of exactly one of the optimizer's groups."""
    saved = {g.get("name"): g for g in state["param_groups"]}
    current = [g.get("name") for g in optimizer.param_groups]
    if list(saved) == current:
        return state
    groups = []
    for name in current:
        members = (name or "").split("+")
        if not all(m in saved for m in members):
            raise ValueError(f"the checkpoint's optimizer groups {sorted(saved, key=str)} do not make up this run's "
                             f"group {name!r}")
        groups.append(dict(saved[members[0]], name=name,
                           params=[i for m in members for i in saved[m]["params"]]))
    if sum(len(g["params"]) for g in groups) != sum(len(g["params"]) for g in state["param_groups"]):
        raise ValueError(f"the checkpoint's optimizer groups {sorted(saved, key=str)} are not this run's {current}")
    return dict(state, param_groups=groups)


def describe_groups(groups):
    """One line per group: name, parameter count, multipliers (printed at start, like TSM)."""
    return "\n".join(f"  {g['name']:<18} {sum(p.numel() for p in g['params']):>11,} params  "
                     f"lr x{g['lr_mult']:g}  wd x{g['decay_mult']:g}" for g in groups)


def linear_probe_parameters(model, finetune_report=None):
    """What a linear probe (`--train_what last`) trains: the parameters the model names in its
    `linear_probe_parameters()` (CPC-Trans: its BN1d and classifier), else the parameters
    `--tune_from` did not provide (in `finetune_report["missing"]`: the new classifier)."""
    if hasattr(model, "linear_probe_parameters"):
        return sorted(model.linear_probe_parameters())
    if finetune_report is None:
        raise ValueError("--train_what last (linear probe) needs --tune_from CHECKPOINT to say what is frozen")
    params = {name for name, _ in model.named_parameters()}
    missing = [name for name in finetune_report["missing"] if name in params]
    if not missing:
        raise ValueError("--train_what last: the --tune_from checkpoint provides every parameter of the model, so "
                         "nothing would learn (a probe needs a new classifier: another class count)")
    return missing


def freeze_for_linear_probe(model, trainable):
    """Only the parameters named in `trainable` learn. Every part of the model whose parameters
    are all frozen runs as in evaluation even in training (BatchNorm keeps its pre-trained
    statistics, dropout inside it is off): a forward pre-hook puts each of its modules in eval
    mode, whatever `train()` said. Returns the names left trainable."""
    names = {name for name, _ in model.named_parameters()}
    unknown = set(trainable) - names
    if unknown:
        raise ValueError(f"linear probe: the model has no parameter(s) {sorted(unknown)[:5]}")
    for name, param in model.named_parameters():
        param.requires_grad_(name in trainable)
    _run_frozen_parts_in_eval(model)
    return sorted(n for n, p in model.named_parameters() if p.requires_grad)


def _run_frozen_parts_in_eval(module):
    params = list(module.parameters())
    if params and not any(p.requires_grad for p in params):
        for part in module.modules():
            part.register_forward_pre_hook(_eval_mode)
        return
    for child in module.children():
        _run_frozen_parts_in_eval(child)


def _eval_mode(module, args):
    module.training = False
