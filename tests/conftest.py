"""Shared test settings.

One intra-op thread: the tests use tiny tensors, and several processes (DataLoader workers,
torchrun ranks) share the cores, where multi-threaded kernels oversubscribe and crawl."""
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")  # inherited by subprocesses (torchrun ranks)
