"""The layout docs/architecture.md describes holds: who may import whom, and no shadowed module names."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import pkgutil
import subprocess
import sys

import pytest

from rlft.stage import registry
from tests.conftest import REPO

# the files in rlft/ itself: the registry's entries that are not commands, and the console script
ENTRY_SCRIPTS = {e.module.split(".")[1] for e in registry.entries() if e.module.count(".") == 1} | {"cli"}
# the registry names every entry module (``rlft.sft``) by design: it imports them only when one is run
DISPATCH = REPO / "rlft" / "stage" / "registry.py"
# package -> the rlft packages its modules may import (docs/architecture.md, "Who imports whom")
ALLOWED = {
    "core": {"core"},
    "rollout": {"core", "rollout"},
    "training": {"core", "training"},
    "evaluation": {"core", "rollout", "evaluation"},
    "stage": {"core", "evaluation", "stage"},
    "tools": {"core", "tools"},
}


def rlft_imports(path):
    """Every ``rlft.*`` module a file imports (at the top or inside functions), as dotted names."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "rlft"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "rlft":
            if node.module == "rlft":  # from rlft import sft, core
                found |= {f"rlft.{alias.name}" for alias in node.names}
            else:
                found.add(node.module)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("rlft."):
            found.add(node.value.split(":")[0])  # importlib.import_module("rlft.grpo") and the like
    return found


def library_modules():
    return sorted(p for package in ALLOWED for p in (REPO / "rlft" / package).rglob("*.py"))


def test_the_library_packages_exist_and_hold_the_code():
    assert len(library_modules()) > 20
    top = {p.stem for p in (REPO / "rlft").glob("*.py")} - {"__init__"}
    assert top == ENTRY_SCRIPTS, f"only entry scripts sit in rlft/ itself, found {sorted(top - ENTRY_SCRIPTS)}"


@pytest.mark.parametrize("path", library_modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_library_modules_import_only_what_their_layer_allows(path):
    package = path.relative_to(REPO / "rlft").parts[0]
    names = rlft_imports(path)
    if path == DISPATCH:
        names = {n for n in names if n.split(".")[1] not in ENTRY_SCRIPTS | {"commands"}}
    for name in names:
        parts = name.split(".")
        assert len(parts) > 1 and parts[1] not in ENTRY_SCRIPTS | {"commands"}, \
            f"{path.name} imports the entry point {name}; entry points import the library, never the reverse"
        assert parts[1] in ALLOWED[package], f"{path.name} ({package}/) imports {name}; allowed: {ALLOWED[package]}"


def test_nothing_reaches_into_another_modules_private_names():
    for path in sorted((REPO / "rlft").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rlft"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.relative_to(REPO)} imports private {private} from {node.module}"


def test_no_module_or_package_under_rlft_shadows_another_top_level_name():
    # `accelerate launch rlft/grpo.py` puts rlft/ first on sys.path: rlft/trl.py would replace TRL.
    installed = set(importlib.metadata.packages_distributions()) | {m.name for m in pkgutil.iter_modules()}
    taken = (installed | set(sys.stdlib_module_names)) - {"rlft", "tests"}
    names = {p.stem for p in (REPO / "rlft").rglob("*.py")} | {p.name for p in (REPO / "rlft").rglob("*") if p.is_dir()}
    names -= {"__init__", "__pycache__"}
    clashes = sorted(n for n in names if n in taken)
    assert not clashes, f"rename these modules/folders under rlft/, they shadow installed or stdlib modules: {clashes}"
    assert "rewards" in taken and "json" in taken  # the check sees both kinds of names


def test_rewards_imports_neither_torch_nor_rlft():
    code = ("import pkgutil, importlib, sys, rewards\n"
            "for m in pkgutil.walk_packages(rewards.__path__, 'rewards.'):\n"
            "    importlib.import_module(m.name)\n"
            "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('torch', 'rlft', 'transformers'))\n"
            "print(bad)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
    for path in sorted((REPO / "rewards").rglob("*.py")):
        assert not rlft_imports(path), f"{path.name} imports rlft"


# -- imports where a reader expects them ------------------------------------------------------------------------
# The fast path: what `rlft <name>` imports before a recipe is parsed (the entry modules and what they import at
# module level). A bad recipe is refused there in one line, so nothing on it may import torch & co. at module
# level; an import inside a function is the boundary that keeps it so, and is allowed only there, for a module
# that is not itself on the fast path (a heavy library, or rlft code that loads one).
HEAVY = ("torch", "transformers", "peft", "datasets", "accelerate", "deepspeed", "vllm")  # trl itself is lazy
# optional packages rlft works without (imported where a user's setting needs them)
OPTIONAL = {"vllm", "bitsandbytes", "gguf", "playwright", "llama_cpp", "liger_kernel", "flash_attn"}
FAST_PATH = """
import importlib, json, sys
from rlft.stage import registry
for entry in registry.entries():
    importlib.import_module(entry.module)
print(json.dumps(sorted(sys.modules)))
"""


@pytest.fixture(scope="module")
def fast_path():
    proc = subprocess.run([sys.executable, "-c", FAST_PATH], cwd=REPO, capture_output=True, text=True, check=True)
    return set(json.loads(proc.stdout))


def test_the_fast_path_loads_no_heavy_library(fast_path):
    assert not [m for m in HEAVY if m in fast_path], "a module rlft imports before parsing loads a heavy library"


def _function_level_imports(path):
    tree = ast.parse(path.read_text())
    top = {id(node) for stmt in tree.body for node in ast.walk(stmt) if stmt in tree.body
           and (isinstance(stmt, ast.Import | ast.ImportFrom | ast.If | ast.Try))}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in top:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            yield from ((node.lineno, name) for name in names)


def test_imports_inside_functions_only_keep_the_fast_path_fast(fast_path):
    stdlib = set(sys.stdlib_module_names)
    misplaced = []
    for path in sorted((REPO / "rlft").rglob("*.py")):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for line, name in _function_level_imports(path):
            root = name.split(".")[0]
            light = name in fast_path or root in stdlib
            if root in OPTIONAL or (module in fast_path and not light):
                continue  # an optional package, or the boundary that keeps the fast path fast
            misplaced.append(f"{path.relative_to(REPO)}:{line} imports {name}")
    assert not misplaced, "move these imports to the top of their module:\n" + "\n".join(misplaced)
