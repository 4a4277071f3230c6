"""The import layers of docs/architecture.md: leaves import only leaves, model files import leaves
and model files, only ops/model_zoo.py imports every model file and only ops/models.py (the
entry) imports the zoo; no import circle; every module imports alone in a fresh interpreter, and
the entry alone gives the full registries."""
import ast
import json
import os
import subprocess
import sys

from ops.models import BACKBONES, CONSENSUS, MODELS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBRARY = ("ops", "archs", "selfsupervision")
REGISTRIES = {"MODELS", "BACKBONES", "CONSENSUS"}
ZOO, ENTRY = "ops.model_zoo", "ops.models"


def library_modules():
    """{module name: parsed source} of every library module (packages' __init__ included)."""
    modules = {}
    for package in LIBRARY:
        for name in sorted(os.listdir(os.path.join(ROOT, package))):
            if name.endswith(".py"):
                module = package if name == "__init__.py" else f"{package}.{name[:-3]}"
                with open(os.path.join(ROOT, package, name)) as f:
                    modules[module] = ast.parse(f.read(), filename=f"{package}/{name}")
    return modules


def project_imports(tree, known):
    """The project modules a module imports, anywhere in its body (`from ops import tsn` included)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name in known}


def registers(tree):
    """Whether a module registers an entry (`@MODELS.register(...)` and the like)."""
    return any(isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "register"
               and isinstance(node.func.value, ast.Name) and node.func.value.id in REGISTRIES
               for node in ast.walk(tree))


def layers():
    modules = library_modules()
    imports = {name: project_imports(tree, modules) - {name.rsplit(".", 1)[0]} for name, tree in modules.items()}
    model_files = {name for name, tree in modules.items() if registers(tree)}
    leaves = set(modules) - model_files - {ZOO, ENTRY}
    return modules, imports, model_files, leaves


def test_each_layer_imports_only_what_is_below_it():
    modules, imports, model_files, leaves = layers()
    assert {"ops.tsn", "archs.resnet", "ops.trn", "selfsupervision.vtdl"} <= model_files
    assert {"ops.registry", "ops.model_api", "ops.transforms", "archs"} <= leaves
    for name in sorted(leaves):
        assert imports[name] <= leaves, f"leaf {name} imports {sorted(imports[name] - leaves)}"
    for name in sorted(model_files):
        above = imports[name] - leaves - model_files
        assert not above, f"model file {name} imports {sorted(above)}"
    importers = {name for name, found in imports.items() if ZOO in found}
    assert importers == {ENTRY}, f"only {ENTRY} may import the zoo, not {sorted(importers - {ENTRY})}"
    assert imports[ZOO] - set(LIBRARY) == model_files, f"the zoo misses {sorted(model_files - imports[ZOO])}"
    assert imports[ENTRY] <= leaves | {ZOO}


def test_no_import_circle_and_no_late_imports():
    modules, imports, _, _ = layers()
    done, path = set(), []

    def visit(name):
        if name in path:
            raise AssertionError("import circle: " + " -> ".join(path[path.index(name):] + [name]))
        if name in done:
            return
        path.append(name)
        for other in sorted(imports[name]):
            visit(other)
        path.pop()
        done.add(name)

    for name in sorted(modules):
        visit(name)
    for package in LIBRARY:
        for file in os.listdir(os.path.join(ROOT, package)):
            if file.endswith(".py"):
                with open(os.path.join(ROOT, package, file)) as f:
                    assert "E402" not in f.read(), f"{package}/{file}: an import below the code (noqa: E402)"


FRESH = """
import importlib, json, sys
report = {"alone": {}}
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m.split(".")[0] in ("ops", "archs", "selfsupervision")]:
        del sys.modules[loaded]
    importlib.import_module(name)      # raises on a circle that breaks an import
    registry = sys.modules["ops.registry"].MODELS if "ops.registry" in sys.modules else None
    report["alone"][name] = registry.names() if registry else []
for loaded in [m for m in sys.modules if m.split(".")[0] in ("ops", "archs", "selfsupervision")]:
    del sys.modules[loaded]
models = importlib.import_module("ops.models")
report["entry"] = {r: getattr(models, r).names() for r in ("MODELS", "BACKBONES", "CONSENSUS")}
print(json.dumps(report))
"""


def test_every_module_imports_alone_and_the_entry_fills_every_registry():
    """One fresh interpreter: each library module imported with no project module loaded before it,
    then ops.models alone, whose registries must be those of the whole test session."""
    modules = sorted(library_modules())
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", FRESH, *modules], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(report["alone"]) == set(modules)
    expected = {"MODELS": MODELS.names(), "BACKBONES": BACKBONES.names(), "CONSENSUS": CONSENSUS.names()}
    # entries registered by tests (names starting with _) are not part of the framework
    expected = {k: [n for n in v if not n.startswith("_")] for k, v in expected.items()}
    assert report["entry"] == expected
    assert report["alone"]["ops.registry"] == [] and report["alone"]["archs.stts"] == ["r2plus1d", "stts", "stts_a"]
