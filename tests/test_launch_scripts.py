"""scripts/launch.sh: one GPU-count variable (NGPU, default 1) and torchrun by default, with
torch.distributed.launch still available, for every script that starts runs."""
import os
import shlex
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def dry_run(script, **env):
    res = subprocess.run(["bash", os.path.join("scripts", script)], cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, DRY_RUN="1", PYTHON="py", **env), timeout=60)
    return res.returncode, [shlex.split(line) for line in res.stdout.splitlines()], res.stderr


@pytest.mark.parametrize("script, env", [("ucf101_tsn.sh", {"IMAGENET_WEIGHTS": "w.pth"}),
                                         ("something_tsn.sh", {"IMAGENET_WEIGHTS": "w.pth"}),
                                         ("hmdb51_sttnet.sh", {}), ("jester_stmodeling.sh", {})])
def test_one_variable_one_default_torchrun_or_launch(script, env):
    code, cmds, err = dry_run(script, **env)
    assert code == 0, err
    assert cmds[-1][:2] == ["py", "main.py"]  # NGPU defaults to 1: a plain process
    code, cmds, err = dry_run(script, NGPU="2", **env)
    assert code == 0 and cmds[-1][:5] == ["py", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    if "tsn" in script:
        assert cmds[-1][cmds[-1].index("--batch-size") + 1] == "32"  # the total of 64 split over NGPU
    code, cmds, err = dry_run(script, NGPU="2", LAUNCHER="launch", PORT="29555", **env)
    assert code == 0 and cmds[-1][:7] == ["py", "-m", "torch.distributed.launch", "--master_port", "29555",
                                          "--nproc_per_node=2", "main.py"]
    code, _, err = dry_run(script, NGPU="2", LAUNCHER="mpirun", **env)
    assert code != 0 and "LAUNCHER must be 'torchrun' or 'launch'" in err


def test_no_script_keeps_its_own_gpu_variable_or_launcher():
    for name in os.listdir(os.path.join(ROOT, "scripts")):
        text = open(os.path.join(ROOT, "scripts", name), encoding="utf-8").read()
        assert "GPUS" not in text and "torchrun --nproc" not in text, name
        assert name == "launch.sh" or "torch.distributed.run" not in text, name
