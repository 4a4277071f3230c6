"""tools/benchmark_train.py runs both loops (bare backbone, full framework step) and reports them."""
import re

import pytest

from tools import benchmark_train


@pytest.mark.parametrize("extra", [[], ["--channels_last", "--amp", "bf16"]])
def test_reports_both_loops_and_the_overhead(extra, capsys):
    benchmark_train.main(["--arch", "resnet18", "--num_segments", "2", "--crop_size", "32", "--batch_size", "2",
                          "--num_class", "5", "--iters", "1", "--rounds", "1", "--device", "cpu", *extra])
    out = capsys.readouterr().out
    assert re.search(r"\| bare \| [\d.]+ \| [\d.]+ \|", out) and re.search(r"\| full \| [\d.]+ \| [\d.]+ \|", out)
    assert "overhead of the full step" in out
    assert ("channels_last" in out.splitlines()[0]) == ("--channels_last" in extra)
