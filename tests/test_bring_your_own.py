"""A TRL user's recipe, reward functions and data run in rlft as they are (tests/byo: written in TRL's style).

The recipe is in the shape of open-r1's GRPO demo config: keys TRL 1.x and transformers 5 renamed or removed,
script keys, and three settings this machine cannot honour. Those three are refused in one line each before
anything loads; `rlft check` lists them all at once; with only them changed, two GRPO steps run on the bundled
model and the closing table is scored by the user's rewards on a `solution` column (no `answer` anywhere).
"""

from __future__ import annotations

import json

import pytest

from rlft.core.errors import UserError
from tests.conftest import run_cmd

RECIPE = "tests/byo/trl_era_grpo.yaml"
MACHINE_BOUND = {
    "attn_implementation": ("sdpa", "attn_implementation: flash_attention_2 needs the flash_attn package"),
    "report_to": ("none", "report_to: wandb is not installed here"),
    "push_to_hub": ("false", "push_to_hub: no Hugging Face token here"),
}
FIXED = [flag for key, (value, _) in MACHINE_BOUND.items() for flag in (f"--{key}", value)]


def problems(path, n=48, long_one=False):  # 10 % held out: 4 or more test rows
    rows = [{"problem": f"What is {a} + {b}?", "solution": f"{a} + {b} = \\boxed{{{a + b}}}"}
            for a, b in ((i % 7 + 1, i % 5 + 2) for i in range(n))]
    if long_one:
        rows.append({"problem": "Add these: " + " + ".join(["1"] * 200) + ".", "solution": "\\boxed{200}"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize("key", list(MACHINE_BOUND))
def test_each_setting_the_machine_cannot_honour_is_one_line_before_anything_loads(key, tmp_path):
    others = [flag for other, (value, _) in MACHINE_BOUND.items() if other != key for flag in (f"--{other}", value)]
    out = tmp_path / "run"
    run = run_cmd([".venv/bin/rlft", "grpo", RECIPE, *others, "--dataset_name", problems(tmp_path / "p.jsonl"),
                   "--output_dir", str(out)], env={"HF_TOKEN": "", "HF_HUB_OFFLINE": "1"})
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1, run.stderr[-2000:]
    assert lines[0].startswith(f"error: {MACHINE_BOUND[key][1]}"), lines[0]
    assert not out.exists()


def test_rlft_check_lists_every_problem_in_one_pass(tmp_path):
    run = run_cmd([".venv/bin/rlft", "check", RECIPE, "--dataset_name", problems(tmp_path / "p.jsonl"),
                   "--reward_funcs", '["tests.byo.rewards:accuracy_reward", "format"]', "--betta", "0.1"],
                  env={"HF_TOKEN": "", "HF_HUB_OFFLINE": "1"})
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2, run.stderr[-2000:]
    expected = ["unknown recipe key 'betta'", *(m for _, m in MACHINE_BOUND.values()), "unknown reward 'format'"]
    assert len(lines) == len(expected), lines
    for needle in expected:
        assert any(needle in line for line in lines), (needle, lines)
    fixed = run_cmd([".venv/bin/rlft", "check", RECIPE, *FIXED, "--dataset_name", problems(tmp_path / "p.jsonl"),
                     "--eval_samples", "4"], env={"RLFT_MEMORY_GB": "64"})
    assert fixed.returncode == 0 and fixed.stdout.startswith("ok: rlft grpo"), fixed.stderr[-2000:]


def test_trl_era_keys_are_read_as_rlfts_with_a_note(tmp_path):
    from rlft.core import runtime
    from rlft.grpo import parse

    runtime.discard_deferred_warnings()
    parts, recipe = parse([RECIPE, *FIXED, "--output_dir", str(tmp_path)])
    notes = list(runtime._deferred)  # what the run logs once its output directory is accepted
    runtime.discard_deferred_warnings()
    assert {k: recipe[k] for k in ("dtype", "prompt_column", "overwrite", "warmup_steps", "engine",
                                   "eval_batch_size")} == {"dtype": "float32", "prompt_column": "problem",
                                                           "overwrite": True, "warmup_steps": 0.1, "engine": "hf",
                                                           "eval_batch_size": 4}
    assert any("'use_vllm'" in n and "engine: hf" in n for n in notes), notes
    assert parts[-1].warmup_steps == 0.1 and parts[-1].per_device_eval_batch_size == 8  # TRL's own stays unset


@pytest.mark.parametrize(("flags", "message"), [
    (["--wandb_project", "x"], "wandb_project (on the command line) is not an rlft key: set WANDB_ENTITY"),
    (["--cosine_max_len", "100"], "cosine_max_len (on the command line) is not an rlft key: a setting of open-r1's"),
    # no suggestion rather than an unrelated one (max_completion_length)
    (["--max_prompt_tokens", "100"], "unknown recipe key 'max_prompt_tokens' (on the command line) Run with --help"),
])
def test_keys_without_an_rlft_equivalent_say_what_to_do(flags, message, tmp_path):
    from rlft.grpo import parse

    with pytest.raises(UserError) as err:
        parse([RECIPE, *FIXED, *flags, "--output_dir", str(tmp_path)])
    assert message in str(err.value), str(err.value)


def test_an_old_and_a_new_name_of_one_setting_in_one_source_are_refused():
    from rlft.core.trl_era import translate

    with pytest.raises(UserError, match="recipe keys 'warmup_ratio' and 'warmup_steps' .in r.yaml. are the same"):
        translate({"warmup_ratio": 0.1, "warmup_steps": 3}, {"warmup_steps"}, "in r.yaml")


@pytest.mark.slow
def test_two_steps_of_their_recipe_with_their_rewards_end_in_the_closing_table(tmp_path):
    from rlft.grpo import main

    out = tmp_path / "run"
    manifest = main([RECIPE, *FIXED, "--dataset_name", problems(tmp_path / "p.jsonl", long_one=True),
                     "--eval_samples", "4", "--eval_max_new_tokens", "24", "--output_dir", str(out)])
    assert manifest["status"] == "complete"
    table = {row["model"]: row for row in manifest["results"]["table"]}
    assert set(table) == {"base", "trained"} and table["trained"]["n"] == 4
    assert table["trained"]["metric"] == "accuracy_reward"  # the first of the user's rewards heads the table
    assert {"rewards/accuracy_reward", "rewards/format_reward", "rewards/progress_reward"} <= set(table["trained"])
    log = (out / "run.log").read_text()
    assert "max_prompt_length 128: dropped 1 of" in log  # the 200-term sum
    sample = json.loads((out / "before_after.jsonl").read_text().splitlines()[0])
    assert sample["prompt"][0] == {"role": "system", "content": "You are a careful assistant. Think, then give "
                                                                "the final number in \\boxed{}."}


def test_rewards_get_the_completion_form_the_prompts_call_for_and_every_trl_keyword():
    from datasets import Dataset

    from rewards import contract
    from rlft.stage.input_checks import check_scoring, preflight_rewards
    from tests.byo import rewards as theirs

    chat = {"prompt": [{"role": "user", "content": "What is 2 + 2?"}], "solution": "\\boxed{4}"}
    text = {"prompt": "What is 2 + 2?", "solution": "\\boxed{4}"}
    preflight_rewards([theirs.accuracy_reward, theirs.format_reward, theirs.progress_reward], chat)
    preflight_rewards([theirs.text_accuracy_reward], text)
    assert contract.call(theirs.accuracy_reward, [chat["prompt"]], ["so \\boxed{4}"], {"solution": ["4"]}) == [1.0]
    assert contract.call(theirs.text_accuracy_reward, [text["prompt"]], ["4"], {"solution": ["4"]}) == [1.0]
    assert contract.call(theirs.progress_reward, [text["prompt"]], ["x"], {}, completion_ids=[[1] * 50]) == [0.5]
    check_scoring(Dataset.from_list([chat] * 3), [theirs.accuracy_reward], 3)  # no 'answer' column needed
    with pytest.raises(UserError, match="reward 'accuracy_reward' cannot score any of the first 2 test rows"):
        check_scoring(Dataset.from_list([{**chat, "solution": "no number"}] * 2), [theirs.accuracy_reward], 5)
    with pytest.raises(UserError, match="needs a dataset column 'answer'; the rows have: prompt, question"):
        import rewards

        check_scoring(Dataset.from_list([{"prompt": "2+2?", "question": "2+2?"}]), [rewards.resolve("accuracy")], 1)


def test_a_system_prompt_opens_every_chat_prompt_and_a_rows_own_is_kept(tmp_path):
    from rlft.core.arguments import DataArguments
    from rlft.core.data import load_splits

    rows = [{"prompt": [{"role": "user", "content": f"{i} + 1?"}], "solution": str(i + 1)} for i in range(9)]
    rows.append({"prompt": [{"role": "system", "content": "Mine."}, {"role": "user", "content": "1?"}],
                 "solution": "1"})
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    splits = load_splits(DataArguments(dataset_name=str(path), test_size=0.2, system_prompt="Be exact."))
    firsts = [row["prompt"][0]["content"] for split in splits.values() for row in split]
    assert sorted(firsts) == sorted(["Be exact."] * 9 + ["Mine."])
    text = tmp_path / "t.jsonl"
    text.write_text("".join(json.dumps({"prompt": f"{i}?", "solution": "1"}) + "\n" for i in range(5)))
    with pytest.raises(UserError, match="system_prompt needs chat prompts; the train split's 'prompt' holds text"):
        load_splits(DataArguments(dataset_name=str(text), system_prompt="Be exact."))


def test_the_migration_guide_names_every_key_rlft_translates_or_refuses():
    from pathlib import Path

    from rlft.core.trl_era import MAPPED, NO_EQUIVALENT

    guide = Path("docs/migrating.md").read_text()
    missing = [key for key in [*MAPPED, *NO_EQUIVALENT]
               if f"`{key}`" not in guide and f"`{key}:" not in guide and not key.startswith(("cosine_", "code_"))]
    assert not missing, f"docs/migrating.md does not name {missing}"
