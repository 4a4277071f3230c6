"""Check a dataset before training: every list line, folder, frame file and video.

Reports malformed list lines, labels outside [0, num_class), missing frame folders, frame files
and videos, unreadable ones (empty, truncated, undecodable) and num_frames that disagree with what
is on disk, each as `list_file:line: video: reason`; then a summary. Exit code 0 when everything
is clean, 1 otherwise, so it can gate a training script.

    python tools/check_dataset.py ucf101 --root /data/ucf101 -j 4
    python tools/check_dataset.py custom --list my_train.txt --num_class 10 --data_format video --decode

By default frame files are checked without decoding (present, non-empty, complete JPEG) and
videos are opened (a file shorter than its container declares is reported by every decoder),
counted, and their first and last frames decoded; --decode decodes every frame. JPEG frames are
decoded strictly (simplejpeg): where libjpeg reports corrupt data ("Corrupt JPEG data: N
extraneous bytes"), the frame is reported, although a lenient decoder (PIL) would return it with
damaged pixels.
"""
import argparse
import os
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ops.dataset import BadSampleError, RawFrameReader, list_lines, make_reader, parse_list_line  # noqa: E402
from ops.dataset_configs import DATASETS, get_dataset_config  # noqa: E402
from opts import VIDEO_DECODER, VIDEO_DECODERS  # noqa: E402

CATEGORIES = {
    "malformed": "malformed lines",
    "label": "labels out of range",
    "missing": "missing folders, videos or frame files",
    "unreadable": "unreadable frames or videos (empty, truncated, undecodable)",
    "count": "num_frames that disagree with the data",
}
MAX_FRAMES_SHOWN = 3
CHUNK = 64


def parse_list(list_file, list_order, num_class):
    """Entries (line, path, num_frames, label) and problems (line, category, message) of one list."""
    entries, problems = [], []
    for lineno, text in list_lines(list_file):
        try:
            path, num_frames, label = parse_list_line(text, list_order)
        except ValueError as e:
            problems.append((lineno, "malformed", f"{list_file}:{lineno}: {e}"))
            continue
        if not 0 <= label < num_class:
            problems.append((lineno, "label", f"{list_file}:{lineno}: label {label} outside [0, {num_class})"))
            continue
        entries.append((lineno, path, num_frames, label))
    return entries, problems


def check_frames(reader, folder, num_frames, decode):
    """Problems of one frame folder."""
    if not os.path.isdir(folder):
        return [("missing", "no such frame folder")]
    files = set(os.listdir(folder))
    on_disk = reader.num_frames(folder)
    problems = []
    if on_disk == 0:
        return [("missing", f"no files named like {reader.image_tmpl}")]
    if num_frames >= 0 and num_frames != on_disk:
        problems.append(("count", f"the list says {num_frames} frames, the folder has {on_disk}"))
    bad = []
    for index in range(max(num_frames, on_disk)):
        name = reader.image_tmpl.format(index + 1)
        if name not in files:
            bad.append(("missing", f"frame {index} (0-based): missing {name}"))
            continue
        try:
            if decode:
                reader.read(folder, [index])
            else:
                reader.read_bytes(folder, index)
        except BadSampleError as e:
            bad.append(("unreadable", f"frame {index} (0-based): {e.reason}"))
    for category in ("missing", "unreadable"):
        of_kind = [message for kind, message in bad if kind == category]
        if of_kind:
            more = f" (+{len(of_kind) - MAX_FRAMES_SHOWN} more)" if len(of_kind) > MAX_FRAMES_SHOWN else ""
            problems.append((category, f"{len(of_kind)} bad frame(s): " + "; ".join(of_kind[:MAX_FRAMES_SHOWN]) + more))
    return problems


def check_video(reader, path, num_frames, decode):
    """Problems of one video file."""
    if not os.path.isfile(path):
        return [("missing", "no such video file")]
    try:
        on_disk = reader.num_frames(path)
        if on_disk < 1:
            return [("unreadable", "no frames")]
        if decode:
            for start in range(0, on_disk, CHUNK):
                reader.read(path, range(start, min(start + CHUNK, on_disk)))
        else:
            reader.read(path, [0, on_disk - 1])
    except BadSampleError as e:
        frame = f"frame {e.frame} (0-based): " if e.frame is not None else ""
        return [("unreadable", f"{frame}{e.reason}")]
    if num_frames >= 0 and num_frames != on_disk:
        return [("count", f"the list says {num_frames} frames, the video has {on_disk}")]
    return []


def check_entry(list_file, reader, root, entry, decode):
    lineno, path, num_frames, _ = entry
    full = os.path.join(root, path)
    if isinstance(reader, RawFrameReader):
        problems = check_frames(reader, full, num_frames, decode)
    else:
        problems = check_video(reader, full, num_frames, decode)
    return [(lineno, category, f"{list_file}:{lineno}: {path}: {message}") for category, message in problems]


def check_list(list_file, cfg, reader, decode, workers, progress=True):
    """(problems, number of list lines): problems are (category, message) in line order."""
    if not os.path.isfile(list_file):
        return [("missing", f"{list_file}: no such list file")], 0
    try:
        entries, problems = parse_list(list_file, cfg.list_order, cfg.num_class)
    except ValueError as e:  # not UTF-8 text: the whole list is unreadable
        return [("malformed", str(e))], 0
    num_lines = len(entries) + len(problems)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = pool.map(lambda entry: check_entry(list_file, reader, cfg.root, entry, decode), entries)
        for found in tqdm(results, total=len(entries), desc=os.path.basename(list_file), unit="video",
                          disable=not progress):
            problems.extend(found)
    return [(category, message) for _, category, message in sorted(problems, key=lambda p: p[0])], num_lines


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", help=f"dataset key: {', '.join(DATASETS)}")
    p.add_argument("--list", nargs="+", default=None,
                   help="list file(s) to check (default: the dataset's train, val and test lists)")
    p.add_argument("--root", "--root_path", dest="root", default=None,
                   help="dataset root (default: $STTNET_DATA/<dataset> or the dataset's own)")
    p.add_argument("--split", type=int, default=1, help="official split (ucf101, hmdb51)")
    p.add_argument("--num_class", type=int, default=None, help="number of classes (needed for 'custom')")
    p.add_argument("--data_format", default=None, choices=["rawframes", "video"], help="default: the dataset's")
    p.add_argument("--decoder", default=VIDEO_DECODER, choices=VIDEO_DECODERS, help="video decoder")
    p.add_argument("--image_tmpl", default=None, help="frame file name template (default: the dataset's)")
    p.add_argument("--list_order", default=None, choices=["path_frames_label", "path_label_frames"],
                   help="field order of the list files (default: the dataset's)")
    p.add_argument("--decode", action="store_true", help="decode every frame (slower, catches more)")
    p.add_argument("-j", "--workers", type=int, default=1, help="threads checking videos in parallel")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    overrides = dict(num_class=args.num_class, data_format=args.data_format, image_tmpl=args.image_tmpl,
                     list_order=args.list_order)
    if args.list:
        overrides["train_list"] = args.list[0]  # only so that 'custom' has a list
    try:
        cfg = get_dataset_config(args.dataset, args.root, args.split, **overrides)
    except ValueError as e:
        parser.error(str(e))
    lists = args.list or list(dict.fromkeys(x for x in (cfg.train_list, cfg.val_list, cfg.test_list) if x))
    reader = make_reader(cfg.data_format, cfg.image_tmpl, args.decoder, jpeg_decoder="simplejpeg")  # strict
    print(f"checking {cfg.name} ({cfg.data_format}, {cfg.num_class} classes, root {cfg.root}) with {reader}")

    totals, checked = Counter(), 0
    for list_file in lists:
        problems, count = check_list(list_file, cfg, reader, args.decode, args.workers, not args.no_progress)
        checked += count
        for category, message in problems:
            print(message)
            totals[category] += 1
        print(f"{list_file}: {count} line(s), {len(problems)} problem(s)")
    print(f"summary: {checked} line(s) in {len(lists)} list(s), {sum(totals.values())} problem(s)")
    for category, label in CATEGORIES.items():
        print(f"  {totals[category]:6d}  {label}")
    return 1 if totals else 0


if __name__ == "__main__":
    sys.exit(main())
