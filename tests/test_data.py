"""Data sources (files, generators), held-out splits, column checks, SFT shaping."""

from __future__ import annotations

import json

import pytest

from rlft.core.arguments import DataArguments
from rlft.core.data import for_sft, load_splits, require_columns
from rlft.core.errors import UserError

ROWS = [{"prompt": f"What is {i} + 1?", "answer": str(i + 1), "solution": f"{i} + 1 = {i + 1}."} for i in range(20)]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_task_source():
    splits = load_splits(DataArguments(dataset_name="task:arithmetic", num_train_samples=16, num_test_samples=8,
                                       task_kwargs={"digits": 3}))
    assert len(splits["train"]) == 16 and len(splits["test"]) == 8
    assert {"prompt", "answer", "solution"} <= set(splits["train"].column_names)
    assert len(splits["train"][0]["expression"].split()[0]) == 3


def test_jsonl_without_test_split_gets_a_held_out_split(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", ROWS)
    splits = load_splits(DataArguments(dataset_name=str(path), test_size=0.25), seed=1)
    assert len(splits["train"]) == 15 and len(splits["test"]) == 5
    assert not set(splits["train"]["prompt"]) & set(splits["test"]["prompt"])
    again = load_splits(DataArguments(dataset_name=str(path), test_size=0.25), seed=1)
    assert again["test"]["prompt"] == splits["test"]["prompt"]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
def test_other_file_formats(tmp_path, fmt):
    import pandas as pd

    frame = pd.DataFrame(ROWS)
    path = tmp_path / f"d.{fmt}"
    {"csv": lambda: frame.to_csv(path, index=False), "parquet": lambda: frame.to_parquet(path),
     "json": lambda: frame.to_json(path, orient="records")}[fmt]()
    splits = load_splits(DataArguments(dataset_name=str(path)))
    assert len(splits["train"]) + len(splits["test"]) == 20
    assert set(splits["train"].column_names) == {"prompt", "answer", "solution"}


def test_missing_file_is_named(tmp_path):
    with pytest.raises(UserError, match="dataset file not found: .*nope.jsonl"):
        load_splits(DataArguments(dataset_name=str(tmp_path / "nope.jsonl")))


def test_missing_column_lists_existing_columns(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "q", "answer": "1"}] * 4)
    splits = load_splits(DataArguments(dataset_name=str(path)))
    with pytest.raises(UserError) as info:
        for_sft(splits["train"])
    assert "no column 'prompt'" in str(info.value) and "question, answer" in str(info.value)
    with pytest.raises(UserError, match="needed by the accuracy reward"):
        require_columns(splits["train"], ["solution"], "the accuracy reward")


def test_for_sft_shapes_chat_and_plain():
    from datasets import Dataset

    chat = for_sft(Dataset.from_list([{"prompt": [{"role": "user", "content": "1+1?"}], "solution": "2"}]))
    assert chat.column_names == ["prompt", "completion"]
    assert chat[0]["completion"] == [{"role": "assistant", "content": "2"}]
    plain = for_sft(Dataset.from_list(ROWS[:2]))
    assert plain[0] == {"prompt": "What is 0 + 1?", "completion": "0 + 1 = 1."}
    messages = Dataset.from_list([{"messages": [{"role": "user", "content": "hi"}], "x": 1}])
    assert for_sft(messages).column_names == ["messages"]


def test_bad_sample_counts():
    with pytest.raises(UserError, match="num_train_samples"):
        DataArguments(num_train_samples=0)


def test_prompt_column_turns_gsm8k_shaped_rows_into_chat_prompts_the_accuracy_reward_scores(tmp_path):
    import rewards

    rows = [{"question": f"Tom has {i} apples and buys 2. How many?", "answer": f"{i} + 2 = {i + 2}\n#### {i + 2}"}
            for i in range(10)]
    path = write_jsonl(tmp_path / "gsm8k.jsonl", rows)
    splits = load_splits(DataArguments(dataset_name=str(path), prompt_column="question",
                                       prompt_instruction="Put the answer in \\boxed{}."), seed=0)
    row = splits["train"][0]
    assert row["prompt"] == [{"role": "user", "content": f"{row['question']}\nPut the answer in \\boxed{{}}."}]
    gold = row["answer"].split("#### ")[1]
    accuracy = rewards.resolve("accuracy")
    assert accuracy([f"So \\boxed{{{gold}}}", "\\boxed{0}"], answer=[row["answer"]] * 2) == [1.0, 0.0]


def test_prompt_column_errors_name_the_column(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "q", "answer": "1"}] * 4)
    with pytest.raises(UserError, match="no column 'problem'.*columns are: question, answer"):
        load_splits(DataArguments(dataset_name=str(path), prompt_column="problem"))
    path = write_jsonl(tmp_path / "p.jsonl", ROWS)
    with pytest.raises(UserError, match="already has a 'prompt' column"):
        load_splits(DataArguments(dataset_name=str(path), prompt_column="solution"))


def test_system_prompt_opens_every_task_prompt():
    splits = load_splits(DataArguments(dataset_name="task:arithmetic", num_train_samples=3, num_test_samples=2,
                                       system_prompt="Be brief."))
    for split in ("train", "test"):
        assert [row["prompt"][0] for row in splits[split]] == [{"role": "system", "content": "Be brief."}] * len(
            splits[split])
