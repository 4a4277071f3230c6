"""One process per device: set up from the launcher's environment, and small rank helpers.

torchrun and `python -m torch.distributed.launch` both export RANK, WORLD_SIZE, LOCAL_RANK and the
master address (the old launcher also passes --local_rank/--local-rank, which opts.py accepts); a
plain `python main.py` is a world of one and never touches torch.distributed. NCCL on CUDA,
gloo on CPU.
"""
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def distributed(self):
        return self.world_size > 1


def init_distributed(local_rank=None, backend=None):
    """Initialise the process group when launched with several processes; returns a DistInfo.
    `backend`: None for NCCL on CUDA and gloo on CPU; "gloo" on CUDA runs several processes on
    one GPU, which NCCL refuses ("Duplicate GPU detected")."""
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    rank = int(os.environ.get("RANK", 0))
    local_rank = int(os.environ.get("LOCAL_RANK", local_rank or 0))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        backend = backend or ("nccl" if device.type == "cuda" else "gloo")
        kwargs = {"device_id": device} if backend == "nccl" else {}
        dist.init_process_group(backend, rank=rank, world_size=world_size, **kwargs)
    return DistInfo(rank, world_size, local_rank, device)


def wrap_ddp(model, device, compiled=False):
    """DistributedDataParallel tuned for the step: gradients are views of the all-reduce buckets
    (no copy), and the graph is declared static (DDP then skips per-step bookkeeping), except
    under torch.compile, whose DDP graph splitting has not always supported static graphs.
    Every model of the framework gives every trainable parameter a gradient at every step; one
    that does not must say so with a class attribute `needs_unused_parameters = True`, and gets
    find_unused_parameters (a search of the graph every step) instead of the static graph."""
    unused = getattr(model, "needs_unused_parameters", False)
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None, gradient_as_bucket_view=True,
        find_unused_parameters=unused, static_graph=not (unused or compiled))


def is_dist():
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank():
    return dist.get_rank() if is_dist() else 0


def get_world_size():
    return dist.get_world_size() if is_dist() else 1


def is_main():
    return get_rank() == 0


def barrier():
    if is_dist():
        dist.barrier()


def all_reduce_sum(tensor):
    """Sum a tensor over ranks (in place on a copy); the identity in a world of one."""
    tensor = tensor.clone()
    if is_dist():
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
        out = tensor.to(device)
        dist.all_reduce(out)
        tensor = out.to(tensor.device)
    return tensor


_host_group = None


def host_group():
    """A gloo group over every rank, for small agreements the host makes without waiting for the
    device (on GPUs the default group is NCCL, whose tensors live on the device). Created on first
    use; every rank must call it at the same point (it is a collective the first time)."""
    global _host_group
    if _host_group is None:
        _host_group = dist.group.WORLD if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")
    return _host_group


def agree_on_skips(batches, group):
    """Yields (batch, empty on some rank, samples skipped in it over all ranks) for each collated
    batch (frames None = every item bad; batch[3] = the names of its skipped items).

    The ranks exchange each batch's two numbers with an asynchronous all-reduce over `group` (a
    host group) as soon as the batch arrives, and the answer is taken one batch later, when it is
    long there: no rank waits for the exchange, and the device is never read. Every rank thus
    sees the same numbers at the same step (the skip ceiling stops all of them together)."""
    pending = None
    for batch in batches:
        counts = np.array([float(batch[0] is None), float(len(batch[3]))])
        work = dist.all_reduce(torch.from_numpy(counts), group=group, async_op=True)
        if pending is not None:
            yield _agreed(*pending)
        pending = batch, counts, work
    if pending is not None:
        yield _agreed(*pending)


def _agreed(batch, counts, work):
    work.wait()
    return batch, bool(counts[0] > 0), int(counts[1])


def broadcast_buffers(module, src=0):
    """Give every rank rank `src`'s buffers (BatchNorm running statistics). DDP syncs them at the
    start of each training forward, so after the last step every rank holds its own; validation
    must score the weights the checkpoint saves (rank 0's)."""
    if is_dist():
        for buf in module.buffers():
            dist.broadcast(buf, src)


def cleanup():
    global _host_group
    if is_dist():
        dist.destroy_process_group()
    _host_group = None
