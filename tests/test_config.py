"""Recipes: parsing, overrides, type checks and one-line errors for bad input."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from rlft.core.errors import UserError, run_cli
from rlft.core.recipe import coerce, parse_recipe
from tests.conftest import REPO, run_cmd

RECIPES = sorted((REPO / "recipes").glob("**/*.yaml"))


@dataclass
class Toy:
    learning_rate: float = 1e-5
    max_steps: int = -1
    bf16: bool = False
    report_to: str | list[str] | None = None
    lora_target_modules: list[str] | None = None
    reward_kwargs: dict | None = None
    name: str = "x"


def test_cli_overrides_file(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("learning_rate: 1.0e-4\nmax_steps: 10\nname: file\n")
    (toy,), resolved = parse_recipe([Toy], [str(recipe), "--max_steps", "3", "--bf16"])
    assert (toy.learning_rate, toy.max_steps, toy.bf16, toy.name) == (1e-4, 3, True, "file")
    assert resolved == {"learning_rate": 1e-4, "max_steps": 3, "name": "file", "bf16": True}


def test_yaml_scientific_notation_without_dot_is_a_float(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("learning_rate: 5e-6\n")  # PyYAML reads this as a string
    (toy,), _ = parse_recipe([Toy], [str(recipe)])
    assert toy.learning_rate == 5e-6


@pytest.mark.parametrize(
    "value,tp,expected",
    [
        ("5e-6", float, 5e-6),
        ("3", int, 3),
        ("false", bool, False),
        ("q_proj,v_proj", list[str], ["q_proj", "v_proj"]),
        ("[q_proj, v_proj]", list[str] | None, ["q_proj", "v_proj"]),
        ("none", str | list[str] | None, "none"),  # report_to: none stays a string
        ("null", int | None, None),
        ("{digits: 3}", dict | None, {"digits": 3}),
    ],
)
def test_coerce(value, tp, expected):
    assert coerce(value, tp) == expected


def test_nested_block_is_kept(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("reward_kwargs:\n  accuracy:\n    fallback: false\n")
    (toy,), _ = parse_recipe([Toy], [str(recipe)])
    assert toy.reward_kwargs == {"accuracy": {"fallback": False}}


def error_of(argv, types=(Toy,)) -> str:
    with pytest.raises(UserError) as info:
        parse_recipe(list(types), argv)
    return str(info.value)


def test_unknown_key_suggests_closest(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("learnig_rate: 1.0e-4\n")
    msg = error_of([str(recipe)])
    assert "'learnig_rate'" in msg and "did you mean 'learning_rate'" in msg


def test_unknown_cli_key_is_named():
    msg = error_of(["--no_such_key", "1"])
    assert "'no_such_key'" in msg and "command line" in msg


def test_wrong_type_names_key_and_type(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("max_steps: lots\n")
    msg = error_of([str(recipe)])
    assert "'max_steps'" in msg and "int" in msg and "'lots'" in msg


def test_bool_is_not_an_int():
    assert "'max_steps'" in error_of(["--max_steps", "true"])


@pytest.mark.parametrize(
    "text,needle",
    [
        ("learning_rate: [1, 2\n", "cannot parse recipe"),
        ("- a\n- b\n", "must be a mapping"),
        ("max_steps: 1\nmax_steps: 2\n", "duplicated key 'max_steps'"),
        ("learning_rate: !!python/object/apply:os.system ['echo hi']\n", "cannot parse recipe"),
    ],
)
def test_bad_yaml(tmp_path, text, needle):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    assert needle in error_of([str(recipe)])


def test_missing_recipe_file(tmp_path):
    assert "recipe file not found" in error_of([str(tmp_path / "nope.yaml")])


def test_run_cli_prints_one_line_and_exits_2(capsys):
    def main(argv):
        parse_recipe([Toy], ["--max_stepz", "3"])

    assert run_cli(main, []) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: unknown recipe key 'max_stepz'")


def stage_of(recipe: Path) -> str:
    first = recipe.read_text().splitlines()[0]
    match = re.match(r"# (?:accelerate launch (?:--\S+ \S+ )*rlft/(\w+)\.py|rlft (\w+)) recipes/", first)
    assert match, f"{recipe.name} must open with the command that runs it, got {first!r}"
    return match.group(1) or match.group(2)


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: str(p.relative_to(REPO / "recipes")))
def test_every_recipe_parses_into_its_dataclasses(recipe):
    import importlib

    from rlft.stage import registry

    stage = stage_of(recipe)
    module = importlib.import_module(registry.get(stage).module)  # the module `rlft <stage>` runs
    _instances, resolved = module.parse([str(recipe)])
    assert resolved, f"{recipe.name} is empty"
    assert str(recipe.relative_to(REPO)) in recipe.read_text().splitlines()[0]


def test_there_are_recipes():
    names = {str(r.relative_to(REPO / "recipes")) for r in RECIPES}
    assert {"sft.yaml", "math.yaml", "pairs.yaml", "dpo.yaml", "orpo.yaml", "pipeline.yaml",
            "gpu/qwen2.5-0.5b-gsm8k.yaml", "gpu/qwen2.5-1.5b-gsm8k.yaml", "tools/sft.yaml", "tools/grpo.yaml",
            "tools/eval.yaml", "tools/pipeline.yaml"} <= names


# The same errors end-to-end, through the three ways of starting a stage.
@pytest.mark.parametrize(
    "command",
    [
        ["rlft", "sft", "recipes/sft.yaml", "--no_such_key", "1"],
        ["python", "-m", "rlft.sft", "recipes/sft.yaml", "--no_such_key", "1"],
        ["python", "rlft/sft.py", "recipes/sft.yaml", "--no_such_key", "1"],
        ["rlft", "grpo", "recipes/math.yaml", "--no_such_key", "1"],
    ],
    ids=["console-script", "python-m", "script", "grpo"],
)
def test_bad_key_exits_2_with_one_line(command):
    result = run_cmd(command, timeout=180)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [lines[-1]] and "no_such_key" in lines[-1], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args,needle",
    [
        (["recipes/missing.yaml"], "recipe file not found"),
        (["recipes/sft.yaml", "--max_steps", "abc"], "'max_steps'"),
        (["recipes/sft.yaml", "--lora_r", "0"], "lora_r"),
    ],
)
def test_bad_input_exit_2(args, needle, tmp_path):
    result = run_cmd(["rlft", "sft", *args, "--output_dir", str(tmp_path / "out")], timeout=180)
    assert result.returncode == 2 and needle in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists(), "a refused run must write nothing"


def test_console_script_usage():
    result = run_cmd(["rlft"], timeout=60)
    assert result.returncode == 2 and "usage: rlft <stage>" in result.stdout
    result = run_cmd(["rlft", "sftt", "recipes/sft.yaml"], timeout=60)
    assert result.returncode == 2 and "unknown stage 'sftt'" in result.stderr


@dataclass
class Renamed:
    renamed_keys: ClassVar[dict[str, str]] = {"rollout_engine": "engine"}  # not a field
    engine: str = "hf"


def test_a_renamed_key_is_read_under_its_old_name_with_one_deprecation_warning(caplog):
    from rlft.core.runtime import log_deferred_warnings

    (args,), resolved = parse_recipe([Renamed], ["--rollout_engine", "vllm"])
    assert args.engine == "vllm" and resolved == {"engine": "vllm"}  # the run's recipe.yaml says the new name
    with caplog.at_level("WARNING", logger="rlft.core.runtime"):
        log_deferred_warnings()
    assert len(caplog.records) == 1
    assert "'rollout_engine' (on the command line) is now called 'engine'" in caplog.text
    with pytest.raises(UserError, match="'rollout_engine' and 'engine' .* are the same setting"):
        parse_recipe([Renamed], ["--rollout_engine", "vllm", "--engine", "hf"])


def test_grpo_reads_the_old_engine_name_and_a_refused_run_still_prints_one_line(tmp_path):
    from rlft import grpo
    from rlft.core.runtime import log_deferred_warnings
    from rlft.rollout.engine import RolloutArguments
    from rlft.stage.skeleton import StageArgs

    args = StageArgs(*grpo.parse(["recipes/math.yaml", "--rollout_engine", "hf"]))
    assert args.get(RolloutArguments).engine == "hf"
    log_deferred_warnings()  # the queued note is this process's; later tests count their own
    occupied = tmp_path / "run"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("an earlier run")
    result = run_cmd([sys.executable, "-m", "rlft.grpo", "recipes/math.yaml", "--rollout_engine", "hf",
                      "--output_dir", str(occupied)], timeout=300)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"error: output_dir {occupied} already holds")
    assert (occupied / "keep.txt").read_text() == "an earlier run"


@pytest.mark.parametrize(("module", "recipe"), [("sft", "sft"), ("dpo", "dpo"), ("orpo", "orpo"), ("grpo", "math")])
def test_every_stage_logs_to_tensorboard_unless_told_not_to(module, recipe, tmp_path):
    import importlib

    stage = importlib.import_module(f"rlft.{module}")
    (*_, cfg), _ = stage.parse([f"recipes/{recipe}.yaml", "--output_dir", str(tmp_path)])
    assert cfg.report_to == ["tensorboard"]
    (*_, cfg), _ = stage.parse([f"recipes/{recipe}.yaml", "--output_dir", str(tmp_path), "--report_to", "none"])
    assert cfg.report_to == []
