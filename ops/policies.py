"""Parameter groups with learning-rate and weight-decay multipliers (TSN's optimisation policy).

Every parameter is filed exactly once, by the module that owns it directly:
  first conv weight 1/1, first conv bias 2/0, other weights 1/1, other biases 2/0,
  normalisation layers 1/0, the new classifier `new_fc` 5/1 (weight) and 10/0 (bias) with fc_lr5
(fine-tuning onto a new dataset), else like any other layer. The group lists are the optimizer's
param groups: `lr = base lr x lr_mult`, `weight_decay = wd x decay_mult`, and the scheduler scales
each group from `lr_mult` (the reference codes computed such groups and then never applied them).

A module type with parameters of its own that no rule below covers must declare
`param_policy() -> {param_name: group}`, group being a name from GROUPS or a tuple
(new_name, lr_mult, decay_mult); anything left unmatched is an error, never silently untrained.
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
    for module_name, module in model.named_modules():
        own = list(module.named_parameters(recurse=False))
        if not own:
            continue
        policy = module.param_policy() if hasattr(module, "param_policy") else {}
        is_first_conv = isinstance(module, CONVS) and not first_conv_done
        first_conv_done = first_conv_done or isinstance(module, CONVS)
        for param_name, param in own:
            if id(param) in seen:
                continue
            seen.add(id(param))
            group = policy.get(param_name) or _rule(module, module_name, param_name, is_first_conv, fc_lr5)
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


def describe_groups(groups):
    """One line per group: name, parameter count, multipliers (printed at start, like TSM)."""
    return "\n".join(f"  {g['name']:<18} {sum(p.numel() for p in g['params']):>11,} params  "
                     f"lr x{g['lr_mult']:g}  wd x{g['decay_mult']:g}" for g in groups)


def freeze_for_linear_probe(model, trainable):
    """Linear evaluation of a fine-tuned clip model: every parameter not named in `trainable` (the
    ones `--tune_from` did not provide, i.e. the new classifier) stops learning, and the frozen
    normalisation layers keep their pre-trained statistics (they stay in eval mode in training).
    Returns the names left trainable."""
    trainable = set(trainable)
    for name, param in model.named_parameters():
        param.requires_grad_(name in trainable)
    for module in model.modules():
        own = list(module.parameters(recurse=False))
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in own):
            module.train = _stay_in_eval.__get__(module)
            module.eval()
    return sorted(n for n, p in model.named_parameters() if p.requires_grad)


def _stay_in_eval(module, mode=True):
    return nn.Module.train(module, False)
