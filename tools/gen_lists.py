"""Write a dataset's list files from its official annotations, counting frames on disk.

Lines are `<path> <num_frames> <label>` for frame folders and `<path> <label>` for videos decoded
on the fly, paths relative to the dataset root; files are named as ops/dataset_configs.py expects
(`<key>_<subset>[_split_<k>]_<format>.txt`). Subsets: `train`, `val` and, where the official test
set has labels, `test`. The validation set never comes from the test set (so nothing is selected
on test): UCF101's is a held-out 10% of each class's training groups (one actor's clips never
straddle train and val; `trainval` is the whole official training list), HMDB51's the clips its
split files mark 0 (unused); the other datasets ship one. A video without a frame folder, with
zero frames or with a gap in its numbering is reported, and the exit status is 1 unless
--allow_missing (then it is left out of the lists and only listed in `<key>_missing.txt`).

    python tools/gen_lists.py ucf101 --annotations data/ucf101/ucfTrainTestlist --root data/ucf101
"""
import argparse
import csv
import glob
import hashlib
import io
import json
import os
import re
import string
import sys
from concurrent.futures import ThreadPoolExecutor

from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ops.dataset_configs import list_file_name  # noqa: E402

# Frame file names per dataset, as in the table of ops/dataset_configs.py (a test keeps them equal).
FRAME_TMPL = {"ucf101": "img_{:05d}.jpg", "hmdb51": "img_{:05d}.jpg", "something": "{:05d}.jpg",
              "somethingv2": "{:06d}.jpg", "jester": "{:05d}.jpg", "kinetics": "img_{:05d}.jpg"}
DATASETS = tuple(FRAME_TMPL)


class AnnotationError(ValueError):
    """A malformed annotation file; the message names the file and line."""


def _read_text(path):
    """A text annotation file: UTF-8 whatever the locale, a byte-order mark allowed."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        lineno = data[:err.start].count(b"\n") + 1
        raise AnnotationError(f"{path} line {lineno}: not UTF-8 text ({err.reason})") from None


def _read_lines(path):
    """(line number, text) of the non-blank lines."""
    lines = io.StringIO(_read_text(path), newline=None)
    return [(i, line.strip()) for i, line in enumerate(lines, 1) if line.strip()]


def _read_json(path):
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as err:
        raise AnnotationError(f"{path} line {err.lineno}: not valid json ({err.msg})") from None


def _find(folder, names):
    """The first of `names` present in folder."""
    for name in names:
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    raise FileNotFoundError(f"none of {', '.join(names)} in {folder}")


# ---------------------------------------------------------------------------------------------
# Annotations -> {subset: [(video, label)]} and the class names. `video` is the video's path
# relative to the videos folder (with its extension) or, for datasets shipped as frames only,
# the frame folder's name; the frame folder is always the video path without its extension.

def ucf101(ann, split, val_fraction=0.1):
    """Official split `split`; val = a deterministic `val_fraction` of each class's groups."""
    classes = []
    for n, (i, line) in enumerate(_read_lines(os.path.join(ann, "classInd.txt")), 1):
        fields = line.split()
        if len(fields) != 2 or fields[0] != str(n):
            raise AnnotationError(f"{ann}/classInd.txt line {i}: expected '{n} <ClassName>', got {line!r}")
        classes.append(fields[1])
    by_name = {c.lower(): k for k, c in enumerate(classes)}

    train = []
    path = os.path.join(ann, f"trainlist0{split}.txt")
    for i, line in _read_lines(path):
        fields = line.split()
        if len(fields) != 2 or not fields[1].isdigit() or not 1 <= int(fields[1]) <= len(classes):
            raise AnnotationError(f"{path} line {i}: expected '<Class>/<video>.avi <1..{len(classes)}>', got {line!r}")
        train.append((fields[0], int(fields[1]) - 1))
    test = []
    path = os.path.join(ann, f"testlist0{split}.txt")
    for i, line in _read_lines(path):
        video = line.split()[0]
        label = by_name.get(video.split("/")[0].lower())
        if "/" not in video or label is None:
            raise AnnotationError(f"{path} line {i}: '{video}' is not '<Class>/<video>' with a class of classInd.txt")
        test.append((video, label))
    train, val = _hold_out_groups(train, val_fraction, r"_g(\d+)_c\d+")
    return {"train": train, "val": val, "test": test, "trainval": sorted(train + val)}, classes


def _hold_out_groups(items, fraction, group_pattern):
    """Split items into (kept, held out) by moving whole groups: per class, round(fraction x
    groups) (at least 1 when a class has 2 or more groups), chosen by a hash of the group name
    so the choice is deterministic and needs no random state."""
    groups = {}
    for video, label in items:
        m = re.search(group_pattern, os.path.basename(video))
        if m is None:
            raise AnnotationError(f"cannot read the group id of '{video}' (expected {group_pattern!r})")
        groups.setdefault(label, {}).setdefault(m.group(1), []).append((video, label))
    kept, held = [], []
    for label in sorted(groups):
        names = sorted(groups[label], key=lambda g: hashlib.md5(f"{label}/{g}".encode()).hexdigest())
        n_val = round(fraction * len(names))
        if fraction > 0 and len(names) > 1:
            n_val = min(max(1, n_val), len(names) - 1)
        for j, g in enumerate(names):
            (held if j < n_val else kept).extend(groups[label][g])
    return sorted(kept), sorted(held)


def hmdb51(ann, split):
    """Split files `<class>_test_split<k>.txt`: tag 1 -> train, 2 -> test, 0 -> val."""
    files = {}
    for path in glob.glob(os.path.join(ann, "*_test_split*.txt")):
        m = re.fullmatch(r"(.+)_test_split(\d)\.txt", os.path.basename(path))
        if m:
            files.setdefault(m.group(1), {})[int(m.group(2))] = path
    if not files:
        raise FileNotFoundError(f"no <class>_test_split<k>.txt files in {ann}")
    classes = sorted(files)
    subsets = {"train": [], "val": [], "test": []}
    tags = {"1": "train", "2": "test", "0": "val"}
    for label, name in enumerate(classes):
        if split not in files[name]:
            raise FileNotFoundError(f"{ann}: no {name}_test_split{split}.txt")
        path = files[name][split]
        for i, line in _read_lines(path):
            fields = line.split()
            if len(fields) != 2 or fields[1] not in tags:
                raise AnnotationError(f"{path} line {i}: expected '<video>.avi <0|1|2>', got {line!r}")
            subsets[tags[fields[1]]].append((f"{name}/{fields[0]}", label))
    return {k: sorted(v) for k, v in subsets.items()}, classes


def _semicolon_csv(ann, prefix):
    """Something-Something V1 and Jester: `<prefix>-labels.csv` (line order = label) and
    `<prefix>-{train,validation}.csv` with `<id>;<label name>` lines."""
    classes = [line for _, line in _read_lines(os.path.join(ann, f"{prefix}-labels.csv"))]
    by_name = {c: k for k, c in enumerate(classes)}
    subsets = {}
    for subset, part in (("train", "train"), ("val", "validation")):
        path = os.path.join(ann, f"{prefix}-{part}.csv")
        items = []
        for i, line in _read_lines(path):
            fields = line.split(";")
            if len(fields) != 2 or fields[1] not in by_name:
                raise AnnotationError(f"{path} line {i}: expected '<id>;<label of {prefix}-labels.csv>', got {line!r}")
            items.append((fields[0], by_name[fields[1]]))
        subsets[subset] = items
    return subsets, classes


def something(ann):
    return _semicolon_csv(ann, "something-something-v1")


def jester(ann):
    return _semicolon_csv(ann, "jester-v1")


def somethingv2(ann):
    """json annotations: label = the template with its brackets removed, looked up in labels.json."""
    ids = {name: int(k) for name, k in _read_json(os.path.join(ann, "something-something-v2-labels.json")).items()}
    classes = [None] * len(ids)
    for name, k in ids.items():
        classes[k] = name
    if None in classes:
        raise AnnotationError(f"{ann}/something-something-v2-labels.json: label ids are not 0..{len(ids) - 1}")
    subsets = {}
    for subset, part in (("train", "train"), ("val", "validation")):
        path = os.path.join(ann, f"something-something-v2-{part}.json")
        entries = _read_json(path)
        items = []
        for n, e in enumerate(entries):
            name = e.get("template", "").replace("[", "").replace("]", "")
            if "id" not in e or name not in ids:
                raise AnnotationError(f"{path} entry {n}: no id or template '{name}' is not in the labels json")
            items.append((f"{e['id']}.webm", ids[name]))
        subsets[subset] = items
    return subsets, classes


def kinetics(ann):
    """csv files with a `label,youtube_id,time_start,time_end,split` header (extra columns are
    ignored): the file whose name holds 'train', 'val' and, if labelled, 'test'. Classes are the
    training labels sorted. Videos are found by name (see _locate)."""
    paths = {}
    for path in sorted(glob.glob(os.path.join(ann, "*.csv"))):
        base = os.path.basename(path).lower()
        for subset in ("train", "val", "test"):
            if subset in base:
                if subset in paths:
                    raise AnnotationError(f"{ann}: both {paths[subset]} and {path} look like the {subset} csv")
                paths[subset] = path
    if "train" not in paths or "val" not in paths:
        raise FileNotFoundError(f"{ann}: need a *train*.csv and a *val*.csv")
    rows = {}
    for subset, path in paths.items():
        reader = csv.DictReader(io.StringIO(_read_text(path), newline=""))
        need = {"label", "youtube_id", "time_start", "time_end"}
        if subset == "test" and "label" not in (reader.fieldnames or []):
            continue  # an unlabelled test set gives no list
        if not need <= set(reader.fieldnames or []):
            raise AnnotationError(f"{path}: header must have {sorted(need)}, got {reader.fieldnames}")
        rows[subset] = [(i, r) for i, r in enumerate(reader, 2)]
    classes = sorted({r["label"] for _, r in rows["train"]})
    by_name = {c: k for k, c in enumerate(classes)}
    subsets = {}
    for subset, entries in rows.items():
        items = []
        for i, r in entries:
            if r["label"] not in by_name:
                raise AnnotationError(f"{paths[subset]} line {i}: label '{r['label']}' is not a training label")
            try:
                key = f"{r['youtube_id']}_{int(float(r['time_start'])):06d}_{int(float(r['time_end'])):06d}"
            except ValueError:
                raise AnnotationError(f"{paths[subset]} line {i}: bad time_start/time_end") from None
            items.append((key, by_name[r["label"]]))
        subsets[subset] = items
    return subsets, classes


# ---------------------------------------------------------------------------------------------
# Frames on disk

def template_regex(tmpl):
    """A regex matching the file names that `tmpl` produces."""
    return re.compile("".join(re.escape(lit) + (r"\d+" if field is not None else "")
                              for lit, field, _, _ in string.Formatter().parse(tmpl)))


def count_frames(folder, tmpl, name_re=None):
    """(number of frames, problem or None): the files matching tmpl must be 1..N without gaps."""
    name_re = name_re or template_regex(tmpl)
    try:
        names = {e.name for e in os.scandir(folder) if name_re.fullmatch(e.name)}
    except FileNotFoundError:
        return 0, "no frame folder"
    except NotADirectoryError:
        return 0, "not a folder"
    if not names:
        return 0, "no frames"
    if any(tmpl.format(i) not in names for i in range(1, len(names) + 1)):
        return len(names), f"{len(names)} frames not numbered {tmpl.format(1)}..{tmpl.format(len(names))}"
    return len(names), None


def _locate(base, keys, with_ext, depth=3):
    """{key: path relative to base} for entries named `key` (folders) or `key.<ext>` (videos,
    when with_ext), at most `depth` folders down (Kinetics' `<split>/<class>/<id>.mp4` layout).
    A matched folder is not entered, so frame folders are never listed."""
    keys, found = set(keys), {}

    def scan(folder, rel, level):
        for entry in os.scandir(folder):
            key = os.path.splitext(entry.name)[0] if with_ext else entry.name
            if key in keys and (with_ext or entry.is_dir()):
                found[key] = rel + entry.name
            elif level < depth and entry.is_dir():
                scan(entry.path, f"{rel}{entry.name}/", level + 1)

    if os.path.isdir(base):
        scan(base, "", 1)
    return found


def _count_all(paths, root, tmpl, workers, desc, progress):
    """{path: count_frames result} for frame folders relative to root, counted in threads."""
    name_re = template_regex(tmpl)
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(lambda r: count_frames(os.path.join(root, r), tmpl, name_re), paths)
        return dict(zip(paths, tqdm(results, total=len(paths), desc=desc, unit="video", disable=not progress)))


def build_lists(subsets, root, data_format, frames_dir, videos_dir, tmpl, workers=8,
                locate=False, progress=True, counted=None):
    """{subset: [list lines]} and [(subset, path, problem)] for the videos that cannot be listed.

    With `locate` the annotation names are looked up on disk first (Kinetics, whose files are
    named <youtube_id>_<start>_<end>). `counted` ({path: count_frames result}) is filled and
    reused, so a folder in several subsets or splits is counted once."""
    counted = {} if counted is None else counted
    base = os.path.join(root, frames_dir if data_format == "rawframes" else videos_dir)
    if locate:
        where = _locate(base, {v for items in subsets.values() for v, _ in items}, data_format == "video")
        subsets = {s: [(where.get(v, v), lab) for v, lab in items] for s, items in subsets.items()}
    lines, missing = {}, []
    for subset, items in subsets.items():
        if data_format == "rawframes":
            rels = [f"{frames_dir}/{os.path.splitext(v)[0]}" for v, _ in items]
            todo = [r for r in dict.fromkeys(rels) if r not in counted]
            counted.update(_count_all(todo, root, tmpl, workers, f"count {subset}", progress))
            counts = [counted[r] for r in rels]
        else:
            rels = [f"{videos_dir}/{v}" for v, _ in items]
            counts = [(None, None if os.path.isfile(os.path.join(root, r)) else "no video file") for r in rels]
        out = []
        for rel, (n, problem), (_, label) in zip(rels, counts, items):
            if problem is None and re.search(r"\s", rel):
                problem = "path contains whitespace (rename it, e.g. spaces to '_')"
            if problem is not None:
                missing.append((subset, rel, problem))
            elif n is None:
                out.append(f"{rel} {label}")
            else:
                out.append(f"{rel} {n} {label}")
        lines[subset] = out
    return lines, missing


def main(argv=None):
    """Exit status 0 when every list was written; 1 with a one-line error for an annotation file
    that cannot be read, or with the report of unusable videos."""
    try:
        return run(argv)
    except (AnnotationError, OSError) as err:
        print(f"gen_lists.py: error: {err}", file=sys.stderr)
        return 1


def run(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", choices=DATASETS)
    p.add_argument("--annotations", required=True,
                   help="folder of the official annotation files (split lists, csv or json)")
    p.add_argument("--root", required=True, help="dataset root: lists are written here, paths are relative to it")
    p.add_argument("--format", dest="data_format", default="rawframes", choices=["rawframes", "video"],
                   help="list frame folders (with frame counts) or video files (default: %(default)s)")
    p.add_argument("--frames_dir", default="rawframes",
                   help="frame folders, relative to the root (default: %(default)s)")
    p.add_argument("--videos_dir", default="videos",
                   help="video files, relative to the root (default: %(default)s)")
    p.add_argument("--tmpl", default=None, help="frame file name template (default: the dataset's)")
    p.add_argument("--splits", type=int, nargs="+", default=[1, 2, 3],
                   help="official splits (ucf101, hmdb51; default: 1 2 3)")
    p.add_argument("--val_fraction", type=float, default=0.1,
                   help="ucf101: fraction of each class's training groups held out for validation "
                        "(default: %(default)s)")
    p.add_argument("--allow_missing", action="store_true",
                   help="leave unusable videos out of the lists (they are still reported) instead of failing")
    p.add_argument("-j", "--workers", type=int, default=8, help="threads counting frames (default: %(default)s)")
    args = p.parse_args(argv)
    tmpl = args.tmpl or FRAME_TMPL[args.dataset]

    if args.dataset in ("ucf101", "hmdb51"):
        jobs = []
        for split in args.splits:
            if args.dataset == "ucf101":
                jobs.append((split, *ucf101(args.annotations, split, args.val_fraction)))
            else:
                jobs.append((split, *hmdb51(args.annotations, split)))
    else:
        reader = {"something": something, "somethingv2": somethingv2, "jester": jester, "kinetics": kinetics}
        jobs = [(None, *reader[args.dataset](args.annotations))]

    outputs, missing, counted = {}, [], {}
    for split, subsets, classes in jobs:
        lines, miss = build_lists(subsets, args.root, args.data_format, args.frames_dir, args.videos_dir,
                                  tmpl, args.workers, locate=args.dataset == "kinetics", counted=counted)
        missing += miss
        for subset, out in lines.items():
            outputs[list_file_name(args.dataset, subset, args.data_format, split)] = out

    report = os.path.join(args.root, f"{args.dataset}_missing.txt")
    unique = sorted({rel: (subset, rel, problem) for subset, rel, problem in reversed(missing)}.values(),
                    key=lambda m: m[1])  # a video in several lists or splits is reported once
    if unique:
        with open(report, "w", encoding="utf-8") as f:
            f.writelines(f"{rel}\t{subset}\t{problem}\n" for subset, rel, problem in unique)
        for subset, rel, problem in unique[:10]:
            print(f"{subset}: {rel}: {problem}", file=sys.stderr)
        print(f"{len(unique)} unusable entries, all listed in {report}", file=sys.stderr)
        if not args.allow_missing:
            print("no list written; fix them or pass --allow_missing to leave them out", file=sys.stderr)
            return 1
    elif os.path.exists(report):
        os.remove(report)

    os.makedirs(args.root, exist_ok=True)
    classes = jobs[0][2]
    if args.dataset == "ucf101":
        class_file, text = "classInd.txt", "".join(f"{k} {c}\n" for k, c in enumerate(classes, 1))
    else:
        class_file, text = "classes.txt", "".join(c + "\n" for c in classes)
    with open(os.path.join(args.root, class_file), "w", encoding="utf-8") as f:
        f.write(text)
    for name, out in outputs.items():
        with open(os.path.join(args.root, name), "w", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in out)
        print(f"{os.path.join(args.root, name)}: {len(out)} videos")
    return 0


if __name__ == "__main__":
    sys.exit(main())
