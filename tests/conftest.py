"""Shared fixtures. Slow tests (marked ``slow``) load or train the bundled model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run_cmd(args: list[str], timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a command from the repo root with the test interpreter's venv first on PATH."""
    full_env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", **(env or {})}
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=full_env,
                          check=False)


@pytest.fixture(scope="session")
def bundled_dir() -> Path:
    """The dequantized bundled model (materialized once per machine, ~40 s the first time)."""
    from rlft.core.models import bundled_model_dir

    return bundled_model_dir()


@pytest.fixture(scope="session")
def bundled_model(bundled_dir):
    from rlft.core.models import load_model

    return load_model("bundled:smollm2-135m-instruct")


@pytest.fixture(scope="session")
def bundled_tokenizer(bundled_dir):
    from rlft.core.models import load_tokenizer

    return load_tokenizer("bundled:smollm2-135m-instruct")
