"""Every stage's recipe keys, precomputed, so a bad recipe is refused before torch loads.

A stage's keys are fields of TRL's config classes, and importing those
imports torch, transformers and peft (6-8 s on this 2-core machine, most of a
refusal's time). ``key_table.json`` holds, per stage, each key's type and
default and the old key names, generated from the same dataclasses
(``python -m rlft.commands.key_table``), with the versions of TRL and
transformers and a hash of each rlft module that defines an argument class.

:func:`precheck` reads the recipe the way :func:`rlft.core.recipe.parse_recipe`
does and raises the same one-line errors, in the same words, for an unknown
key, a wrong type, ``lora_r``, a refused setting (:mod:`rlft.stage.settings`),
a non-positive count (:func:`rlft.stage.input_checks.check_counts`) and an
unknown built-in reward. It only refuses what the full parse refuses: when
the installed libraries or rlft's argument modules differ from the table's,
or anything is unclear, it says nothing and the full parse decides.
``tests/test_key_table.py`` checks the table against the dataclasses.

Example:
    >>> encode_type(int | None), decode_type({"union": ["int", "null"]}) == (int | None)
    ({'union': ['int', 'null']}, True)
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import types
import typing
from collections.abc import Sequence
from importlib import metadata, util
from pathlib import Path
from typing import Any, Literal, Union

TABLE = Path(__file__).with_name("key_table.json")
LIBRARIES = ("trl", "transformers")
_SCALARS = {"bool": bool, "int": int, "float": float, "str": str, "dict": dict, "null": type(None), "any": Any}


def encode_type(tp: Any) -> Any:
    """A type hint as JSON (what :func:`rlft.core.recipe.coerce` needs to check a value the same way)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return {"union": [encode_type(a) for a in typing.get_args(tp)]}
    if origin is Literal:
        return {"literal": list(typing.get_args(tp))}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [m.value for m in tp]}
    if origin in (list, tuple, Sequence, typing.Sequence) or tp in (list, tuple):
        args = typing.get_args(tp)
        return {"list": encode_type(args[0]) if args else "any"}
    if origin is dict:
        return "dict"
    for name, scalar in _SCALARS.items():
        if tp is scalar:
            return name
    return "any"  # a type coerce does not check either: the value passes as is


def decode_type(data: Any) -> Any:
    """The type hint :func:`encode_type` wrote (enums as a fresh ``Enum`` with the same values)."""
    if isinstance(data, str):
        return _SCALARS[data]
    if "union" in data:
        return Union[tuple(decode_type(a) for a in data["union"])]  # noqa: UP007 - built from a list
    if "literal" in data:
        return Literal[tuple(data["literal"])]
    if "enum" in data:
        return enum.Enum("Choice", {f"v{i}": v for i, v in enumerate(data["enum"])})
    return list[decode_type(data["list"])]


def _jsonable(value: Any) -> tuple[bool, Any]:
    value = value.value if isinstance(value, enum.Enum) else value
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False, None
    return True, value


def _fingerprint(modules: Sequence[str]) -> dict[str, str]:
    """sha256 of each module's source file, found without importing it."""
    out = {}
    for name in sorted(set(modules)):
        spec = util.find_spec(name)
        if spec is None or not spec.origin:
            return {}
        out[name] = hashlib.sha256(Path(spec.origin).read_bytes()).hexdigest()[:16]
    return out


def _versions() -> dict[str, str]:
    return {name: metadata.version(name) for name in LIBRARIES}


def stage_table(types_: Sequence[type]) -> dict[str, Any]:
    """One stage's entry, from its argument dataclasses (in parse order: the first class with a key wins)."""
    from rlft.core.recipe import known_keys, renamed_keys

    defaults: dict[str, Any] = {}
    for cls in types_:
        for f in dataclasses.fields(cls):
            if not f.init or f.name in defaults:
                continue
            if f.default is not dataclasses.MISSING:
                ok, value = _jsonable(f.default)
            elif f.default_factory is not dataclasses.MISSING:
                ok, value = _jsonable(f.default_factory())
            else:
                ok, value = False, None
            if ok:
                defaults[f.name] = value
    rlft_modules = [c.__module__ for c in types_ if c.__module__.split(".")[0] == "rlft"]
    return {"keys": {k: encode_type(tp) for k, tp in known_keys(types_).items()}, "defaults": defaults,
            "renamed": renamed_keys(types_), "modules": _fingerprint(rlft_modules)}


def generate(stages: dict[str, Any]) -> dict[str, Any]:
    """The whole table from ``{name: TrainingStage}`` (imports TRL: the slow path, run when a class changes).

    ``python -m rlft.commands.key_table`` writes it for every stage.
    """
    return {"versions": _versions(),
            "stages": {name: stage_table(stage.argument_types()) for name, stage in stages.items()}}


def _current(stage: str) -> dict[str, Any] | None:
    """The stage's entry when it matches what is installed and checked out, else ``None``."""
    try:
        table = json.loads(TABLE.read_text())
        entry = table["stages"][stage]
        if table["versions"] != _versions() or _fingerprint(list(entry["modules"])) != entry["modules"]:
            return None
    except (OSError, KeyError, ValueError, metadata.PackageNotFoundError):
        return None
    return entry


def precheck(stage: str, argv: Sequence[str] | None) -> None:
    """Refuse a bad recipe with the full parse's one-line error, before any heavy import; else do nothing.

    Example:
        >>> precheck("sft", ["--max_steps", "3"])  # nothing wrong: returns
        >>> precheck("sft", ["--max_stpes", "3"])
        Traceback (most recent call last):
        ...
        rlft.core.errors.UserError: unknown recipe key 'max_stpes' (on the command line); did you mean 'max_steps'? Run with --help to list valid keys.
    """
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    entry = _current(stage)
    if entry is None or "--help" in argv or "-h" in argv:
        return
    from rlft.core.recipe import coerce_recipe, recipe_sources

    sources = recipe_sources(argv)
    keys = {k: decode_type(v) for k, v in entry["keys"].items()}
    resolved = coerce_recipe(sources, keys, entry["renamed"], warn=False)
    _check_values(stage, resolved, entry["defaults"])


def _check_values(stage: str, resolved: dict[str, Any], defaults: dict[str, Any]) -> None:
    """The full parse's value checks that need no library: lora_r, refused settings, counts, reward names."""
    from types import SimpleNamespace

    from rlft.core.errors import UserError
    from rlft.stage.input_checks import check_counts
    from rlft.stage.settings import rules_for

    given = {**defaults, **resolved}
    if given.get("use_peft") and isinstance(given.get("lora_r"), int) and given["lora_r"] <= 0:
        raise UserError(f"lora_r must be a positive integer, got {given['lora_r']}")
    rules = rules_for(stage)
    for key, value in resolved.items():
        rule = rules.get(key)
        if rule is not None and rule.kind == "refused" and key in defaults and value != defaults[key]:
            raise UserError(f"{key}: not used by rlft {stage}: {rule.why}")
    check_counts(SimpleNamespace(**given))
    names = resolved.get("reward_funcs") or []
    if any(":" not in name for name in names):
        import rewards

        for name in names:
            if ":" not in name and name not in rewards.REWARDS:
                try:
                    rewards.resolve(name)
                except rewards.RewardInputError as err:
                    raise UserError(str(err)) from None

