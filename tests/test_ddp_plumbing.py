"""DDP plumbing in two gloo processes: agreement on empty batches, and how models are wrapped.
A small module of its own, so the spawned processes import little."""
import os
import socket

import torch

from ops import distributed as du


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Unused(torch.nn.Linear):
    needs_unused_parameters = True


def _agree_and_wrap(rank, init, out):
    """One rank: agree on a rank's empty batches; rank 0 also wraps two models in DDP."""
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    empty = {0: {1}, 1: {1, 3}}[rank]
    bad = {0: {1: 2, 4: 1}, 1: {1: 2, 2: 1, 3: 2}}[rank]   # batch -> items skipped in it on this rank
    batches = [(None if i in empty else torch.full((1,), i), i, None, ["bad"] * bad.get(i, 0)) for i in range(5)]
    agreed = [(batch[1], flag, count) for batch, flag, count in du.agree_on_skips(batches, du.host_group())]
    ddp = {}
    for name, model in (("plain", torch.nn.Linear(2, 2)), ("unused", _Unused(2, 2))):
        wrapped = du.wrap_ddp(model, torch.device("cpu"))
        ddp[name] = (wrapped.find_unused_parameters, wrapped.static_graph, wrapped.gradient_as_bucket_view)
    torch.save({"agreed": agreed, "ddp": ddp}, os.path.join(out, f"{rank}.pt"))
    du.cleanup()


def test_ranks_agree_on_skips_and_ddp_follows_the_model(tmp_path):
    """--on_bad_sample skip under DDP: a batch empty on one rank is skipped by both, in order, and
    both count the samples skipped on either; DDP is static unless the model declares unused
    parameters."""
    torch.multiprocessing.spawn(_agree_and_wrap, args=(f"tcp://127.0.0.1:{free_port()}", str(tmp_path)), nprocs=2)
    results = [torch.load(tmp_path / f"{rank}.pt") for rank in (0, 1)]
    expected = [(0, False, 0), (1, True, 4), (2, False, 1), (3, True, 2), (4, False, 1)]
    assert results[0]["agreed"] == expected and results[1]["agreed"] == expected
    assert results[0]["ddp"] == {"plain": (False, True, True), "unused": (True, False, True)}
