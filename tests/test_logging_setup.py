"""ops/logging_setup.py: library records reach the run's log.txt once, on rank 0 only."""
import logging
import warnings

import pytest

from ops.engine import RunLog
from ops.logging_setup import setup_logging, teardown_logging


@pytest.fixture(autouse=True)
def clean_logging():
    yield
    teardown_logging()


def test_library_record_reaches_log_txt_once_and_the_console(tmp_path, capsys):
    log_file = tmp_path / "run" / "log.txt"
    setup_logging(str(log_file), rank=0)
    setup_logging(str(log_file), rank=0)            # a second setup replaces the first: no duplicate lines
    logging.getLogger("ops.checkpoint").info("=> fine-tuning from a.pth: loaded 3/4 tensors")
    logging.getLogger("ops.checkpoint").debug("not shown")
    logging.getLogger("main").info("file only", extra={"console": False})
    warnings.warn("keys share BatchNorm statistics")
    teardown_logging()
    lines = log_file.read_text().splitlines()
    assert lines.count("=> fine-tuning from a.pth: loaded 3/4 tensors") == 1
    assert "file only" in lines and "not shown" not in lines
    assert sum("UserWarning: keys share BatchNorm statistics" in line for line in lines) == 1
    out = capsys.readouterr()
    assert out.out.count("loaded 3/4 tensors") == 1 and "file only" not in out.out
    logging.getLogger("ops.checkpoint").info("after teardown")
    assert "after teardown" not in log_file.read_text()


def test_other_ranks_write_no_file_and_show_only_warnings(tmp_path, capsys):
    log_file = tmp_path / "log.txt"
    assert setup_logging(str(log_file), rank=1) is None
    logging.getLogger("archs").info("=> loaded pretrained backbone weights")
    logging.getLogger("ops.data").warning("a worker is slow")
    teardown_logging()
    assert not log_file.exists()
    out = capsys.readouterr()
    assert "pretrained" not in out.out + out.err
    assert "[rank 1] warning: a worker is slow" in out.out


def test_run_log_lines_keep_their_format(tmp_path, capsys):
    log = RunLog(str(tmp_path), rank=0)
    log.text("epoch 1 train: loss 1.0000")
    log.text("=> parameter groups: ...", echo=False)
    logging.getLogger("ops.checkpoint").info("   missing (2): fc.bias, fc.weight")
    log.close()
    assert (tmp_path / "log.txt").read_text() == ("epoch 1 train: loss 1.0000\n=> parameter groups: ...\n"
                                                  "   missing (2): fc.bias, fc.weight\n")
    assert "parameter groups" not in capsys.readouterr().out
