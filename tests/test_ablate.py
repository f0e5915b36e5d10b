"""rlft ablate: the grid, its refusals, the interval arithmetic, and a tiny grid run end to end."""

from __future__ import annotations

import json
import shlex

import pytest

from rlft.commands.ablate import make_plan, parser
from rlft.evaluation.ablation import nested_bootstrap, summarize
from tests.conftest import run_cmd
from tests.helpers import tiny_model_dir


def plan_of(argv):
    return make_plan(parser().parse_args(argv))


def test_the_grid_is_every_setting_times_every_seed_with_the_first_values_as_baseline(tmp_path):
    plan = plan_of(["recipes/math.yaml", "--grid", "learning_rate=1e-4,3e-4", "lora_r=8,16", "--seeds", "1", "2",
                    "--out", str(tmp_path), "--set", "max_steps=5"])
    assert plan["stage"] == "grpo" and plan["baseline"] == "learning_rate=1e-4,lora_r=8"
    assert len(plan["cells"]) == 8 and plan["set"] == {"max_steps": "5"}
    assert plan["cells"][1] == {"setting": "learning_rate=1e-4,lora_r=8", "overrides": {"learning_rate": "1e-4",
                                "lora_r": "8"}, "seed": 2, "dir": str(tmp_path / "learning_rate=1e-4,lora_r=8" / "seed-2")}
    assert plan_of(["recipes/math.yaml", "--grid", "lora_r=8,16", "--baseline", "lora_r=16",
                    "--out", str(tmp_path)])["baseline"] == "lora_r=16"


def test_the_interval_arithmetic_matches_a_hand_computed_case():
    # two seeds, each scoring all-0 or all-1: a resample is all-0 with p=1/4, all-1 with p=1/4, else 0.5,
    # so the 95 % interval is exactly [0, 1] around the mean 0.5
    assert nested_bootstrap([[0.0, 0.0], [1.0, 1.0]], resamples=4000) == {"mean": 0.5, "low": 0.0, "high": 1.0}
    # one seed: the ordinary bootstrap over prompts; a constant difference has no spread at all
    assert nested_bootstrap([[0.25] * 7, [0.25] * 3]) == {"mean": 0.25, "low": 0.25, "high": 0.25}
    # the mean is over seeds, each seed's mean over its prompts (not pooled over all prompts)
    assert nested_bootstrap([[1.0], [0.0, 0.0, 0.0]], resamples=10)["mean"] == 0.5

    def cell(base, trained):
        return {"base": base, "trained": trained, "curve": [], "seconds": 30.0}

    rows = summarize({"a": {1: cell([0, 0], [0, 1]), 2: cell([0, None], [1, 1])},
                      "b": {1: cell([0, 0], [1, 1])}}, baseline="a", resamples=500)
    a, b = rows
    assert a["accuracy"] == pytest.approx((0.5 + 1.0) / 2)  # seed 2's second prompt is unverifiable: left out
    assert a["gain"] == pytest.approx((0.5 + 1.0) / 2) and "vs_baseline" not in a
    assert b["vs_baseline"] == pytest.approx(0.5) and b["vs_baseline_seeds"] == [1]  # paired on shared seeds only
    assert b["vs_baseline_low"] == 0.0 and b["vs_baseline_high"] == 1.0  # diffs [1, 0] on two prompts


@pytest.mark.parametrize(("argv", "needle"), [
    (["recipes/math.yaml"], "needs a recipe and --grid"),
    (["recipes/math.yaml", "--grid", "learning_rate"], "write KEY=VALUE1,VALUE2"),
    (["recipes/math.yaml", "--grid", "learning_rate=1e-4,1e-4"], "every value must be given once"),
    (["recipes/math.yaml", "--grid", "seed=1,2"], "seed and output_dir are set per cell"),
    (["recipes/math.yaml", "--grid", "lora_r=8,16", "--baseline", "lora_r=4"], "is not a setting of the grid"),
    (["recipes/math.yaml", "--grid", "lora_rr=8,16"], "cell lora_rr=8: unknown recipe key 'lora_rr'"),
    (["recipes/math.yaml", "--grid", "lora_r=8,16", "--seeds", "x"], "rlft ablate: argument --seeds"),
    (["--collect", "nowhere"], "nowhere holds no ablation"),
])
def test_bad_input_is_refused_in_one_line_and_runs_nothing(argv, needle, tmp_path):
    run = run_cmd([".venv/bin/rlft", "ablate", *argv, "--out", str(tmp_path / "abl")])
    assert run.returncode == 2, run.stderr
    assert needle in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert not any((tmp_path / "abl").glob("*/seed-*"))


def test_another_grid_into_the_same_out_is_refused(tmp_path):
    out = tmp_path / "abl"
    first = run_cmd([".venv/bin/rlft", "ablate", "recipes/sft.yaml", "--grid", "lora_r=8,16", "--out", str(out),
                     "--print-commands"])
    assert first.returncode == 0, first.stderr
    again = run_cmd([".venv/bin/rlft", "ablate", "recipes/sft.yaml", "--grid", "lora_r=4,8", "--out", str(out)])
    assert again.returncode == 2 and "holds another ablation (lora_r=8,16" in again.stderr, again.stderr


def test_a_grid_with_a_setting_that_cannot_fit_is_refused_before_any_cell_runs(tmp_path):
    out = tmp_path / "abl"
    run = run_cmd([".venv/bin/rlft", "ablate", "recipes/sft.yaml", "--grid", "per_device_train_batch_size=8,256",
                   "--out", str(out)], env={"RLFT_MEMORY_GB": "6"})
    assert run.returncode == 2, run.stderr[-2000:]
    [line] = run.stderr.strip().splitlines()
    assert line.startswith("error: cell per_device_train_batch_size=256: memory plan: needs about ") and \
        "nothing has run" in line, line
    assert not out.exists()


TINY = ["recipes/sft.yaml", "--grid", "learning_rate=1e-5,2e-3", "--seeds", "1", "2", "--set",
        f"model_name_or_path={tiny_model_dir()}", "max_steps=2",
        "num_train_samples=16", "per_device_train_batch_size=4", "num_test_samples=6", "eval_samples=6",
        "eval_max_new_tokens=12", "eval_batch_size=6", "save_strategy=no", "report_to=none", "logging_steps=1",
        "eval_steps=1"]


@pytest.mark.slow
def test_a_tiny_grid_runs_skips_finished_cells_and_collects_a_partial_grid(tmp_path):
    out = tmp_path / "abl"
    printed = run_cmd([".venv/bin/rlft", "ablate", *TINY, "--out", str(out), "--print-commands"])
    assert printed.returncode == 0, printed.stderr
    commands = printed.stdout.strip().splitlines()
    assert len(commands) == 4 and all(c.startswith("rlft ablate recipes/sft.yaml") for c in commands)

    # a scheduler runs one printed command; the result is built from that cell alone
    one = run_cmd(shlex.split(commands[3]), timeout=900)
    assert one.returncode == 0, one.stderr[-3000:]
    partial = run_cmd([".venv/bin/rlft", "ablate", "--collect", str(out)])
    assert partial.returncode == 0, partial.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert [(r["setting"], r["seeds"]) for r in results["rows"]] == [("learning_rate=1e-5", []),
                                                                        ("learning_rate=2e-3", [2])]
    assert len(results["missing"]) == 3 and "3 cell(s) not finished" in (out / "report.md").read_text()
    done = out / "learning_rate=2e-3" / "seed-2"
    stamp = (done / "ablate_cell.json").read_text()

    # the whole grid: the finished cell is skipped, the other three run
    full = run_cmd([".venv/bin/rlft", "ablate", *TINY, "--out", str(out)], timeout=1800)
    assert full.returncode == 0, full.stderr[-3000:]
    assert "finished earlier; skipping" in full.stderr and (done / "ablate_cell.json").read_text() == stamp
    results = json.loads((out / "results.json").read_text())
    rows = {r["setting"]: r for r in results["rows"]}
    assert all(r["seeds"] == [1, 2] for r in rows.values()) and not results["missing"]
    changed = rows["learning_rate=2e-3"]
    assert changed["vs_baseline_seeds"] == [1, 2] and changed["vs_baseline_low"] <= changed["vs_baseline_high"]
    assert changed["seconds"] > 0 and "learning_rate=2e-3" in full.stdout and "vs learning_rate=1e-5" in full.stdout
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2  # accuracy per setting, eval/accuracy curves per seed
    for cell in json.loads((out / "ablation.json").read_text())["cells"]:
        manifest = json.loads((out / cell["dir"].split("/abl/")[1] / "rlft_manifest.json").read_text())
        assert manifest["seed"] == cell["seed"] and manifest["status"] == "complete"


def test_a_stage_killed_by_a_signal_is_named_with_the_likely_cause(tmp_path, monkeypatch):
    """The out-of-memory killer leaves no message of the stage's own: the pipeline's one line says what happened."""
    from rlft.commands import pipeline
    from rlft.core.errors import UserError

    (tmp_path / "killed_stage.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    (tmp_path / "failed_stage.py").write_text("raise SystemExit(3)\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with pytest.raises(UserError, match=r"stage grpo was killed by SIGKILL .*out-of-memory killer.*dmesg"):
        pipeline.run_step("grpo", "killed_stage", "recipe.yaml", [])
    with pytest.raises(UserError, match=r"stage sft failed \(exit code 3; its messages are above\)"):
        pipeline.run_step("sft", "failed_stage", "recipe.yaml", [])
