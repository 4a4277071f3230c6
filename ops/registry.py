"""Name -> builder registries (timm's habit: one function per architecture).

    BACKBONES = Registry("backbone")

    @BACKBONES.register("resnet50")
    def resnet50(**kwargs): ...

    net = BACKBONES.create("resnet50", pretrained_weights=None)

A leaf: the registries start empty and each model file fills them when imported;
ops/model_zoo.py imports every model file, and ops/models.py (the entry) imports the zoo.

A registry may sort its entries into roles, declared at registration: MODELS has
`family` (a model around the 2D backbone --arch, chosen with --model: tsn, sttnet, ...),
`whole` (a complete network named by --arch: the 3D clip models) and `ssl` (a pre-training
method, --ssl, whose encoder is --arch).

A model may declare its published settings with it, `MODELS.register("stts", defaults=dict(dropout=0.0))`:
opts.resolve_model_defaults applies them to the options the user left unset (opts.MODEL_OPTIONS).
"""


class Registry:
    def __init__(self, kind, roles=()):
        self.kind, self.roles = kind, tuple(roles)
        self._builders, self._roles, self._defaults = {}, {}, {}

    def register(self, name, role=None, defaults=None):
        if (role is None) != (not self.roles) or (role is not None and role not in self.roles):
            need = f"one of {', '.join(self.roles)}" if self.roles else "none"
            raise ValueError(f"{self.kind} {name!r}: role must be {need}, got {role!r}")

        def deco(fn):
            if name in self._builders:
                raise KeyError(f"{self.kind} {name!r} is registered twice")
            self._builders[name], self._roles[name] = fn, role
            self._defaults[name] = dict(defaults or {})
            return fn
        return deco

    def defaults(self, name):
        """The settings registered with `name` (empty when it declared none)."""
        self.get(name)
        return dict(self._defaults[name])

    def get(self, name):
        if name not in self._builders:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        return self._builders[name]

    def create(self, name, *args, **kwargs):
        return self.get(name)(*args, **kwargs)

    def role(self, name):
        """The role `name` was registered with (None when it is not registered)."""
        return self._roles.get(name)

    def names(self, role=None):
        return sorted(n for n in self._builders if role is None or self._roles[n] == role)

    def __contains__(self, name):
        return name in self._builders

    def __repr__(self):
        return f"Registry({self.kind!r}, {self.names()})"


# Whole models, built from the run configuration: build(cfg) -> nn.Module.
MODELS = Registry("model", roles=("family", "whole", "ssl"))
# 2D per-frame backbones: build(**kwargs) -> nn.Module returning feature maps.
BACKBONES = Registry("backbone")
# Segment-consensus / spatio-temporal blocks: build(**kwargs) -> nn.Module.
CONSENSUS = Registry("consensus")
