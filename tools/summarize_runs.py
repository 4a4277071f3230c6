"""Summarise a grid of runs (names x seeds) into <out>/results.csv and <out>/summary.md.

The synthetic comparison scripts (scripts/synthetic_clip_models.sh, synthetic_stmodeling_blocks.sh,
synthetic_sttnet_ablation.sh) train every name with every seed into <out>/seed<s>/<name>/ and test
it into <out>/seed<s>/<name>/test/metrics.json. This reads the test top-1 of each run and writes

    results.csv   <label>, seed<s> (top-1 per seed)..., mean, std[, train_<metric>...]
    summary.md    | <label> | test top-1 (mean ± std over seeds, 1 decimal) |[ train <METRIC> ... |]

then prints summary.md. --pairs adds, for the synthetic benchmark, the pair-direction accuracy
(ops.evaluation.pair_direction_accuracy on the runs' test/scores.npz: 50% = blind to frame
order). --reversal adds the reversal-direction accuracy
(ops.evaluation.reversal_direction_accuracy: each video's test/scores.npz against the same views
played backwards, test_reversed/scores.npz from test_models.py --reverse_time; exactly 50% = blind
to frame order). --pretext adds, per name and metric, the last training epoch's value from
the runs' logs (<out>/seed<s>/<name>/log/*/log.txt), averaged over the seeds whose log reports it
(empty when none does: that pretext task was not trained). --baseline NAME compares every other
name with it seed by seed (the runs of one seed share data order and initialisation): mean and
standard deviation of the per-seed differences and a paired t-test (two-sided p). --data ROOT
names the synthetic benchmark version the runs were measured on (from ROOT/synthetic.json).

    python tools/summarize_runs.py runs/synthetic_clip_models --names c3d stts --seeds 0 1 2
    python tools/summarize_runs.py runs/synthetic_sttnet_ablation --names tsn sttnet --seeds 0 \\
        --pretext rbrf_acc rbrc_acc
"""
import argparse
import csv
import glob
import json
import os
import re
import sys

import numpy as np
from scipy import stats

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ops.evaluation import pair_direction_accuracy, reversal_direction_accuracy  # noqa: E402
from tools.synthetic import read_version, time_reversed_partner  # noqa: E402


def read_top1(out, name, seed):
    """Test top-1 of one run, from its test/metrics.json."""
    with open(f"{out}/seed{seed}/{name}/test/metrics.json", encoding="utf-8") as f:
        return json.load(f)["top1"]


def last_train_metric(out, name, seed, metric):
    """`metric` of the run's last training epoch (its log's last `train:` line that has it), or None."""
    pattern = f"{out}/seed{seed}/{name}/log/*/log.txt"
    logs = glob.glob(pattern)
    if not logs:
        raise FileNotFoundError(f"no training log {pattern}")
    with open(logs[0], encoding="utf-8") as f:
        found = re.findall(rf"train: .*?{re.escape(metric)} ([\d.]+)", f.read())
    return float(found[-1]) if found else None


def read_pair_accuracy(out, name, seed):
    """Pair-direction accuracy of one run, from its test/scores.npz (synthetic benchmark)."""
    data = np.load(f"{out}/seed{seed}/{name}/test/scores.npz")
    return pair_direction_accuracy(data["scores"], data["labels"], time_reversed_partner())


PROTOCOL = ("num_clips", "test_crops", "twice_sample", "full_res", "softmax")  # views that must match


def read_reversal_accuracy(out, name, seed):
    """Reversal-direction accuracy of one run, from test/ and test_reversed/scores.npz."""
    run = f"{out}/seed{seed}/{name}"
    forward, backward = np.load(f"{run}/test/scores.npz"), np.load(f"{run}/test_reversed/scores.npz")
    if not np.array_equal(forward["indices"], backward["indices"]):
        raise ValueError(f"{run}: test/ and test_reversed/ scored other videos")
    protocols = []
    for sub in ("test", "test_reversed"):
        with open(f"{run}/{sub}/metrics.json", encoding="utf-8") as f:
            metrics = json.load(f)
        protocols.append({k: metrics.get(k) for k in PROTOCOL})
    if protocols[0] != protocols[1]:
        raise ValueError(f"{run}: test/ and test_reversed/ used other views: {protocols[0]} vs {protocols[1]}")
    return reversal_direction_accuracy(forward["scores"], backward["scores"], forward["labels"],
                                       time_reversed_partner())


def pretext_title(metric):
    """'rbrf_acc' -> 'train RBRF acc'."""
    task, _, stat = metric.partition("_")
    return f"train {task.upper()} {stat}".strip()


def benchmark_line(root):
    """'benchmark: synthetic v2, 72x72 frames, 40/10/10 videos per class, seed 0' from root/synthetic.json."""
    with open(os.path.join(root, "synthetic.json"), encoding="utf-8") as f:
        info = json.load(f)
    per_class = "/".join(str(info["videos_per_class"][s]) for s in ("train", "val", "test"))
    return (f"benchmark: synthetic v{read_version(root)}, {info['size'][0]}x{info['size'][1]} frames, "
            f"{per_class} videos per class, seed {info['seed']}")


def number(value, spec):
    """A figure for the table, or a dash where it is undefined (one seed, or identical differences)."""
    return "–" if np.isnan(value) else format(value, spec)


def paired(top1, baseline):
    """Per-seed differences of each name from the baseline: (name, diffs, mean, std, t, p) rows."""
    rows = []
    for name, values in top1.items():
        if name == baseline:
            continue
        diffs = np.array(values) - np.array(top1[baseline])
        t, p = stats.ttest_rel(values, top1[baseline]) if len(diffs) > 1 and np.std(diffs) > 0 else (np.nan, np.nan)
        rows.append((name, diffs, diffs.mean(), diffs.std(ddof=1) if len(diffs) > 1 else np.nan, t, p))
    return rows


def summarize(out, names, seeds, label="model", pretext=(), pairs=False, reversal=False, baseline=None, data=None):
    """Write results.csv and summary.md into `out`; returns the text of summary.md."""
    rows, cells, all_top1 = [], [], {}
    for name in names:
        top1 = [read_top1(out, name, s) for s in seeds]
        all_top1[name] = top1
        extra = []
        if pairs:
            pair = [read_pair_accuracy(out, name, s) for s in seeds]
            extra.append(f"{np.mean(pair):.1f} ± {np.std(pair):.1f}")
        if reversal:
            rev = [read_reversal_accuracy(out, name, s) for s in seeds]
            extra.append(f"{np.mean(rev):.1f} ± {np.std(rev):.1f}")
        for metric in pretext:
            values = [v for v in (last_train_metric(out, name, s, metric) for s in seeds) if v is not None]
            extra.append(f"{np.mean(values):.1f}" if values else "")
        mean, std = np.mean(top1), np.std(top1)
        rows.append([name, *top1, mean, std, *extra])
        cells.append([name, f"{mean:.1f} ± {std:.1f}", *extra])
    with open(os.path.join(out, "results.csv"), "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([[label, *[f"seed{s}" for s in seeds], "mean", "std",
                                  *(["pair_direction_acc"] if pairs else []),
                                  *(["reversal_direction_acc"] if reversal else []),
                                  *[f"train_{m}" for m in pretext]], *rows])
    # the shorter title leaves room for the pretext columns
    titles = [label, "test top-1 (mean ± std)" if pretext else "test top-1 (mean ± std over seeds)",
              *(["pair-direction acc. (50 = order-blind)"] if pairs else []),
              *(["reversal-direction acc. (50 = order-blind)"] if reversal else []),
              *[pretext_title(m) for m in pretext]]
    text = "".join("| " + " | ".join(line) + " |\n" for line in [titles, ["---"] * len(titles), *cells])
    if baseline is not None:
        if baseline not in all_top1:
            raise ValueError(f"--baseline {baseline!r} is not one of the names {names}")
        text += (f"\n| {label} | top-1 gain over {baseline}, same seed (mean ± std) | per seed | paired t | p |\n"
                 "| --- | --- | --- | ---: | ---: |\n")
        for name, diffs, mean, std, t, p in paired(all_top1, baseline):
            text += (f"| {name} | {mean:+.1f} ± {number(std, '.1f')} | {' / '.join(f'{d:+.1f}' for d in diffs)} "
                     f"| {number(t, '.2f')} | {'< 0.001' if p < 0.001 else number(p, '.3f')} |\n")
    if data is not None:
        text = benchmark_line(data) + "\n\n" + text
    with open(os.path.join(out, "summary.md"), "w", encoding="utf-8") as f:
        f.write(text)
    return text


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="folder holding seed<s>/<name>/ of every run; the summary goes there")
    p.add_argument("--names", nargs="+", required=True, help="run names (models, blocks), in table order")
    p.add_argument("--seeds", nargs="+", required=True, help="seeds, in column order")
    p.add_argument("--label", default="model", help="title of the name column")
    p.add_argument("--pretext", nargs="+", default=[],
                   help="training metrics to add from the logs' last epoch (e.g. rbrf_acc rbrc_acc)")
    p.add_argument("--pairs", action="store_true",
                   help="add the synthetic benchmark's pair-direction accuracy (from test/scores.npz)")
    p.add_argument("--reversal", action="store_true",
                   help="add the reversal-direction accuracy (from test/ and test_reversed/scores.npz)")
    p.add_argument("--baseline", default=None,
                   help="compare every other name with this one seed by seed (paired t-test)")
    p.add_argument("--data", default=None, help="synthetic dataset root: name its benchmark version")
    args = p.parse_args(argv)
    try:
        print(summarize(args.out, args.names, args.seeds, args.label, args.pretext, args.pairs, args.reversal,
                        args.baseline, args.data))
    except (OSError, ValueError, KeyError) as err:  # a missing or incomplete run: one line naming it
        print(f"summarize_runs.py: error: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
