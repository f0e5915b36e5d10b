"""Shared fixtures. Slow tests (marked ``slow``) load or train the bundled model."""

from __future__ import annotations

import fnmatch
import json
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


@pytest.fixture(autouse=True)
def _no_warnings_left_by_other_tests():
    """Each test starts with no deferred warning queued by another test's parse."""
    from rlft.core.runtime import discard_deferred_warnings

    discard_deferred_warnings()


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


THINKING_OFF = "[thinking off]"
# Qwen3-style switch on top of the bundled template: `enable_thinking: false` shows as a visible marker
THINKING_SWITCH = "{% if enable_thinking is defined and not enable_thinking %}[thinking off]\n{% endif %}"


@pytest.fixture
def thinking_tokenizer(bundled_dir):
    """The bundled tokenizer whose chat template writes ``[thinking off]`` first when ``enable_thinking`` is false."""
    from rlft.core.models import load_tokenizer

    tokenizer = load_tokenizer("bundled:smollm2-135m-instruct")
    tokenizer.chat_template = THINKING_SWITCH + tokenizer.chat_template
    return tokenizer


@pytest.fixture(scope="session")
def thinking_model_dir(bundled_dir, tmp_path_factory) -> Path:
    """The bundled model as a plain model directory with that chat template (weights linked, not copied)."""
    out = tmp_path_factory.mktemp("thinking-model")
    for item in Path(bundled_dir).iterdir():
        if item.name != "chat_template.jinja":
            (out / item.name).symlink_to(item)
    (out / "chat_template.jinja").write_text(THINKING_SWITCH + (Path(bundled_dir) / "chat_template.jinja").read_text())
    return out


@pytest.fixture
def rendered_prompts(monkeypatch):
    """``watch(module)`` wraps ``module.hf_completions``; returns the list that collects every prompt it renders."""
    from rlft.evaluation import generation

    def watch(module) -> list:
        seen: list = []
        original = module.hf_completions

        def spy(model, tok, prompts, **kw):
            seen.extend(generation.render_prompts(tok, prompts, kw.get("chat_template_kwargs")))
            return original(model, tok, prompts, **kw)

        monkeypatch.setattr(module, "hf_completions", spy)
        return seen

    return watch


@pytest.fixture
def hub(monkeypatch):
    """HfApi with create_repo/upload_folder recorded: what would have been uploaded, file by file."""
    from huggingface_hub import HfApi

    calls: dict = {}

    def create_repo(self, repo_id, **kwargs):
        calls["create"] = (repo_id, kwargs)

    def upload_folder(self, folder_path, repo_id, allow_patterns, **kwargs):
        root = Path(folder_path)
        files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
        calls["files"] = [f for f in files if any(fnmatch.fnmatch(f, pat) for pat in allow_patterns)]
        calls["card"] = (root / "README.md").read_text()
        calls["folder"] = root  # what would have gone up, while the push's scratch folder lasts
        if (root / "adapter_config.json").is_file():
            calls["adapter_config"] = json.loads((root / "adapter_config.json").read_text())
        return type("Commit", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/1"})()

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


@pytest.fixture(autouse=True)
def _transformers_log_level_restored():
    """A stage run in this process sets transformers' verbosity to its recipe's log_level (a TRL-era recipe says
    info); the next test starts from transformers' default again."""
    yield
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_warning()



# `make test` runs two pytest-xdist workers, each test file whole on one (--dist loadfile: its module fixtures are
# built once). A single-process DeepSpeed launch rendezvouses on MASTER_PORT (29500 unless set): each worker gets
# its own, away from 29500, which accelerate gives multi-process launches that name no port.
if os.environ.get("PYTEST_XDIST_WORKER", "").startswith("gw"):
    _worker = int(os.environ["PYTEST_XDIST_WORKER"][2:])
    os.environ.setdefault("MASTER_PORT", str(29600 + 10 * _worker))
    # each worker (and every process it starts, vLLM's included) on cores of its own: vLLM's CPU engine pins
    # busy-waiting OpenMP threads to every core it is given, which starved the other worker's tests
    _cores = sorted(os.sched_getaffinity(0))
    _count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if len(_cores) >= _count > 1:
        os.sched_setaffinity(0, _cores[_worker::_count])
    # the memory plan weighs a run against the memory free now, which the other worker's vLLM engine takes its share
    # of: a test of another feature was refused for memory when two heavy tests met (13.8 GB planned, 13.1 free).
    # The plan tests set their own figure; every other test plans against the machine's whole memory.
    if "RLFT_MEMORY_GB" not in os.environ:
        _total_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                         if line.startswith("MemTotal:"))
        os.environ["RLFT_MEMORY_GB"] = f"{_total_kb / 2**20:.1f}"
