"""Recipes: flat YAML files whose keys are dataclass fields, plus CLI overrides.

A recipe is read into several dataclasses at once (rlft's own arguments, TRL's
``*Config`` for the stage, model/LoRA arguments). Every key must belong to at
least one of them; a key that several share (rare) goes to all. Command-line
``--key value`` pairs override the file. Values are checked against the
fields' type hints before any dataclass is built, so a typo or a wrong type is
one line that names the key and, for a typo, suggests the closest valid key.

A dataclass may list keys it has renamed in a ``renamed_keys`` class
attribute (``{"old": "new"}``): the old name is read as the new one, with one
deprecation warning once the run starts, and the resolved recipe records the
new name. Giving both is an error.

Departure from TRL: ``TrlParser``/``HfArgumentParser`` take ``--config`` and
report unknown YAML keys as a multi-key ``ValueError`` traceback without
suggestions; rlft takes the recipe as the first positional argument, checks
types itself, and reports through :class:`rlft.core.errors.UserError`.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Args:
    ...     learning_rate: float = 1e-5
    ...     max_steps: int = -1
    >>> (args,), values = parse_recipe([Args], ["--learning_rate", "5e-6"])
    >>> args.learning_rate
    5e-06
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import json
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from rlft.core.errors import UserError
from rlft.core.runtime import defer_warning
from rlft.core.trl_era import translate


class _TypeMismatch(Exception):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML loader that refuses duplicated keys (PyYAML keeps the last silently)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicated key '{key}'", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_recipe_file(path: str | Path) -> dict[str, Any]:
    """Read a recipe file into a dict, with one-line errors for every failure.

    Example:
        >>> load_recipe_file("recipes/sft.yaml")["dataset_name"]  # doctest: +SKIP
        'task:word_problems'
    """
    path = Path(path)
    if not path.is_file():
        hint = " (it is a directory)" if path.is_dir() else ""
        raise UserError(f"recipe file not found: {path}{hint}")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise UserError(f"cannot parse recipe {path}:{where} {problem}") from None
    except UnicodeDecodeError:
        raise UserError(f"cannot parse recipe {path}: not UTF-8 text") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(
            f"recipe {path} must be a mapping of `key: value` lines, got a {type(data).__name__}"
        )
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise UserError(f"recipe {path}: key {bad[0]!r} is not a name; keys are field names")
    return data


def _parse_cli(argv: Sequence[str]) -> dict[str, Any]:
    """``--key value``, ``--key=value`` and bare ``--flag`` (= true) into a dict of strings."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        tok = argv[i]
        if not tok.startswith("--") or tok == "--":
            raise UserError(f"unexpected argument {tok!r}: overrides are written `--key value`")
        key, eq, val = tok[2:].partition("=")
        key = key.replace("-", "_")
        if eq:
            out[key] = val
            i += 1
        elif i + 1 < len(argv) and not _looks_like_flag(argv[i + 1]):
            out[key] = argv[i + 1]
            i += 2
        else:
            out[key] = True
            i += 1
    return out


def _looks_like_flag(tok: str) -> bool:
    if not tok.startswith("--"):
        return False
    try:
        float(tok)
    except ValueError:
        return True
    return False


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is Literal:
        return "one of " + ", ".join(repr(c) for c in typing.get_args(tp))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in tp)
    if tp is type(None):
        return "null"
    if origin is list and typing.get_args(tp) and typing.get_origin(typing.get_args(tp)[0]) is Literal:
        return "a list, each " + _describe(typing.get_args(tp)[0])  # DPO's loss_type: each item one of ...
    return getattr(tp, "__name__", str(tp)).replace("NoneType", "null")


def _from_text(value: str) -> Any:
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        try:
            return json.loads(value)
        except ValueError:
            raise _TypeMismatch() from None


def coerce(value: Any, tp: Any) -> Any:
    """Check/convert ``value`` (from YAML or the command line) to the type hint ``tp``.

    Raises ``_TypeMismatch`` when it cannot. Strings from the command line are
    converted (``"5e-6"`` -> 5e-06, ``"true"`` -> True, ``"a,b"`` -> ["a", "b"]).

    Example:
        >>> coerce("5e-6", float), coerce("3", int | None), coerce("q,v", list[str])
        (5e-06, 3, ['q', 'v'])
    """
    origin = typing.get_origin(tp)
    if tp is Any or tp is object:
        return value
    if origin in (Union, types.UnionType):
        return _coerce_union(value, typing.get_args(tp))
    if origin is Literal:
        for choice in typing.get_args(tp):
            if value == choice or str(value) == str(choice):
                return choice
        raise _TypeMismatch()
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        for member in tp:
            if value in (member, member.value) or str(value) == str(member.value):
                return member.value
        raise _TypeMismatch()
    if tp is type(None):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "~")):
            return None
        raise _TypeMismatch()
    if tp is bool:
        return _coerce_bool(value)
    if tp is int:
        return _coerce_int(value)
    if tp is float:
        return _coerce_float(value)
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise _TypeMismatch()
    if origin in (list, tuple, Sequence, typing.Sequence) or tp in (list, tuple):
        return _coerce_list(value, typing.get_args(tp))
    if origin is dict or tp is dict:
        if isinstance(value, str):
            value = _from_text(value)
        if not isinstance(value, dict):
            raise _TypeMismatch()
        return value
    return value  # a type rlft does not check (rare); the dataclass validates it


def _coerce_union(value: Any, args: tuple) -> Any:
    if type(None) in args and (
        value is None
        or (isinstance(value, str) and value.lower() in ("null", "~"))
        # "none" is a real value for some string fields (report_to: none)
        or (isinstance(value, str) and value.lower() == "none" and str not in args and
            not any(typing.get_origin(a) in (list, Sequence) for a in args))
    ):
        return None
    enums = [a for a in args if isinstance(a, type) and issubclass(a, enum.Enum)]
    # Union[str, SomeEnum] (transformers' style): the enum decides, str is only its spelling.
    rest = [a for a in args if a not in enums and a is not str]
    if enums:
        ordered = enums + rest
    elif isinstance(value, str) and str in args:
        ordered = [str]  # a string stays a string when the field takes one
    else:
        ordered = rest + [a for a in args if a is str]
    for arg in ordered:
        if arg is type(None):
            continue
        try:
            return coerce(value, arg)
        except _TypeMismatch:
            continue
    raise _TypeMismatch()


def _coerce_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
        return True
    if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
        return False
    raise _TypeMismatch()


def _coerce_int(value: Any) -> int:
    if isinstance(value, bool):
        raise _TypeMismatch()
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                raise _TypeMismatch() from None
            if number.is_integer():
                return int(number)
    raise _TypeMismatch()


def _coerce_float(value: Any) -> float:
    if isinstance(value, bool):
        raise _TypeMismatch()
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)  # YAML 1.1 reads `5e-6` (no dot) as a string
        except ValueError:
            pass
    raise _TypeMismatch()


def _coerce_list(value: Any, args: tuple) -> list:
    if isinstance(value, str):
        parsed = _from_text(value) if value.strip().startswith("[") else None
        value = parsed if isinstance(parsed, list) else [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list):
        value = [value]
    item_type = args[0] if args else Any
    return [coerce(v, item_type) for v in value]


def _fields(cls: type) -> dict[str, Any]:
    """Init fields of a dataclass mapped to their resolved type hints."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - a library's odd annotation must not break parsing
        hints = {}
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls) if f.init}


def known_keys(dataclass_types: Sequence[type]) -> dict[str, Any]:
    """All recipe keys the given dataclasses accept, mapped to their type hints."""
    keys: dict[str, Any] = {}
    for cls in dataclass_types:
        for name, tp in _fields(cls).items():
            keys.setdefault(name, tp)
    return keys


def renamed_keys(dataclass_types: Sequence[type]) -> dict[str, str]:
    """Old recipe key -> its new name, from the dataclasses' ``renamed_keys`` class attributes.

    Example:
        >>> class Args:
        ...     renamed_keys = {"rollout_engine": "engine"}
        >>> renamed_keys([Args])
        {'rollout_engine': 'engine'}
    """
    out: dict[str, str] = {}
    for cls in dataclass_types:
        out.update(getattr(cls, "renamed_keys", {}))
    return out


def _rename(values: dict[str, Any], renamed: dict[str, str], source: str, warn: bool = True) -> dict[str, Any]:
    """``values`` with old key names replaced by new ones (a deprecation warning each, when ``warn``)."""
    out = dict(values)
    for old, new in renamed.items():
        if old not in out:
            continue
        if new in out:
            raise UserError(f"recipe keys '{old}' and '{new}' ({source}) are the same setting ('{old}' is its old "
                            f"name); keep '{new}'")
        out[new] = out.pop(old)
        if warn:
            defer_warning(f"recipe key '{old}' ({source}) is now called '{new}'; the old name will stop "
                          "working in the next release")
    return out


def _unknown_key_error(key: str, valid: Sequence[str], source: str) -> UserError:
    # a close match only: a looser one points at unrelated keys (max_prompt_length -> max_completion_length)
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.8)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return UserError(f"unknown recipe key '{key}' ({source}){hint} Run with --help to list valid keys.")


def help_text(dataclass_types: Sequence[type], prog: str) -> str:
    """The ``--help`` listing: every key with its type and default, grouped by dataclass."""
    lines = [f"usage: {prog} RECIPE.yaml [--key value ...]", ""]
    for cls in dataclass_types:
        lines.append(f"{cls.__name__}:")
        hints = _fields(cls)
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            default = f.default if f.default is not dataclasses.MISSING else "..."
            doc = one_line_help(f.metadata.get("help", ""))
            lines.append(f"  --{f.name} ({_describe(hints[f.name])}, default {default!r}) {doc}")
        lines.append("")
    return "\n".join(lines)


def one_line_help(text: str, limit: int = 110) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def recipe_sources(argv: Sequence[str], file_keys_only: set[str] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """``[recipe.yaml] [--key value ...]`` as its two sources, each named as errors name it: file, then command line.

    Example:
        >>> recipe_sources(["--max_steps", "3"])
        [('in None', {}), ('on the command line', {'max_steps': '3'})]
    """
    argv = list(argv)
    recipe_path = argv.pop(0) if argv and not argv[0].startswith("--") else None
    from_file = load_recipe_file(recipe_path) if recipe_path else {}
    if file_keys_only is not None:
        from_file = {k: v for k, v in from_file.items() if k in file_keys_only}
    return [(f"in {recipe_path}", from_file), ("on the command line", _parse_cli(argv))]


def coerce_recipe(sources: Sequence[tuple[str, dict[str, Any]]], keys: dict[str, Any], renamed: dict[str, str],
                  warn: bool = True) -> dict[str, Any]:
    """The recipe's values, source by source (later ones override), renamed and converted to ``keys``' types.

    Raises :class:`UserError` for an unknown key (naming a close match) or a
    value of the wrong type. Shared by :func:`parse_recipe` and the fast
    stages' parse (:mod:`rlft.stage.parsing`, types from the key table), so both refuse in the same words.

    Example:
        >>> coerce_recipe([("on the command line", {"steps": "3"})], {"steps": int}, {})
        {'steps': 3}
    """
    resolved: dict[str, Any] = {}
    for source, values in sources:
        values = translate(_rename(values, renamed, source, warn), keys, source, warn)  # TRL-era keys
        for key, value in values.items():
            if key not in keys:
                raise _unknown_key_error(key, list(keys), source)
            try:
                resolved[key] = coerce(value, keys[key])
            except _TypeMismatch:
                raise UserError(
                    f"recipe key '{key}' ({source}) must be {_describe(keys[key])}, got {value!r}"
                ) from None
    return resolved


def parse_recipe(
    dataclass_types: Sequence[type],
    argv: Sequence[str] | None = None,
    prog: str = "rlft",
    file_keys_only: set[str] | None = None,
) -> tuple[list[Any], dict[str, Any]]:
    """Build one instance of each dataclass from ``[recipe.yaml] [--key value ...]``.

    Returns the instances (in the order given) and the resolved recipe: the
    file's keys with command-line overrides applied, converted to their types.
    Raises :class:`UserError` for an unknown key, a wrong type, or a missing or
    unparsable recipe file. ``--help`` prints every key and exits 0. With
    ``file_keys_only``, the recipe file's other keys are ignored (a tool that
    reads one part of a stage's recipe, e.g. its rewards). A training stage
    reads its recipe through :func:`rlft.stage.parsing.parse_stage`, which
    checks it against the stage's key table first (the same coercion).

    Example:
        >>> from rlft.core.arguments import EvalArguments
        >>> (cfg,), recipe = parse_recipe([EvalArguments], ["--eval_samples", "8"])
        >>> cfg.eval_samples, recipe
        (8, {'eval_samples': 8})
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--help" in argv or "-h" in argv:
        sys.stdout.write(help_text(dataclass_types, prog) + "\n")
        raise SystemExit(0)
    sources = recipe_sources(argv, file_keys_only)
    resolved = coerce_recipe(sources, known_keys(dataclass_types), renamed_keys(dataclass_types))
    return instances_from(dataclass_types, resolved), resolved


def instances_from(dataclass_types: Sequence[type], values: dict[str, Any]) -> list[Any]:
    """One instance of each class from the keys it has; a dataclass's own check is one line.

    Example:
        >>> import dataclasses
        >>> Steps = dataclasses.make_dataclass("Steps", [("max_steps", int, 1)])
        >>> instances_from([Steps], {"max_steps": 3, "seed": 1})
        [Steps(max_steps=3)]
    """
    instances = []
    for cls in dataclass_types:
        names = _fields(cls)
        try:
            instances.append(cls(**{k: v for k, v in values.items() if k in names}))
        except (ValueError, TypeError) as err:
            raise UserError(f"invalid recipe: {err}") from None
    return instances


def parse_command(argv: Sequence[str] | None, options: type, prog: str, target: str) -> tuple[str, Any]:
    """``TARGET [--key value ...]`` for a command that acts on one model or run: the target and its options.

    ``target`` names what comes first in the usage line (``RUN_DIR``, ``MODEL``).

    Example:
        >>> import dataclasses
        >>> Opts = dataclasses.make_dataclass("Opts", [("quant", str, "f16")])
        >>> parse_command(["runs/math", "--quant", "q8_0"], Opts, "rlft export", "RUN_DIR")
        ('runs/math', Opts(quant='q8_0'))
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = f"{prog} {target}"
    if not argv or argv[0].startswith("-"):
        if "--help" in argv or "-h" in argv:
            parse_recipe([options], ["--help"], prog=usage)
        raise UserError(f"name the {target.lower().replace('_', ' ')} first: {usage} [--key value ...]")
    (parsed,), _ = parse_recipe([options], argv[1:], prog=usage)
    return argv[0], parsed


def to_yaml(values: dict[str, Any]) -> str:
    """Serialize a resolved recipe (enums as their values) to YAML text."""

    def plain(v: Any) -> Any:
        if isinstance(v, enum.Enum):
            return v.value
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return yaml.safe_dump(plain(values), sort_keys=False)
