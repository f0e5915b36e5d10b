"""``rlft doctor``: the installed versions against the set rlft is tested with, and what this machine can run.

    rlft doctor

A version that drifted from the tested set is the most common way a tool like
this breaks silently (a TRL or transformers upgrade that renames a field, a
torch that another package pulled in). For each of rlft's own requirements
(the core set and the rollout extra that applies here, ``cpu`` or ``gpu``)
this prints the range rlft accepts (``pyproject.toml``), the exact version
``make test`` ran with (``constraints/<cpu|gpu>.txt``) and the installed one:
``ok``, ``untested`` (inside the range, not the tested version: a warning),
``OUT OF RANGE`` or ``MISSING``. Every other package of the tested set that
differs is counted and named. Then the accelerator, whether vLLM imports and
whether the bundled model is in place. Exit code 1 when a requirement is
missing or out of range, else 0.

Example:
    >>> check_requirement('pebble>=5.2,<6', {'pebble': '5.2.3'}, lambda name: "5.2.3")
    ('pebble', '>=5.2,<6', '5.2.3', '5.2.3', 'ok')
    >>> check_requirement('pebble>=5.2,<6', {'pebble': '5.2.3'}, lambda name: "5.3.0")[-1]
    'untested'
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata, util
from typing import Any

from rlft.commands.constraints import canonical, release, tested_set
from rlft.core.errors import UserError, run_cli
from rlft.core.models import BUNDLED_MODELS

Row = tuple[str, str, str, str, str]
_BAD = ("OUT OF RANGE", "MISSING")


def check_requirement(text: str, tested: Mapping[str, str],
                      installed: Callable[[str], str | None]) -> Row:
    """(name, accepted range, tested version, installed version, verdict) for one requirement string."""
    from packaging.requirements import Requirement

    req = Requirement(text)
    accepts = ",".join(sorted(map(str, req.specifier), key=lambda s: not s.startswith(">"))) or "any"
    pinned = tested.get(canonical(req.name), "-")
    version = installed(req.name)
    if version is None:
        return req.name, accepts, pinned, "-", "MISSING"
    if not req.specifier.contains(version, prereleases=True):
        verdict = "OUT OF RANGE"
    elif pinned != "-" and release(version) != pinned:
        verdict = "untested"
    else:
        verdict = "ok"
    return req.name, accepts, pinned, version, verdict


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def requirements(extra: str) -> list[tuple[str, bool]]:
    """rlft's requirements that apply here as ``(requirement, optional)``: the core set, and ``extra``'s as optional.

    ``dev`` requirements are left out; a missing optional one (vLLM without
    the ``cpu``/``gpu`` extra) only means ``engine: hf``.
    """
    from packaging.requirements import Requirement

    try:
        declared = metadata.requires("rlft") or []
    except metadata.PackageNotFoundError:
        raise UserError("rlft is not installed as a package here (pip install -e . or make setup)") from None
    out = []
    for text in declared:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": extra}):
            out.append((f"{req.name}{req.specifier}", req.marker is not None))
    return out


def _other_drift(tested: Mapping[str, str], direct: set[str],
                 installed: Callable[[str], str | None]) -> list[str]:
    """``name installed (tested X)`` for every other installed package of the tested set at another version."""
    out = []
    for name, pinned in sorted(tested.items()):
        version = None if name in direct else installed(name)
        if version is not None and release(version) != pinned:
            out.append(f"{name} {version} (tested {pinned})")
    return out


def report(installed: Callable[[str], str | None] = _installed) -> tuple[str, int]:
    """The doctor's text and its count of problems (requirements missing or out of range)."""
    import torch

    extra = "gpu" if torch.cuda.is_available() else "cpu"
    path, tested = tested_set(extra)
    rows = []
    for text, optional in requirements(extra):
        row = check_requirement(text, tested, installed)
        if optional and row[4] == "MISSING":
            row = (*row[:4], f"not installed (optional: pip install 'rlft[{extra}]' for engine: vllm)")
        rows.append(row)
    problems = [r for r in rows if r[4] in _BAD]
    untested = [r for r in rows if r[4] == "untested"]
    table = [("package", "accepts", "tested", "installed", ""), *rows]
    widths = [max(len(r[i]) for r in table) for i in range(5)]
    header = f"rlft {installed('rlft') or '?'} on Python {sys.version.split()[0]}"
    lines = [f"{header} (tested set: {path.parent.name}/{path.name})", ""]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    drift = _other_drift(tested, {canonical(r[0]) for r in rows}, installed)
    lines += ["", *_machine(torch), ""]
    if problems:
        lines.append(f"error: {len(problems)} of {len(rows)} requirements are missing or out of range: "
                     + ", ".join(f"{n} {v} (accepts {a})" for n, a, _, v, _ in problems)
                     + f"; reinstall with `make setup` (or pip install -c {path} -e '.[{extra}]')")
    if untested or drift:
        named = [f"{n} {v} (tested {t})" for n, _, t, v, _ in untested] + drift
        lines.append(f"warning: {len(named)} installed packages differ from the tested set "
                     f"({path.name}): " + ", ".join(named[:12]) + (" ..." if len(named) > 12 else ""))
    if not (problems or untested or drift):
        lines.append(f"all {len(rows)} requirements and the rest of the tested set ({len(tested)} pins) match")
    return "\n".join(lines), len(problems)


def _machine(torch: Any) -> list[str]:
    lines = [f"accelerator: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none (CPU)'}"]
    try:
        import vllm  # noqa: F401 - whether it imports is the question

        lines.append("vLLM: imports (engine: vllm available)")
    except Exception as err:  # noqa: BLE001 - any import failure means the same to the user
        lines.append(f"vLLM: does not import ({type(err).__name__}); engine: hf only")

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
