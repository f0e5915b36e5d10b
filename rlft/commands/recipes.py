"""``rlft recipes``: the recipes and launch configs that come with rlft, listed and copied out to edit.

    rlft recipes                               # list them (same as `rlft recipes list`)
    rlft recipes copy math ./my_math.yaml      # one recipe, to a file or into a folder
    rlft recipes copy launch/zero2 .           # a launch config
    rlft recipes copy all ./my_project         # every recipe and launch config, as recipes/ and launch/

They are the files of the repository's ``recipes/`` and ``launch/`` (an
installed wheel carries copies), so a ``pip install`` user starts from the
same ones a clone has. The pipeline recipe names its stages' recipes as
``recipes/<name>.yaml``; ``copy all`` keeps that layout so it runs from the
destination folder. An existing file is never overwritten without ``--force``.

Example:
    >>> "math" in catalog() and "launch/zero2" in catalog()
    True
    >>> describe(catalog()["launch/cpu"])
    'One process, no GPU.'
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from rlft.core.errors import UserError, run_cli
from rlft.core.resources import resource_dir

_COMMAND_PREFIXES = ("accelerate launch", "rlft ", "python ", "make ")


def catalog() -> dict[str, Path]:
    """``{name: file}``: recipes by their path under ``recipes/`` without ``.yaml``, launch configs as ``launch/<name>``."""
    out = {}
    for folder, prefix in (("recipes", ""), ("launch", "launch/")):
        root = resource_dir(folder)
        for path in sorted(root.rglob("*.yaml")):
            out[prefix + path.relative_to(root).with_suffix("").as_posix()] = path
    return out


def describe(path: Path, width: int = 90) -> str:
    """The opening comment of a recipe, without its command lines: its first sentence, cut to ``width``."""
    words = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if not text or text.startswith(_COMMAND_PREFIXES):
            if words:
                break
            continue
        words.append(text.split(": accelerate launch")[0])
        if text.endswith("."):
            break
    sentence = " ".join(words).split(". ")[0].rstrip(".")
    if len(sentence) > width:
        sentence = sentence[:width - 3].rsplit(" ", 1)[0].rstrip(",;:") + "..."
    return sentence + "." if sentence and not sentence.endswith("...") else sentence


def listing() -> str:
    """The table ``rlft recipes`` prints."""
    entries = catalog()
    width = max(map(len, entries))
    lines = [f"{name:<{width}}  {describe(path)}" for name, path in entries.items()]
    return "\n".join([*lines, "", "copy one to edit it: rlft recipes copy NAME DEST  (`copy all DIR` for every file)"])


def copy(name: str, dest: str | Path, force: bool = False) -> list[Path]:
    """Copy recipe or launch config ``name`` (or ``all``) to ``dest``; the files written."""
    entries = catalog()
    dest = Path(dest)
    if name == "all":
        pairs = [(path, dest / ("" if n.startswith("launch/") else "recipes") / f"{n}.yaml")
                 for n, path in entries.items()]
    elif name in entries:
        target = dest / entries[name].name if dest.is_dir() or str(dest).endswith("/") else dest
        pairs = [(entries[name], target)]
    else:
        raise UserError(f"no recipe or launch config named {name!r}; one of: {', '.join(entries)}, all")
    existing = [str(target) for _, target in pairs if target.exists()]
    if existing and not force:
        raise UserError(f"{existing[0]} already exists ({len(existing)} of {len(pairs)} files); "
                        "pass --force to overwrite")
    for source, target in pairs:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return [target for _, target in pairs]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        sys.stdout.write(__doc__.split("\n\n")[1] + "\n")
        return 0
    if not argv or argv == ["list"]:
        sys.stdout.write(listing() + "\n")
        return 0
    force = "--force" in argv
    args = [a for a in argv if a != "--force"]
    if args[0] != "copy" or len(args) != 3:
        raise UserError("usage: rlft recipes [list] | rlft recipes copy NAME DEST [--force]")
    written = copy(args[1], args[2], force=force)
    for path in written:
        sys.stdout.write(f"wrote {path}\n")
    if args[1] == "pipeline":
        sys.stderr.write("note: the pipeline names its stages' recipes as recipes/<name>.yaml; "
                         "`rlft recipes copy all DIR` copies them with it\n")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
