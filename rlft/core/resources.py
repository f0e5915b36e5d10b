"""Where rlft's own files are: the recipes, launch configs and constraints a user copies or checks against.

In a source checkout (``pip install -e .``, ``make setup``) they are the
repository's ``recipes/``, ``launch/`` and ``constraints/``; an installed wheel
carries copies of the same three folders as ``rlft/_data/`` (``setup.py``
puts them there), so ``rlft recipes`` and ``rlft doctor`` work the same from
PyPI as from a clone.

Example:
    >>> resource_dir("recipes").joinpath("math.yaml").is_file()
    True
    >>> resource_dir("nope")
    Traceback (most recent call last):
    ...
    ValueError: unknown resource folder 'nope'; one of constraints, launch, recipes
"""

from __future__ import annotations

from pathlib import Path

FOLDERS = ("constraints", "launch", "recipes")
_PACKAGE = Path(__file__).resolve().parents[1]


def resource_dir(name: str) -> Path:
    """The folder ``name`` (one of :data:`FOLDERS`): the checkout's when rlft runs from one, else the wheel's copy."""
    if name not in FOLDERS:
        raise ValueError(f"unknown resource folder {name!r}; one of {', '.join(FOLDERS)}")
    checkout = _PACKAGE.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / name).is_dir():
        return checkout / name
    return _PACKAGE / "_data" / name
