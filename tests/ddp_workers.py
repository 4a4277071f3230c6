"""Process entry points for the DDP tests, in a module that imports little (each spawned process
imports it)."""
import os

import torch
import torch.distributed as dist

from ops import distributed as du


def broadcast_bn_worker(rank, port, out):
    """Each rank updates a BatchNorm's running statistics on its own data, then broadcasts rank 0's."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        bn = torch.nn.BatchNorm1d(3).train()
        bn(torch.randn(8, 3) + rank)
        du.broadcast_buffers(bn)
        torch.save(bn.running_mean, os.path.join(out, f"mean{rank}.pt"))
    finally:
        dist.destroy_process_group()
