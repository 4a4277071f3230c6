"""Name -> builder registries (timm's habit: one function per architecture).

    BACKBONES = Registry("backbone")

    @BACKBONES.register("resnet50")
    def resnet50(**kwargs): ...

    net = BACKBONES.create("resnet50", pretrained_weights=None)
"""


class Registry:
    def __init__(self, kind):
        self.kind = kind
        self._builders = {}

    def register(self, name):
        def deco(fn):
            if name in self._builders:
                raise KeyError(f"{self.kind} {name!r} is registered twice")
            self._builders[name] = fn
            return fn
        return deco

    def get(self, name):
        if name not in self._builders:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        return self._builders[name]

    def create(self, name, *args, **kwargs):
        return self.get(name)(*args, **kwargs)

    def names(self):
        return sorted(self._builders)

    def __contains__(self, name):
        return name in self._builders

    def __repr__(self):
        return f"Registry({self.kind!r}, {self.names()})"


# Whole models, built from the run configuration: build(cfg) -> nn.Module.
MODELS = Registry("model")
# 2D per-frame backbones: build(**kwargs) -> nn.Module returning feature maps.
BACKBONES = Registry("backbone")
# Segment-consensus / spatio-temporal blocks: build(**kwargs) -> nn.Module.
CONSENSUS = Registry("consensus")
