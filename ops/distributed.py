"""One process per device: set up from the launcher's environment, and small rank helpers.

torchrun and `python -m torch.distributed.launch` both export RANK, WORLD_SIZE, LOCAL_RANK and the
master address (the old launcher also passes --local_rank/--local-rank, which opts.py accepts); a
plain `python main.py` is a world of one and never touches torch.distributed. NCCL on CUDA,
gloo on CPU.
"""
import os
from dataclasses import dataclass

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


def init_distributed(local_rank=None):
    """Initialise the process group when launched with several processes; returns a DistInfo."""
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    rank = int(os.environ.get("RANK", 0))
    local_rank = int(os.environ.get("LOCAL_RANK", local_rank or 0))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend, rank=rank, world_size=world_size, **kwargs)
    return DistInfo(rank, world_size, local_rank, device)


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


def cleanup():
    if is_dist():
        dist.destroy_process_group()
