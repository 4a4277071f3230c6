"""tools/summarize_runs.py: a names x seeds grid of fake runs -> results.csv and summary.md."""
import csv
import json

import numpy as np
import pytest

from tools import summarize_runs


def make_run(out, seed, name, top1, train_lines=()):
    """A run as the synthetic scripts leave it: test/metrics.json and log/<run>/log.txt."""
    run = out / f"seed{seed}" / name
    (run / "test").mkdir(parents=True)
    (run / "test" / "metrics.json").write_text(json.dumps({"top1": top1, "top5": 100.0}))
    (run / "log" / "run_0").mkdir(parents=True)
    lines = [f"epoch {e} train: loss 1.0000 top1 50.00 {extra} lr 1.000e-02" for e, extra in enumerate(train_lines, 1)]
    (run / "log" / "run_0" / "log.txt").write_text("\n".join(lines + ["epoch 1 validation: loss 0.9 top1 55.00"]))


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_top1_per_seed_mean_and_std(tmp_path, capsys):
    accs = {"avg": [40.0, 60.0, 50.0], "TRN": [70.0, 72.5, 90.0]}
    for name, values in accs.items():
        for seed, top1 in zip((0, 1, 2), values):
            make_run(tmp_path, seed, name, top1)
    summarize_runs.main([str(tmp_path), "--names", "TRN", "avg", "--seeds", "0", "1", "2", "--label", "block"])

    header, *rows = read_csv(tmp_path / "results.csv")
    assert header == ["block", "seed0", "seed1", "seed2", "mean", "std"]
    assert [row[0] for row in rows] == ["TRN", "avg"]                      # the order asked for
    for row in rows:
        values = accs[row[0]]
        assert [float(v) for v in row[1:4]] == values
        assert float(row[4]) == pytest.approx(np.mean(values)) and float(row[5]) == pytest.approx(np.std(values))
    summary = (tmp_path / "summary.md").read_text().splitlines()
    assert summary[0] == "| block | test top-1 (mean ± std over seeds) |"
    assert summary[1] == "| --- | --- |"
    assert summary[3] == f"| avg | {np.mean(accs['avg']):.1f} ± {np.std(accs['avg']):.1f} |"
    assert capsys.readouterr().out.strip() == (tmp_path / "summary.md").read_text().strip()


def test_pretext_columns_average_the_last_epoch_of_the_seeds_that_trained_it(tmp_path):
    make_run(tmp_path, 0, "tsn", 50.0, ["", ""])
    make_run(tmp_path, 1, "tsn", 52.0, ["", ""])
    make_run(tmp_path, 0, "sttnet", 60.0, ["rbrf_acc 20.00 rbrc_acc 10.00", "rbrf_acc 60.00 rbrc_acc 30.00"])
    make_run(tmp_path, 1, "sttnet", 64.0, ["rbrf_acc 30.00", "rbrf_acc 80.00"])     # no RBRC in this run
    summarize_runs.summarize(str(tmp_path), ["tsn", "sttnet"], ["0", "1"], pretext=["rbrf_acc", "rbrc_acc"])

    header, tsn, sttnet = read_csv(tmp_path / "results.csv")
    assert header[-2:] == ["train_rbrf_acc", "train_rbrc_acc"]
    assert tsn[-2:] == ["", ""]
    assert sttnet[-2:] == ["70.0", "30.0"]          # last epochs (60, 80) averaged; RBRC from seed 0 only
    summary = (tmp_path / "summary.md").read_text().splitlines()
    assert summary[0] == "| model | test top-1 (mean ± std) | train RBRF acc | train RBRC acc |"
    assert summary[1] == "| --- | --- | --- | --- |"
    assert summary[2] == "| tsn | 51.0 ± 1.0 |  |  |"
    assert summary[3] == "| sttnet | 62.0 ± 2.0 | 70.0 | 30.0 |"


def test_a_missing_run_names_the_file(tmp_path):
    make_run(tmp_path, 0, "c3d", 50.0)
    with pytest.raises(FileNotFoundError, match="seed1/c3d/test/metrics.json"):
        summarize_runs.summarize(str(tmp_path), ["c3d"], ["0", "1"])
    make_run(tmp_path, 0, "stts", 50.0)
    (tmp_path / "seed0" / "stts" / "log" / "run_0" / "log.txt").unlink()
    with pytest.raises(FileNotFoundError, match="seed0/stts/log"):
        summarize_runs.summarize(str(tmp_path), ["stts"], ["0"], pretext=["rbrf_acc"])


def test_a_missing_run_is_a_one_line_error_on_the_command_line(tmp_path, capsys):
    make_run(tmp_path, 0, "c3d", 50.0)
    with pytest.raises(SystemExit) as exit_info:
        summarize_runs.main([str(tmp_path), "--names", "c3d", "--seeds", "0", "1"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 1 and len(err.splitlines()) == 1
    assert err.startswith("summarize_runs.py: error:") and "seed1/c3d/test/metrics.json" in err


def test_pairs_column_reads_test_scores(tmp_path):
    from tools.synthetic import CLASSES
    left, right = CLASSES.index("moving_left"), CLASSES.index("moving_right")
    for seed, right_way in zip((0, 1), (True, False)):
        make_run(tmp_path, seed, "TRN", 50.0)
        scores = np.zeros((2, len(CLASSES)))
        scores[0, left if right_way else right] = 1   # video 0 is moving_left
        scores[1, right] = 1                          # video 1 is moving_right, always right
        np.savez(tmp_path / f"seed{seed}" / "TRN" / "test" / "scores.npz", scores=scores,
                 labels=np.array([left, right]))
    summarize_runs.main([str(tmp_path), "--names", "TRN", "--seeds", "0", "1", "--pairs"])
    header, row = read_csv(tmp_path / "results.csv")
    assert header[-1] == "pair_direction_acc" and row[-1] == "75.0 ± 25.0"
    assert "pair-direction acc. (50 = order-blind)" in (tmp_path / "summary.md").read_text()


def test_reversal_column_compares_each_run_with_its_reversed_test(tmp_path):
    from tools.synthetic import CLASSES
    left, right = CLASSES.index("moving_left"), CLASSES.index("moving_right")
    labels, indices = np.array([left, right]), np.array([0, 1])
    for seed, uses_order in zip((0, 1), (True, False)):
        make_run(tmp_path, seed, "TRN", 50.0)
        forward = np.zeros((2, len(CLASSES)))
        forward[0, left] = forward[1, right] = 1
        backward = forward[:, [right if c == left else left if c == right else c for c in range(len(CLASSES))]] \
            if uses_order else forward
        for sub, scores in (("test", forward), ("test_reversed", backward)):
            (tmp_path / f"seed{seed}" / "TRN" / sub).mkdir(exist_ok=True)
            np.savez(tmp_path / f"seed{seed}" / "TRN" / sub / "scores.npz", scores=scores, labels=labels,
                     indices=indices)
            (tmp_path / f"seed{seed}" / "TRN" / sub / "metrics.json").write_text(json.dumps({"top1": 50.0,
                                                                                            "num_clips": 1}))
    summarize_runs.main([str(tmp_path), "--names", "TRN", "--seeds", "0", "1", "--reversal"])
    header, row = read_csv(tmp_path / "results.csv")
    assert header[-1] == "reversal_direction_acc" and row[-1] == "75.0 ± 25.0"
    (tmp_path / "seed0" / "TRN" / "test_reversed" / "metrics.json").write_text(json.dumps({"num_clips": 10}))
    with pytest.raises(ValueError, match="other views"):
        summarize_runs.summarize(str(tmp_path), ["TRN"], ["0", "1"], reversal=True)
    np.savez(tmp_path / "seed1" / "TRN" / "test_reversed" / "scores.npz", scores=forward, labels=labels,
             indices=indices[::-1])
    with pytest.raises(ValueError, match="other videos"):
        summarize_runs.summarize(str(tmp_path), ["TRN"], ["1"], reversal=True)


def test_baseline_comparison_is_paired_by_seed_and_names_the_benchmark(tmp_path):
    from scipy import stats
    from tools import synthetic
    tsn, sttnet = [20.0, 30.0, 25.0, 40.0], [25.0, 31.0, 33.0, 42.0]
    for seed, (a, b) in enumerate(zip(tsn, sttnet)):
        make_run(tmp_path, seed, "tsn", a)
        make_run(tmp_path, seed, "sttnet", b)
    data = tmp_path / "data"
    synthetic.generate(str(data), (1, 0, 0), size=(16, 16), frames=(2, 2), formats=("rawframes",), progress=False)
    text = summarize_runs.summarize(str(tmp_path), ["tsn", "sttnet"], ["0", "1", "2", "3"], baseline="tsn",
                                    data=str(data))
    assert text.splitlines()[0] == \
        f"benchmark: synthetic v{synthetic.VERSION}, 16x16 frames, 1/0/0 videos per class, seed 0"
    diffs = np.subtract(sttnet, tsn)
    t, p = stats.ttest_rel(sttnet, tsn)
    row = text.splitlines()[-1]
    assert row == (f"| sttnet | {diffs.mean():+.1f} ± {diffs.std(ddof=1):.1f} | +5.0 / +1.0 / +8.0 / +2.0 "
                   f"| {t:.2f} | {p:.3f} |")
    assert 0 < p < 0.1  # unpaired, the spread of the seeds would hide the same gain
    with pytest.raises(ValueError, match="baseline"):
        summarize_runs.summarize(str(tmp_path), ["tsn", "sttnet"], ["0"], baseline="avg")


def test_one_seed_or_constant_differences_print_a_dash_not_nan(tmp_path):
    for seed, (a, b) in enumerate([(20.0, 25.0), (30.0, 35.0)]):
        make_run(tmp_path, seed, "tsn", a)
        make_run(tmp_path, seed, "sttnet", b)
    one = summarize_runs.summarize(str(tmp_path), ["tsn", "sttnet"], ["0"], baseline="tsn").splitlines()[-1]
    assert one == "| sttnet | +5.0 ± – | +5.0 | – | – |"
    same = summarize_runs.summarize(str(tmp_path), ["tsn", "sttnet"], ["0", "1"], baseline="tsn").splitlines()[-1]
    assert same == "| sttnet | +5.0 ± 0.0 | +5.0 / +5.0 | – | – |"


def test_a_tiny_p_value_prints_as_a_bound(tmp_path):
    for seed, (a, b) in enumerate([(20.0, 45.0), (30.0, 55.5), (25.0, 50.2)]):
        make_run(tmp_path, seed, "tsn", a)
        make_run(tmp_path, seed, "sttnet", b)
    row = summarize_runs.summarize(str(tmp_path), ["tsn", "sttnet"], ["0", "1", "2"], baseline="tsn").splitlines()[-1]
    assert row.endswith("| < 0.001 |")
