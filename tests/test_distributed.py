"""Two CPU processes (gloo) launched the two ways users launch: torchrun and the old
torch.distributed.launch. Training runs, and validation counts every video exactly once although
the 13 videos do not split evenly between the ranks."""
import os
import re
import socket
import subprocess
import sys

import pytest
import torch

from tests.test_main import base_args, make_colour_dataset, run_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("colours")
    return root, make_colour_dataset(str(root), per_class=(4, 3), extra_val=1)


LAUNCHERS = {
    "torchrun": lambda port: ["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port)],
    "launch": lambda port: ["-m", "torch.distributed.launch", "--nproc_per_node=2", f"--master_port={port}"],
}


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_two_process_training_counts_every_val_video_once(data, tmp_path, launcher):
    root, lists = data
    cmd = [sys.executable, *LAUNCHERS[launcher](free_port()), "main.py",
           *base_args(root, lists, tmp_path, 1, "--lr", "0.01", "-b", "2", "-j", "0")]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (run_dir(tmp_path, "log", 1) / "log.txt").read_text()
    assert "on 2 process(es)" in log
    assert "validation on 13 videos" in log
    state = torch.load(run_dir(tmp_path, "ckpt", 1) / "ckpt.pth", weights_only=True)
    assert state["config"]["world_size"] == 2 and not any(k.startswith("module.") for k in state["model"])


def test_two_machines_through_torchrun(data, tmp_path):
    """Multi-node torchrun (--nnodes 2 --node_rank 0|1, static rendezvous on the master's address),
    one process per "machine", both on this host: one run of world size 2, written by rank 0 only."""
    root, lists = data
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(rank),
                               "--nproc_per_node", "1", "--master_addr", "127.0.0.1", "--master_port", str(port),
                               "main.py", *base_args(root, lists, tmp_path, 1, "-b", "2", "-j", "0")],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for rank in (0, 1)]
    outputs = [node.communicate(timeout=300) for node in nodes]
    for node, (_, err) in zip(nodes, outputs):
        assert node.returncode == 0, err[-3000:]
    log = (run_dir(tmp_path, "log", 1) / "log.txt").read_text()
    assert "on 2 process(es)" in log and "validation on 13 videos" in log
    assert "=> done" in outputs[0][0] and "=> done" not in outputs[1][0]
    state = torch.load(run_dir(tmp_path, "ckpt", 1) / "ckpt.pth", weights_only=True)
    assert state["config"]["world_size"] == 2


def test_the_skip_ceiling_counts_every_rank_and_stops_them_together(data, tmp_path):
    """--on_bad_sample skip under DDP: the ceiling is a fraction of the epoch's samples over both
    ranks, and both ranks stop at the same step with the same count (named in rank 0's log.txt),
    whichever rank met the bad samples."""
    root, lists = data
    good = open(lists[0]).read().splitlines()
    train = tmp_path / "train.txt"
    train.write_text("\n".join(good[:1] + [f"gone_{i} 4 {i % 4}" for i in range(5)] + good[1:11]) + "\n")
    cmd = [sys.executable, *LAUNCHERS["torchrun"](free_port()), "main.py",
           *base_args(root, [str(train), lists[1]], tmp_path, 1, "-b", "2", "-j", "0", "--on_bad_sample", "skip")]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    said = {rank: re.search(rf"main\.py: error: \[rank {rank}\] epoch 1: (\d+) of 16 samples were bad, more than "
                            r"the ceiling --max_skip_fraction 0\.1", result.stderr) for rank in (0, 1)}
    assert said[0] and said[1], result.stderr[-3000:]
    assert said[0].group(1) == said[1].group(1)
    log = (run_dir(tmp_path, "log", 1) / "log.txt").read_text()
    assert f"epoch 1: {said[0].group(1)} of 16 samples were bad" in log
