"""The one logging setup of the entry points (main.py, test_models.py, the tools).

Library modules log through `logging.getLogger(__name__)` and never print; the entry point calls
`setup_logging` once, so a checkpoint-load report or a pretrained-weight notice lands where the
run's own lines do:

- rank 0: INFO and above on the console through `tqdm.write` (a progress bar is not torn) and, when
  a file is given, in the run's log.txt, one line per record as written (no prefix: log.txt keeps
  its format);
- other ranks: warnings and errors only, on the console, prefixed `[rank N]`; no file;
- Python warnings (`warnings.warn`) take the same way (logger `py.warnings`).

A record with `extra={"console": False}` goes to the file only.
"""
import logging
import os
import sys

from tqdm import tqdm

_installed = {"handlers": [], "root_level": None}


class TqdmHandler(logging.Handler):
    """Console output through tqdm.write, to sys.stdout or sys.stderr as they are when a record is
    written (so a redirection made after setup is honoured)."""

    def __init__(self, stream="stdout", level=logging.NOTSET):
        super().__init__(level)
        if stream not in ("stdout", "stderr"):
            raise ValueError(f"stream must be 'stdout' or 'stderr', got {stream!r}")
        self.stream = stream

    def emit(self, record):
        try:
            tqdm.write(self.format(record), file=getattr(sys, self.stream))
        except Exception:
            self.handleError(record)


class PlainFormatter(logging.Formatter):
    """The message as it is for INFO; `warning: ` / `error: ` before the others (Python warnings
    already name their category)."""

    def __init__(self, prefix=""):
        super().__init__("%(message)s")
        self.prefix = prefix

    def format(self, record):
        text = super().format(record)
        if record.levelno >= logging.WARNING and record.name != "py.warnings":
            text = f"{record.levelname.lower()}: {text}"
        return self.prefix + text


def _on_console(record):
    return getattr(record, "console", True)


def setup_logging(log_file=None, rank=0, stream="stdout", level=logging.INFO):
    """Install the console handler (and on rank 0 the log file's) on the root logger, replacing any
    this function installed before. Returns the log file's path (None when there is none here)."""
    teardown_logging()
    root = logging.getLogger()
    console = TqdmHandler(stream, level if rank == 0 else logging.WARNING)
    console.setFormatter(PlainFormatter("" if rank == 0 else f"[rank {rank}] "))
    console.addFilter(_on_console)
    handlers = [console]
    if log_file and rank == 0:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        file_handler = logging.FileHandler(log_file, mode="a", encoding="utf-8")
        file_handler.setLevel(level)
        file_handler.setFormatter(PlainFormatter())
        handlers.append(file_handler)
    else:
        log_file = None
    for handler in handlers:
        root.addHandler(handler)
    _installed.update(handlers=handlers, root_level=root.level)
    root.setLevel(level)
    logging.captureWarnings(True)
    return log_file


def teardown_logging():
    """Remove and close what setup_logging installed (the log file is closed); restore the root
    level and Python's own warning display."""
    root = logging.getLogger()
    for handler in _installed["handlers"]:
        root.removeHandler(handler)
        handler.close()
    if _installed["root_level"] is not None:
        root.setLevel(_installed["root_level"])
        logging.captureWarnings(False)
    _installed.update(handlers=[], root_level=None)
