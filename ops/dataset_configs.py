"""The dataset table: class counts, list files, frame templates and flip policy per dataset key.

List files live in the dataset root and are named `<key>_<subset>[_split_<k>]_<format>.txt`
(subset train / val, format rawframes / videos), e.g. `ucf101_train_split_1_rawframes.txt` or
`kinetics_val_videos.txt`; the class names are in `<root>/classes.txt` (line i = label i; UCF101:
`classInd.txt`). tools/gen_lists.py writes them under these names (`list_file_name`). The synthetic benchmark keeps
its own short names (`train_rawframes.txt`, ...). Paths inside a list are relative to the root.
The root comes from the caller (`--root_path`) or `$STTNET_DATA/<key>`, never from an absolute
path in the code. A dataset of your own is `custom` plus list files and `num_class`.
"""
import dataclasses
import os
from typing import Optional

from ops.transforms import TRAIN_AUGS

LIST_ORDERS = ("path_frames_label", "path_label_frames")
DATA_FORMATS = ("rawframes", "video")
FLIP_POLICIES = ("always", "never", "map")
_LIST_SUFFIX = {"rawframes": "rawframes", "video": "videos"}


def _symmetric(pairs):
    flip_map = {}
    for a, b in pairs:
        flip_map[a], flip_map[b] = b, a
    return flip_map


# Per key: the facts that do not depend on the root. `formats`: the data formats its lists exist
# for (first = default); `test_subset`: the list used for testing (the official test sets of
# Something-Something and Jester have no labels, and Kinetics results are reported on val).
_TABLE = {
    "ucf101": dict(num_class=101, image_tmpl="img_{:05d}.jpg", formats=("rawframes", "video"),
                   splits=(1, 2, 3), test_subset="test", class_file="classInd.txt", flip="always"),
    "hmdb51": dict(num_class=51, image_tmpl="img_{:05d}.jpg", formats=("rawframes", "video"),
                   splits=(1, 2, 3), test_subset="test", class_file="classes.txt", flip="always"),
    "something": dict(num_class=174, image_tmpl="{:05d}.jpg", formats=("rawframes",),
                      class_file="classes.txt", flip="map",
                      flip_map=_symmetric([(2, 4), (30, 41), (52, 66)])),
    "somethingv2": dict(num_class=174, image_tmpl="{:06d}.jpg", formats=("rawframes", "video"),
                        class_file="classes.txt", flip="map",
                        flip_map=_symmetric([(86, 87), (93, 94), (166, 167)])),
    "jester": dict(num_class=27, image_tmpl="{:05d}.jpg", formats=("rawframes",),
                   class_file="classes.txt", flip="never"),
    "kinetics": dict(num_class=400, image_tmpl="img_{:05d}.jpg", formats=("video", "rawframes"),
                     class_file="classes.txt", flip="always"),
    # A horizontal flip turns moving_left (4) into moving_right (5) and rotating_clockwise (8)
    # into rotating_anticlockwise (9) (class order of tools/synthetic.py).
    # Its training crop is the centre view (docs/synthetic.md: TSN's multi-scale crop cuts the
    # object in half too often for a from-scratch model to learn the shapes in a CPU budget).
    "synthetic": dict(num_class=12, image_tmpl="img_{:05d}.jpg", formats=("rawframes", "video"),
                      test_subset="test", class_file="classes.txt", flip="map",
                      flip_map=_symmetric([(4, 5), (8, 9)]), default_root="data/synthetic", train_aug="center"),
    "custom": dict(num_class=None, image_tmpl="img_{:05d}.jpg", formats=("rawframes", "video"),
                   class_file=None, flip="always"),
}
DATASETS = tuple(_TABLE)


@dataclasses.dataclass
class DatasetConfig:
    """Everything the data side needs to know about one dataset (see docs/architecture.md)."""
    name: str
    num_class: int
    root: str
    train_list: str
    val_list: str
    test_list: str
    image_tmpl: str = "img_{:05d}.jpg"
    list_order: str = "path_frames_label"
    data_format: str = "rawframes"
    flip: str = "always"
    flip_map: dict = dataclasses.field(default_factory=dict)
    class_names: Optional[tuple] = None
    train_aug: Optional[str] = None  # the dataset's own training crop; None = the model's published recipe

    def __repr__(self):
        fields = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "class_names" and value is not None:
                value = f"<{len(value)} names>"
            else:
                value = repr(value)
            fields.append(f"{f.name}={value}")
        return f"DatasetConfig({', '.join(fields)})"


def list_file_name(name, subset, data_format, split=None):
    """File name of a dataset's list, e.g. ('ucf101', 'train', 'rawframes', 1) ->
    'ucf101_train_split_1_rawframes.txt'; synthetic: ('synthetic', 'val', 'video') -> 'val_videos.txt'."""
    suffix = _LIST_SUFFIX[data_format]
    if name == "synthetic":
        return f"{subset}_{suffix}.txt"
    split_part = f"_split_{split}" if split is not None else ""
    return f"{name}_{subset}{split_part}_{suffix}.txt"


def read_class_names(path):
    """Class names from a file with one name per line (line i = label i), or with
    `<index> <name>` lines such as UCF101's classInd.txt (1-based), ordered by the index."""
    with open(path, encoding="utf-8-sig") as f:
        lines = [line.strip() for line in f if line.strip()]
    numbered = [line.split(maxsplit=1) for line in lines]
    if all(len(p) == 2 and p[0].isdigit() for p in numbered):
        return tuple(name for _, name in sorted(numbered, key=lambda p: int(p[0])))
    return tuple(lines)


def _default_root(name):
    if os.environ.get("STTNET_DATA"):
        return os.path.join(os.environ["STTNET_DATA"], name)
    default = _TABLE[name].get("default_root")
    if default is not None:
        return default
    if name == "custom":
        return "."
    raise ValueError(f"no root for dataset '{name}': pass --root_path or set $STTNET_DATA "
                     f"(the root is then $STTNET_DATA/{name})")


def get_dataset_config(name, root=None, split=1, **overrides):
    """The DatasetConfig of `name` with its root and split; keyword overrides (None = keep the
    table's value) replace any field, e.g. data_format='video', num_class=10, train_list=...
    Overridden list paths are used as given; the table's lists are inside the root."""
    if name not in _TABLE:
        raise ValueError(f"unknown dataset '{name}'; known: {', '.join(DATASETS)}")
    entry = _TABLE[name]
    field_names = {f.name for f in dataclasses.fields(DatasetConfig)} - {"name", "root"}
    unknown = set(overrides) - field_names
    if unknown:
        raise ValueError(f"unknown dataset setting(s) {sorted(unknown)}; known: {sorted(field_names)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    splits = entry.get("splits")
    if splits is not None and split not in splits:
        raise ValueError(f"dataset '{name}' has splits {list(splits)}, got split {split}")
    if splits is None and split != 1:
        raise ValueError(f"dataset '{name}' has no official splits; use split 1")
    root = root if root is not None else _default_root(name)
    data_format = overrides.get("data_format", entry["formats"][0])
    if data_format not in DATA_FORMATS:
        raise ValueError(f"data_format must be one of {DATA_FORMATS}, got '{data_format}'")
    if name != "custom" and data_format not in entry["formats"]:
        raise ValueError(f"dataset '{name}' comes as {' or '.join(entry['formats'])}, not '{data_format}'")

    lists = {}
    for subset, list_subset in (("train", "train"), ("val", "val"), ("test", entry.get("test_subset", "val"))):
        if name == "custom":
            lists[subset] = None
        else:
            lists[subset] = os.path.join(root, list_file_name(
                name, list_subset, data_format, split if splits is not None else None))
    class_names = None
    class_file = entry["class_file"]
    if class_file is not None and os.path.isfile(os.path.join(root, class_file)):
        class_names = read_class_names(os.path.join(root, class_file))

    cfg = DatasetConfig(name=name, num_class=entry["num_class"], root=root, train_list=lists["train"],
                        val_list=lists["val"], test_list=lists["test"], image_tmpl=entry["image_tmpl"],
                        data_format=data_format, flip=entry["flip"],
                        flip_map=dict(entry.get("flip_map", {})), class_names=class_names,
                        train_aug=entry.get("train_aug"))
    cfg = dataclasses.replace(cfg, **overrides)
    if name == "custom" and cfg.test_list is None:
        cfg.test_list = cfg.val_list
    _validate(cfg)
    return cfg


def _validate(cfg):
    if cfg.num_class is None or cfg.num_class < 1:
        raise ValueError(f"dataset '{cfg.name}' needs num_class >= 1 (--num_class), got {cfg.num_class}")
    if cfg.train_list is None and cfg.val_list is None and cfg.test_list is None:
        raise ValueError(f"dataset '{cfg.name}' needs list files (--train_list and/or --val_list, or "
                         "test_models.py --test_list)")
    if cfg.list_order not in LIST_ORDERS:
        raise ValueError(f"list_order must be one of {LIST_ORDERS}, got '{cfg.list_order}'")
    if cfg.train_aug is not None and cfg.train_aug not in TRAIN_AUGS:
        raise ValueError(f"train_aug must be one of {TRAIN_AUGS} or None, got '{cfg.train_aug}'")
    if cfg.flip not in FLIP_POLICIES:
        raise ValueError(f"flip must be one of {FLIP_POLICIES}, got '{cfg.flip}'")
    if cfg.flip == "map" and not cfg.flip_map:
        raise ValueError(f"dataset '{cfg.name}': flip='map' needs a flip_map")
    for a, b in cfg.flip_map.items():
        if cfg.flip_map.get(b) != a or not (0 <= a < cfg.num_class):
            raise ValueError(f"dataset '{cfg.name}': flip_map must be symmetric pairs of labels in "
                             f"[0, {cfg.num_class}), got {cfg.flip_map}")
    if cfg.class_names is not None and len(cfg.class_names) != cfg.num_class:
        raise ValueError(f"dataset '{cfg.name}': {len(cfg.class_names)} class names for "
                         f"{cfg.num_class} classes")
    try:
        cfg.image_tmpl.format(1)
    except (IndexError, KeyError, ValueError) as e:
        raise ValueError(f"image_tmpl '{cfg.image_tmpl}' does not format a frame number: {e}") from None
