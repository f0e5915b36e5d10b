"""Files rlft writes so that a kill never leaves half of one (through a temporary name and a rename), and reads.

Example:
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a" / "b.txt"
    >>> write_atomic(target, "done\\n")
    >>> target.read_text()
    'done\\n'
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rlft.core.errors import UserError


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (parent folders are made)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def read_jsonl(path: str | Path, what: str, needs: str, limit: int | None = None,
               plural: str | None = None) -> list[dict[str, Any]]:
    """A JSONL file's objects, each with the key ``needs``; one-line ``UserError``s for what a user gets wrong.

    ``what`` names the file in the messages ("samples file"); ``plural`` what an empty one lacks ("samples").

    Example:
        >>> import tempfile, pathlib
        >>> file = pathlib.Path(tempfile.mkdtemp()) / "p.jsonl"
        >>> _ = file.write_text('{"prompt": "hi"}\\n\\n')
        >>> read_jsonl(file, "prompts file", "prompt")
        [{'prompt': 'hi'}]
    """
    file = Path(path)
    if not file.is_file():
        raise UserError(f"{what} not found: {file}")
    rows = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as err:
            raise UserError(f"{file} line {number} is not JSON: {err}") from None
        if not isinstance(row, dict) or needs not in row:
            raise UserError(f"{file} line {number} needs a '{needs}' field")
        rows.append(row)
        if limit and len(rows) >= limit:
            break
    if not rows:
        raise UserError(f"{file} has no {plural or needs + 's'}")
    return rows
