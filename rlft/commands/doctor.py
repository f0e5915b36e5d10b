"""``rlft doctor``: the installed versions against the ones rlft is tested with, and what this machine can run.

    rlft doctor

A version that drifted from the tested set is the most common way a tool like
this breaks silently (a TRL or transformers upgrade that renames a field, a
torch that another package pulled in). This prints every requirement of the
installed ``rlft`` package (its metadata: the core set, and the rollout
extra that applies here, ``cpu`` or ``gpu``) beside the installed version,
marks each mismatch or missing package, then the accelerator, whether vLLM
imports and whether the bundled model is in place. Exit code 1 when anything
required is missing or mismatched, else 0.

Example:
    >>> check_requirement('pebble==5.2.3', lambda name: "5.2.3")
    ('pebble', '==5.2.3', '5.2.3', 'ok')
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

from rlft.core.errors import UserError, run_cli


def check_requirement(text: str, installed: Callable[[str], str | None]) -> tuple[str, str, str, str]:
    """(name, required, installed, verdict) for one requirement string; verdict ``ok``, ``MISMATCH`` or ``MISSING``."""
    from packaging.requirements import Requirement

    req = Requirement(text)
    version = installed(req.name)
    if version is None:
        return req.name, str(req.specifier), "-", "MISSING"
    ok = req.specifier.contains(version, prereleases=True)
    return req.name, str(req.specifier) or "any", version, "ok" if ok else "MISMATCH"


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def requirements(extra: str) -> list[str]:
    """rlft's requirements that apply on this machine: the core set and ``extra`` (``dev`` ones are left out)."""
    from packaging.requirements import Requirement

    try:
        declared = metadata.requires("rlft") or []
    except metadata.PackageNotFoundError:
        raise UserError("rlft is not installed as a package here (pip install -e . or make setup)") from None
    out = []
    for text in declared:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": extra}):
            out.append(f"{req.name}{req.specifier}")
    return out


def report(installed: Callable[[str], str | None] = _installed) -> tuple[str, int]:
    """The doctor's text and its count of problems."""
    import torch

    extra = "gpu" if torch.cuda.is_available() else "cpu"
    rows = [check_requirement(r, installed) for r in requirements(extra)]
    problems = [r for r in rows if r[3] != "ok"]
    table = [("package", "tested with", "installed", ""), *rows]
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    lines = [f"rlft {installed('rlft') or '?'} on Python {sys.version.split()[0]} ({extra} set)", ""]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    lines += ["", *_machine(torch)]
    if problems:
        lines += ["", f"warning: {len(problems)} of {len(rows)} requirements differ from the tested set: "
                  + ", ".join(f"{n} {v} ({s})" for n, s, v, _ in problems)
                  + "; reinstall with `make setup` (or pip install -e '.[" + extra + "]')"]
    else:
        lines += ["", f"all {len(rows)} requirements match the tested set"]
    return "\n".join(lines), len(problems)


def _machine(torch: Any) -> list[str]:
    from rlft.core.models import BUNDLED_MODELS

    lines = [f"accelerator: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none (CPU)'}"]
    try:
        import vllm  # noqa: F401 - whether it imports is the question

        lines.append("vLLM: imports (engine: vllm available)")
    except Exception as err:  # noqa: BLE001 - any import failure means the same to the user
        lines.append(f"vLLM: does not import ({type(err).__name__}); engine: hf only")
    from importlib import util

    for name, (package, _) in BUNDLED_MODELS.items():
        found = util.find_spec(package) is not None
        lines.append(f"bundled:{name}: {'installed' if found else 'missing (make setup)'}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.split("\n\n")[2])
        return 0
    if argv:
        raise UserError(f"rlft doctor takes no arguments, got {' '.join(argv)}")
    text, problems = report()
    print(text)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
