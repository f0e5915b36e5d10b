"""Every stage's recipe keys (type, default, old names) as a table, so a recipe is checked before torch loads.

A stage's keys are fields of TRL's config classes, and importing those
imports torch, transformers and peft (6-8 s on a 2-core machine, most of a
refusal's time). The table holds what :func:`rlft.core.recipe.coerce_recipe`
needs from them: each key's type and default, and the old key names. It is
generated, never committed: built from the stage's argument dataclasses on
first use (or by ``make setup``, ``python -m rlft.commands.key_table``) into
``$RLFT_CACHE/key-tables/`` and read from there afterwards.

A table's file name carries a fingerprint of what the table is made of: the
installed TRL, transformers and peft versions, the name of the stage's TRL
config class, and every field (name, annotation, default) and old key name
of rlft's own argument dataclasses, read from the classes themselves (cheap:
rlft's argument modules import nothing heavy). A change to any of these
names another file, which is built when first asked for; editing a
docstring or a comment changes nothing. So a stale table cannot be read:
the worst a change costs is the time to build the new one, never a
different message (:mod:`rlft.stage.parsing` reads every recipe through
this table).

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
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, Union

from rlft.core.files import write_atomic
from rlft.core.models import cache_root
from rlft.core.recipe import known_keys, renamed_keys

LIBRARIES = ("trl", "transformers", "peft")
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


def _default(f: dataclasses.Field) -> tuple[bool, Any]:
    if f.default is not dataclasses.MISSING:
        return _jsonable(f.default)
    if f.default_factory is not dataclasses.MISSING:
        return _jsonable(f.default_factory())
    return False, None


def _recorded_default(f: dataclasses.Field) -> Any:
    """A field's default as the fingerprint records it: a default that is not JSON by its type (its repr may
    hold a memory address)."""
    ok, value = _default(f)
    return value if ok else type(f.default).__name__


def build(types_: Sequence[type]) -> dict[str, Any]:
    """One stage's table from its argument dataclasses, in parse order (the first class with a key wins).

    Example:
        >>> @dataclasses.dataclass
        ... class Args:
        ...     renamed_keys = {"steps": "max_steps"}
        ...     max_steps: int | None = None
        >>> build([Args])
        {'keys': {'max_steps': {'union': ['int', 'null']}}, 'defaults': {'max_steps': None}, 'renamed': {'steps': 'max_steps'}}
    """
    defaults: dict[str, Any] = {}
    for cls in types_:
        for f in dataclasses.fields(cls):
            if f.init and f.name not in defaults:
                ok, value = _default(f)
                if ok:
                    defaults[f.name] = value
    return {"keys": {k: encode_type(tp) for k, tp in known_keys(types_).items()}, "defaults": defaults,
            "renamed": renamed_keys(types_)}


def fingerprint(rlft_types: Sequence[type], config_name: str) -> str:
    """What a stage's table is made of, hashed: library versions, the TRL config's name, rlft's fields.

    Example:
        >>> @dataclasses.dataclass
        ... class Args:
        ...     '''A docstring is not part of it.'''
        ...     max_steps: int = 3
        >>> a = fingerprint([Args], "trl:SFTConfig")
        >>> Args.__doc__ = "Edited."
        >>> a == fingerprint([Args], "trl:SFTConfig"), a == fingerprint([Args], "trl:DPOConfig")
        (True, False)
    """
    parts: list[Any] = [{name: _version(name) for name in LIBRARIES}, config_name]
    for cls in rlft_types:
        fields = [(f.name, str(f.type), _recorded_default(f), f.init) for f in dataclasses.fields(cls)]
        parts.append([f"{cls.__module__}.{cls.__qualname__}", fields, getattr(cls, "renamed_keys", {})])
    return hashlib.sha256(json.dumps(parts, default=repr).encode()).hexdigest()[:16]


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def folder() -> Path:
    return cache_root() / "key-tables"


def path_for(stage: Any) -> Path:
    """Where ``stage``'s table is (or will be) cached: its name and fingerprint."""
    return folder() / f"{stage.name}-{fingerprint(stage.rlft_argument_types(), stage.config)}.json"


def table_for(stage: Any) -> dict[str, Any]:
    """``stage``'s table: read from the cache, or built from its dataclasses (imports TRL) and cached.

    ``stage`` is a :class:`~rlft.stage.skeleton.TrainingStage`. A table that
    cannot be written (a read-only cache) is still returned.
    """
    path = path_for(stage)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    table = build(stage.argument_types())
    try:
        write_atomic(path, json.dumps(table, sort_keys=True) + "\n")
    except OSError:
        pass  # the next run builds it again: slower, the same answer
    return table


def types_of(table: dict[str, Any]) -> dict[str, Any]:
    """The table's keys with their type hints, as :func:`rlft.core.recipe.coerce_recipe` takes them."""
    return {key: decode_type(encoded) for key, encoded in table["keys"].items()}
