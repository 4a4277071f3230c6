"""Host synchronisations per training iteration, counted on the CPU.

On a GPU every read of a device value by the host (`.item()`, `.cpu()`, `.tolist()`, `bool(t)`,
`float(t)`, printing a tensor...) waits for all queued work, and every tensor made on the host
inside the step (`torch.tensor(...)`, a factory without `device=`, `.to(device)`) is a copy that
the device waits for. None of them can be seen on a CPU by timing, so these tests intercept the
calls themselves: between two log lines a training iteration must make none, for every model
family; the log line itself reads the meters once.
"""
import os
import sys

import pytest
import torch

from ops import engine
from ops.engine import LRSchedule, train_one_epoch
from ops.models import build_model
from ops.policies import build_param_groups
from ops.registry import CONSENSUS
from ops.transforms import DeviceNormalize
from opts import default_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__", "__format__",
         "__repr__")
FACTORIES = ("arange", "rand", "randn", "randint", "randperm", "zeros", "ones", "empty", "full", "linspace", "eye")


def project_caller(depth=2):
    """True when the call came from project code (not torch itself, not this test)."""
    path = os.path.abspath(sys._getframe(depth).f_code.co_filename)
    return path.startswith(ROOT) and not path.startswith(os.path.join(ROOT, "tests")) \
        and "site-packages" not in path


class SyncCounter:
    """Patches the host-read methods of torch.Tensor, torch.tensor/as_tensor, device moves and
    device-less factories called from project code; `calls` lists what happened, in order."""

    def __init__(self, monkeypatch):
        self.calls, self.active = [], False
        for name in READS:
            self._wrap(monkeypatch, torch.Tensor, name, lambda *a, **k: True)
        self._wrap(monkeypatch, torch.Tensor, "to", self._moves_device)
        self._wrap(monkeypatch, torch.Tensor, "cuda", lambda *a, **k: project_caller(3))
        for name in ("tensor", "as_tensor"):
            self._wrap(monkeypatch, torch, name, lambda *a, **k: True)
        for name in FACTORIES:
            self._wrap(monkeypatch, torch, name, lambda *a, **k: "device" not in k and project_caller(3))

    @staticmethod
    def _moves_device(self_tensor, *args, **kwargs):
        """.to(device) / .to(other_tensor) in project code, except the engine's batch transfer
        (torch's own moves, e.g. in clip_grad_norm_, stay on the device of their inputs)."""
        if not project_caller(3) or sys._getframe(2).f_code is engine.to_device.__code__:
            return False
        return "device" in kwargs or any(isinstance(a, (str, torch.device, torch.Tensor)) for a in args)

    def _wrap(self, monkeypatch, owner, name, counts):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            if self.active and counts(*args, **kwargs):
                caller = sys._getframe(1)
                self.calls.append(f"{name} at {os.path.relpath(caller.f_code.co_filename, ROOT)}:{caller.f_lineno}")
            return original(*args, **kwargs)
        monkeypatch.setattr(owner, name, wrapper)


class CountingBatches:
    """A list of batches whose iteration records, before each batch, how many syncs happened."""

    def __init__(self, batches, counter):
        self.batches, self.counter, self.marks = batches, counter, []

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        for batch in self.batches:
            self.marks.append(len(self.counter.calls))
            self.counter.active = True
            yield batch
        self.marks.append(len(self.counter.calls))


class Lines:
    """The run log's text(), kept in a list."""

    def __init__(self):
        self.lines = []

    def text(self, line, echo=True):
        self.lines.append(line)


def syncs_per_iteration(model, frames_shape, monkeypatch, iters=4, print_freq=3, keep_views=False, amp=None,
                        labels=3):
    torch.manual_seed(0)
    normalize = DeviceNormalize.from_spec(model.input_spec)
    batch = lambda: (torch.randint(0, 256, frames_shape, dtype=torch.uint8),
                     torch.randint(0, labels, (frames_shape[0],)), torch.arange(frames_shape[0]), [])
    optimizer = torch.optim.SGD(build_param_groups(model, 0.01, 1e-4), lr=0.01, momentum=0.9)
    schedule = LRSchedule(optimizer, 0.01, "step", 1, iters)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    counter = SyncCounter(monkeypatch)
    loader = CountingBatches([batch() for _ in range(iters)], counter)
    log = Lines()
    train_one_epoch(model, loader, optimizer, schedule, scaler, normalize, torch.device("cpu"), 0, labels,
                    amp=amp, clip_gradient=10.0, keep_views=keep_views, print_freq=print_freq, progress=False, log=log)
    counter.active = False
    assert len(log.lines) == iters // print_freq and "loss" in log.lines[0]
    per_iter = [counter.calls[a:b] for a, b in zip(loader.marks, loader.marks[1:])]
    return per_iter, counter.calls[loader.marks[-1]:]


def assert_quiet_between_logs(per_iter, print_freq=3):
    """The first iteration may set things up; after it, only the log iterations read the host."""
    for it, calls in enumerate(per_iter):
        if it and (it + 1) % print_freq:
            assert not calls, f"iteration {it + 1}: {len(calls)} host syncs: {calls}"


def tsn_cfg(**kw):
    return default_config(**dict(dict(model="tsn", arch="tinynet", num_class=3, num_segments=3, crop_size=32,
                                      dropout=0.5, consensus_type="avg", img_feature_dim=16, rnn_hidden_size=8), **kw))


@pytest.mark.parametrize("consensus", [n for n in CONSENSUS.names() if n != "identity"])
def test_tsn_with_every_block(consensus, monkeypatch):
    """Every block that trains with labels (identity keeps per-segment scores)."""
    model = build_model(tsn_cfg(consensus_type=consensus))
    per_iter, _ = syncs_per_iteration(model, (2, 1, 3, 32, 32, 3), monkeypatch)
    assert_quiet_between_logs(per_iter)


def test_the_log_line_reads_the_meters_once_per_print_freq(monkeypatch):
    """The counter is live: the log iterations and the epoch end do read the device."""
    per_iter, after = syncs_per_iteration(build_model(tsn_cfg()), (2, 1, 3, 32, 32, 3), monkeypatch)
    assert per_iter[2] and 0 < len(per_iter[2]) <= 2
    assert after


def test_sttnet_with_both_pretexts_and_bf16(monkeypatch):
    model = build_model(tsn_cfg(model="sttnet", crop_size=64, scsa_dim=16, rbrf_hidden=8, rbrc_hidden=8))
    per_iter, _ = syncs_per_iteration(model, (2, 1, 3, 64, 64, 3), monkeypatch, iters=3, amp="bf16")
    assert_quiet_between_logs(per_iter)


@pytest.mark.parametrize("arch, clip_len, batch", [("c3d", 8, 1), ("r2plus1d", 2, 1), ("stts", 2, 1), ("stts_a", 4, 1),
                                                   ("r3d18", 2, 1), ("i3d", 8, 2)])
def test_clip_models(arch, clip_len, batch, monkeypatch):
    """Every clip model at its smallest input (C3D pools time by 8, so 8 frames)."""
    model = build_model(default_config(arch=arch, num_class=3, crop_size=32, clip_len=clip_len, dropout=0.5))
    per_iter, _ = syncs_per_iteration(model, (batch, 1, clip_len, 32, 32, 3), monkeypatch, iters=3)
    assert_quiet_between_logs(per_iter)


def test_cpc_trans(monkeypatch):
    model = build_model(default_config(ssl="cpc_trans", num_class=3, num_seq=3, pred_step=1, cpc_layers=1,
                                       cpc_heads=2, cpc_ff_dim=16, crop_size=32))
    per_iter, _ = syncs_per_iteration(model, (2, 1, 3, 32, 32, 3), monkeypatch, iters=3, keep_views=True)
    assert_quiet_between_logs(per_iter)


def test_vtdl_with_shuffling_bn(monkeypatch):
    model = build_model(default_config(ssl="vtdl", arch="r3d18", num_class=3, crop_size=32, clip_len=2, moco_k=8,
                                       bn_splits=2))
    per_iter, _ = syncs_per_iteration(model, (2, 3, 2, 32, 32, 3), monkeypatch, iters=3, keep_views=True)
    assert_quiet_between_logs(per_iter)
