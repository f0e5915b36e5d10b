"""More than one machine: the SLURM script's commands, and launch/multinode.yaml as two machines on localhost."""

from __future__ import annotations

import json
import os
import socket
import subprocess

import pytest

from tests.conftest import BIN, REPO, run_cmd
from tests.test_launch import GRPO_TINY


def fake_bin(tmp_path, nodes: int):
    """``srun`` running its command once per node with ``SLURM_NODEID``, ``scontrol``, an ``accelerate`` that echoes."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/usr/bin/env bash\nshift\n"  # drops --ntasks-per-node=1
                                  f"for i in $(seq 0 {nodes - 1}); do SLURM_NODEID=$i \"$@\"; done\n")
    (bin_dir / "scontrol").write_text("#!/usr/bin/env bash\nprintf 'gpu-a01\\ngpu-a02\\n'\n")
    (bin_dir / "accelerate").write_text("#!/usr/bin/env bash\necho \"accelerate $*\"\n")
    for path in bin_dir.iterdir():
        path.chmod(0o755)
    return bin_dir


def test_slurm_script_starts_accelerate_on_each_machine_with_its_rank(tmp_path):
    env = {**os.environ, "PATH": f"{fake_bin(tmp_path, 2)}:{os.environ['PATH']}", "SLURM_NNODES": "2",
           "SLURM_JOB_NODELIST": "gpu-a[01-02]", "GPUS_PER_NODE": "4"}
    out = subprocess.run(["bash", "launch/slurm.sh", "rlft/grpo.py", "recipes/math.yaml", "--seed", "3"], cwd=REPO,
                         env=env, capture_output=True, text=True, check=True).stdout.splitlines()
    expected = ("accelerate launch --config_file launch/multinode.yaml --num_machines 2 --num_processes 8 "
                "--machine_rank {rank} --main_process_ip gpu-a01 --main_process_port 29500 rlft/grpo.py "
                "recipes/math.yaml --seed 3")
    assert out == [expected.format(rank=0), expected.format(rank=1)]


def test_slurm_script_outside_slurm_says_so_in_one_line():
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    proc = subprocess.run(["bash", "launch/slurm.sh", "rlft/grpo.py", "recipes/math.yaml"], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and "SLURM_NNODES is not set" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_multinode_config_as_two_machines_on_localhost(tmp_path):
    """Each "machine" runs its own accelerate launch (machine_rank 0 and 1); together they train one ZeRO-3 run."""
    out, port = tmp_path / "run", free_port()
    common = ["accelerate", "launch", "--config_file", "launch/multinode.yaml", "--num_machines", "2",
              "--num_processes", "2", "--main_process_ip", "127.0.0.1", "--main_process_port", str(port)]
    recipe = ["rlft/grpo.py", "recipes/math.yaml", *GRPO_TINY, "--output_dir", str(out)]
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    second = subprocess.Popen([*common, "--machine_rank", "1", *recipe], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        first = run_cmd([*common, "--machine_rank", "0", *recipe], timeout=900)
        _, second_err = second.communicate(timeout=300)
    finally:
        second.kill()
    assert first.returncode == 0, first.stderr[-3000:]
    assert second.returncode == 0, second_err[-3000:]
    launch = json.loads((out / "rlft_manifest.json").read_text())["launch"]
    assert launch["distributed_type"] == "DEEPSPEED" and launch["zero_stage"] == 3 and launch["num_processes"] == 2
    log = [json.loads(line) for line in (out / "log_history.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if "loss" in e] == [1, 2]
