"""rlft eval: statistics, the general suite, base-vs-adapter evaluation, determinism, sweeps, reports."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from rlft import eval as rlft_eval
from rlft.evaluation.compare import _rows
from rlft.evaluation.metrics import paired_bootstrap, pass_at_k
from rlft.evaluation.suite import SUITE, check
from tests.helpers import tiny_model_dir


@pytest.mark.parametrize(("n", "c", "k", "expected"), [
    (5, 2, 2, 1 - 3 / 10),     # 1 - C(3,2)/C(5,2)
    (6, 3, 2, 1 - 3 / 15),     # 1 - C(3,2)/C(6,2)
    (10, 0, 3, 0.0),
    (3, 1, 3, 1.0),            # every draw of 3 includes the correct one
    (20, 5, 1, 5 / 20),        # pass@1 is the plain success rate
])
def test_pass_at_k_matches_hand_computed_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_paired_bootstrap_is_seeded_and_brackets_the_difference():
    a, b = [0, 1, 0, 0, 1] * 20, [1, 1, 0, 1, 1] * 20
    first, again = paired_bootstrap(a, b, seed=3), paired_bootstrap(a, b, seed=3)
    assert first == again
    assert first["diff"] == pytest.approx(0.4) and first["low"] < 0.4 < first["high"]
    same = paired_bootstrap(a, a)
    assert same["low"] == same["high"] == 0.0


def test_general_suite_has_fifty_items_over_six_skills_each_checkable():
    assert len(SUITE) >= 50
    assert {i["category"] for i in SUITE} == {"facts", "arithmetic", "units", "code", "translation", "instructions"}
    assert all(i["check"] in {"contains", "number", "regex", "words", "upper", "no_letter", "items"} for i in SUITE)


@pytest.mark.parametrize(("kind", "accept", "good", "bad"), [
    ("contains", ["Paris"], "It is Paris.", "It is Parisian."),
    ("number", ["56"], "7 times 8 is 56.", "It is 54."),
    ("regex", [r"^\W*yes\W*$"], "Yes.", "Yes, it is hot."),
    ("words", ["3"], "Blue and bright", "Blue sky"),
    ("upper", [], "GREEN!", "Green"),
    ("no_letter", ["e"], "Black", "Red"),
    ("items", ["3"], "apple, pear, plum", "apple, pear"),
])
def test_suite_verifiers(kind, accept, good, bad):
    item = {"check": kind, "accept": accept}
    assert check(item, good) and not check(item, bad)


def test_sweep_marks_the_best_checkpoint_not_the_last():
    per_model = {name: {"headline": "accuracy", "scores": scores, "marked": [True] * 4, "tokens": [2] * 4,
                        "general_pass": []}
                 for name, scores in (("base", [0, 0, 0, 0]), ("run/checkpoint-1", [1, 0, 0, 0]),
                                      ("run/checkpoint-2", [1, 1, 1, 0]), ("run", [1, 1, 0, 0]))}
    args = SimpleNamespace(bootstrap_resamples=200, seed=0, sweep="run", paired_previous=False)
    rows = _rows(list(per_model), per_model, [], args)
    assert [r["model"] for r in rows if r.get("best")] == ["run/checkpoint-2"]
    assert rows[2]["diff"] == pytest.approx(0.75)


def test_models_list_on_the_command_line(tmp_path):
    (_, _, _, _, args), _ = rlft_eval.parse(["recipes/eval_math.yaml", "--models", "base", "runs/a", "runs/b",
                                          "--output_dir", str(tmp_path)])
    assert args.models == ["base", "runs/a", "runs/b"]


# -- on the tiny model (tests/helpers.tiny_model_dir): what the engines and reports do, not what a model says --

TINY_MODEL = ["--model_name_or_path", str(tiny_model_dir())]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 4-step SFT adapter with checkpoints (different enough from the base to change some answers)."""
    from rlft import sft

    out = tmp_path_factory.mktemp("eval") / "sft"
    sft.main(["recipes/sft.yaml", *TINY_MODEL, "--output_dir", str(out), "--num_train_samples", "32", "--max_steps", "4",
              "--per_device_train_batch_size", "4", "--learning_rate", "2e-3", "--save_steps", "2",
              "--save_total_limit", "5", "--eval_before_after", "false", "--logging_steps", "1"])
    return out


EVAL = ["recipes/eval_math.yaml", *TINY_MODEL, "--eval_samples", "12", "--num_test_samples", "12", "--eval_max_new_tokens", "24",
        "--eval_batch_size", "12", "--bootstrap_resamples", "200"]


@pytest.mark.slow
def test_eval_base_vs_adapter_writes_report_and_is_byte_identical_on_rerun(trained, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    results = rlft_eval.main([*EVAL, "--models", "base", str(trained), "--engine", "hf", "--output_dir", str(first)])
    rlft_eval.main([*EVAL, "--models", "base", str(trained), "--engine", "hf", "--output_dir", str(second)])
    assert (first / "samples.jsonl").read_bytes() == (second / "samples.jsonl").read_bytes()
    rows = {r["model"]: r for r in results["models"]}
    assert set(rows) == {"base", str(trained)} and rows[str(trained)]["n"] == 12
    assert "diff" in rows[str(trained)] and rows[str(trained)]["diff_low"] <= rows[str(trained)]["diff_high"]
    samples = [json.loads(line) for line in (first / "samples.jsonl").read_text().splitlines()]
    task = [s for s in samples if s["set"] == "task"]
    general = [s for s in samples if s["set"] == "general"]
    assert len(task) == 12 and len(general) == len(SUITE)
    assert any(s["outputs"]["base"]["text"] != s["outputs"][str(trained)]["text"] for s in samples), \
        "the adapter must change some answers"
    html = (first / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2  # accuracy + the run's reward/loss curves
    assert (first / "accuracy.png").read_bytes()[:4] == b"\x89PNG" and "General skills" in html


@pytest.mark.slow
def test_base_alone_means_the_recipes_model(trained, tmp_path):
    common = [*EVAL, "--engine", "hf", "--general_suite", "false"]
    alone = rlft_eval.main([*common, "--models", "base", "--output_dir", str(tmp_path / "alone")])
    assert [r["model"] for r in alone["models"]] == ["base"] and alone["models"][0]["n"] == 12
    rlft_eval.main([*common, "--models", "base", str(trained), "--output_dir", str(tmp_path / "pair")])

    def base_outputs(run):
        rows = [json.loads(line) for line in (tmp_path / run / "samples.jsonl").read_text().splitlines()]
        return [r["outputs"]["base"]["text"] for r in rows]

    assert base_outputs("alone") == base_outputs("pair")  # the recipe's model both times: the adapter's base


@pytest.mark.slow
def test_vllm_engine_switches_models_and_agrees_with_hf(trained, tmp_path):
    hf = rlft_eval.main([*EVAL, "--models", "base", str(trained), "--engine", "hf", "--general_suite", "false",
                         "--output_dir", str(tmp_path / "hf")])
    vllm = rlft_eval.main([*EVAL, "--models", "base", str(trained), "--engine", "vllm", "--general_suite", "false",
                           "--vllm_gpu_memory_utilization", "0.15", "--vllm_dtype", "float32",
                           "--output_dir", str(tmp_path / "vllm")])
    assert vllm["engine"] == {"engine": "vllm", "dtype": "float32"}

    def outputs(run):
        rows = [json.loads(line) for line in (tmp_path / run / "samples.jsonl").read_text().splitlines()]
        return {m: [r["outputs"][m]["text"] for r in rows] for m in ("base", str(trained))}

    a, b = outputs("hf"), outputs("vllm")
    for model in a:  # float32 weights: the engines agree on (almost) every greedy answer
        same = sum(x == y for x, y in zip(a[model], b[model]))
        assert same >= 11, f"{model}: vLLM and HF agree on only {same}/12"
    assert a["base"] != a[str(trained)] and b["base"] != b[str(trained)], "the engine must have switched weights"
    assert [r["accuracy"] for r in hf["models"]] == pytest.approx([r["accuracy"] for r in vllm["models"]], abs=0.1)


@pytest.mark.slow
def test_sweep_evaluates_every_checkpoint(trained, tmp_path):
    results = rlft_eval.main([*EVAL, "--sweep", str(trained), "--engine", "hf", "--general_suite", "false",
                              "--output_dir", str(tmp_path / "sweep")])
    names = [r["model"] for r in results["models"]]
    assert names == ["base", str(trained / "checkpoint-2"), str(trained / "checkpoint-4"), str(trained)]
    best = [r for r in results["models"] if r.get("best")]
    assert len(best) == 1 and best[0]["accuracy"] == max(r["accuracy"] for r in results["models"][1:])


@pytest.mark.slow
def test_enable_thinking_off_reaches_the_eval_prompts(thinking_model_dir, tmp_path, rendered_prompts):
    from rlft.evaluation import generation
    from tests.conftest import THINKING_OFF

    seen = rendered_prompts(generation)
    rlft_eval.main(["recipes/eval_math.yaml", "--eval_samples", "2", "--num_test_samples", "2",
                    "--eval_max_new_tokens", "4", "--general_suite", "false", "--engine", "hf",
                    "--models", "base", "--model_name_or_path", str(thinking_model_dir),
                    "--chat_template_kwargs", "{enable_thinking: false}", "--output_dir", str(tmp_path / "e")])
    assert len(seen) == 2 and all(p.startswith(THINKING_OFF) for p in seen), seen[:1]


@pytest.mark.slow
def test_enable_thinking_off_reaches_the_closing_check(thinking_tokenizer, bundled_model, rendered_prompts, tmp_path):
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model

    from rlft.core.arguments import EvalArguments, ModelArguments, RewardArguments
    from rlft.evaluation import closing
    from tests.conftest import THINKING_OFF

    seen = rendered_prompts(closing)  # the closing check's own import of hf_completions
    model = get_peft_model(bundled_model, LoraConfig(r=4, target_modules=["q_proj"]))
    rows = Dataset.from_list([{"prompt": [{"role": "user", "content": "What is 1 + 1?"}], "answer": "2"}])
    try:
        result = closing.evaluate_stage(model, thinking_tokenizer, rows, EvalArguments(eval_max_new_tokens=4),
                                        ModelArguments(chat_template_kwargs={"enable_thinking": False}),
                                        str(tmp_path), RewardArguments().build())
    finally:
        model.unload()  # the session's shared model goes back without the adapter
    assert len(seen) == 2 and all(p.startswith(THINKING_OFF) for p in seen)  # base, then trained
    assert [r["model"] for r in result["table"]] == ["base", "trained"]


@pytest.mark.slow
def test_default_eval_reproduces_byte_for_byte_in_fresh_processes(tmp_path):
    import os
    import subprocess

    from tests.conftest import BIN, REPO

    def start(name):  # both at once: each is mostly a process starting its engine
        env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
        return subprocess.Popen(["python", "-m", "rlft.eval", "recipes/eval_math.yaml", *TINY_MODEL, "--models",
                                 "base", "--eval_samples", "16", "--num_test_samples", "16", "--eval_max_new_tokens",
                                 "48", "--general_suite", "false", "--vllm_gpu_memory_utilization", "0.15",
                                 "--output_dir", str(tmp_path / name)], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def finished(name, proc):
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
        return json.loads((tmp_path / name / "results.json").read_text())

    procs = {name: start(name) for name in ("a", "b")}
    first, second = (finished(name, proc) for name, proc in procs.items())
    assert first["engine"] == {"engine": "vllm", "dtype": "float32"}  # the default: reproducible
    assert (tmp_path / "a" / "samples.jsonl").read_bytes() == (tmp_path / "b" / "samples.jsonl").read_bytes()
    assert "byte-reproducible" in (tmp_path / "a" / "report.md").read_text()
    assert first["models"] == second["models"]


def test_bf16_evaluation_must_be_asked_for_as_not_reproducible():
    from rlft.core.errors import UserError
    from rlft.evaluation.compare import EvalRunArguments, eval_dtype

    with pytest.raises(UserError, match="reproducible: false"):
        EvalRunArguments(vllm_dtype="bfloat16")
    assert eval_dtype(EvalRunArguments(vllm_dtype="bfloat16", reproducible=False)) == "bfloat16"
    assert eval_dtype(EvalRunArguments()) == "float32"


@pytest.mark.parametrize("key", ["eval_before_after", "sft_target_column", "num_train_samples"])
def test_keys_rlft_eval_would_not_read_are_refused_in_one_line(key, tmp_path):
    from tests.conftest import run_cmd

    value = {"eval_before_after": "false", "sft_target_column": "answer", "num_train_samples": "5"}[key]
    run = run_cmd([".venv/bin/rlft", "eval", "recipes/eval_math.yaml", f"--{key}", value, "--models", "base",
                   "--output_dir", str(tmp_path / "e")])
    [line] = run.stderr.strip().splitlines()
    assert run.returncode == 2 and line.startswith(f"error: {key}: not used by rlft eval: "), line


@pytest.mark.parametrize(("flags", "named"), [
    (["--pass_k", "[1, 4]"], "pass_k (only with pass_k_samples above 0)"),
    (["--test_size", "0.3"], "test_size (only with file or hub data"),
])
def test_keys_idle_in_this_evaluation_are_named(flags, named):
    from rlft.core import runtime

    runtime.discard_deferred_warnings()
    rlft_eval.parse(["recipes/eval_math.yaml", "--models", "base", *flags])
    assert [note for note in runtime._deferred if named in note], list(runtime._deferred)
