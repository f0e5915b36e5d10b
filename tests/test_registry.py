"""One registry of stages: a stage registered once is seen by the console script, the parse, pipeline and ablate."""

from __future__ import annotations

import sys
import textwrap

import pytest

from rlft import cli
from rlft.commands import ablate, pipeline
from rlft.core.errors import UserError
from rlft.stage import registry
from tests.conftest import REPO

TOY = '''
"""A throwaway stage: DPO's config under another name."""
import sys

from rlft.core.errors import run_cli
from rlft.stage import key_rules
from rlft.stage.registry import Entry, register
from rlft.stage.skeleton import TrainingStage


class Toy(TrainingStage):
    name = "toy"
    config = "trl:DPOConfig"


def parse(argv):
    return Toy().parse(argv)


def main(argv=None):
    return Toy().run(argv)


register(Entry("toy", "toy_stage", "a throwaway stage", stage_class="Toy", pipeline=True, ablate=True,
               rules=key_rules.DPO_KEYS))
'''


@pytest.fixture
def toy(tmp_path, monkeypatch):
    (tmp_path / "toy_stage.py").write_text(textwrap.dedent(TOY))
    monkeypatch.syspath_prepend(str(tmp_path))
    import toy_stage  # noqa: F401 - registers the stage

    yield registry.get("toy")
    registry.unregister("toy")
    sys.modules.pop("toy_stage", None)


def test_the_stage_names_are_listed_once():
    """No module under rlft/ but the registry spells out the list of training stages."""
    listing = ('"sft", "dpo", "orpo", "grpo"', "'sft', 'dpo', 'orpo', 'grpo'", "sft|dpo|orpo|grpo")
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "rlft").rglob("*.py")
                 if p.name != "registry.py" and any(text in p.read_text() for text in listing)]
    assert offenders == [], offenders
    assert registry.names(is_stage=True) == ["sft", "dpo", "orpo", "grpo"]


def test_a_registered_stage_is_listed_and_has_help(toy, capsys):
    assert cli.main(["--help"]) == 0
    assert "toy      a throwaway stage" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        cli.main(["toy", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: rlft toy RECIPE.yaml") and "--beta" in out


def test_a_registered_stage_refuses_a_bad_key_in_one_line(toy, capsys, tmp_path):
    assert cli.main(["toy", "recipes/dpo.yaml", "--bta", "0.2", "--output_dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [("error: unknown recipe key 'bta' (on the command line); did you mean 'beta'? Run with --help to "
                   "list valid keys.")]
    assert cli.main(["toy", "recipes/dpo.yaml", "--do_eval", "true"]) == 2  # its rules, from its entry
    assert "do_eval: not used by rlft toy" in capsys.readouterr().err


def test_pipeline_and_ablate_see_a_registered_stage(toy, tmp_path):
    args = pipeline.PipelineArguments(stages={"t": {"stage": "toy", "recipe": "recipes/dpo.yaml",
                                                    "overrides": {"beta": "high"}}})
    assert pipeline.module_of("toy") == "toy_stage"
    with pytest.raises(UserError, match="pipeline stage 't': recipe key 'beta' .* must be float"):
        pipeline.check_stages(args)
    recipe = tmp_path / "toy.yaml"
    recipe.write_text("# rlft toy toy.yaml\nbeta: 0.2\n")
    assert ablate.stage_of(str(recipe)) == "toy"


def test_an_unknown_stage_is_one_line(capsys):
    assert cli.main(["tyo", "x.yaml"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown stage 'tyo'; stages: sft, pairs, dpo")
    with pytest.raises(UserError, match="unknown stage 'tyo'"):
        registry.get("tyo")
