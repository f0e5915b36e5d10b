"""The SFT stage on the bundled model: trains, masks prompts, saves a loadable adapter."""

from __future__ import annotations

import json

import pytest
import torch

from rlft import sft

pytestmark = pytest.mark.slow

FAST = ["--num_train_samples", "32", "--num_test_samples", "4", "--per_device_train_batch_size", "4",
        "--max_steps", "3", "--logging_steps", "1", "--save_strategy", "no", "--eval_samples", "4",
        "--eval_max_new_tokens", "12", "--learning_rate", "1e-3"]


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory, bundled_dir):
    out = tmp_path_factory.mktemp("sft") / "run"
    manifest = sft.main(["recipes/sft.yaml", "--output_dir", str(out), *FAST])
    return out, manifest


def test_prompt_tokens_are_masked(bundled_tokenizer, bundled_dir, tmp_path):
    from rlft.core import data
    from rlft.core.models import load_model
    from rlft.stage.skeleton import StageArgs

    args = StageArgs(*sft.parse(["recipes/sft.yaml", "--output_dir", str(tmp_path), *FAST]))
    splits = data.load_splits(args.data, seed=args.train.seed)
    trainer = sft.SFT().build_trainer(args, splits, bundled_tokenizer, load_model(args.model.model_name_or_path))
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    for row, ids, labels in zip(splits["train"].select(range(2)), batch["input_ids"], batch["labels"]):
        trained = bundled_tokenizer.decode(ids[labels != -100])
        assert trained.startswith(row["solution"]), trained  # exactly the completion (then EOS)
        assert "What is" not in trained and row["prompt"][0]["content"][:30] not in trained
        assert (labels != -100).sum() < (labels == -100).sum()


def test_chat_template_kwargs_reach_training(bundled_dir, tmp_path):
    from rlft.core import data
    from rlft.core.models import load_model, load_tokenizer
    from rlft.stage.skeleton import StageArgs

    tokenizer = load_tokenizer("bundled:smollm2-135m-instruct")
    tokenizer.chat_template = (
        "{% if greeting %}HELLO {% endif %}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n"
        "{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
    )
    argv = ["recipes/sft.yaml", "--output_dir", str(tmp_path), *FAST, "--chat_template_kwargs", "{greeting: true}"]
    args = StageArgs(*sft.parse(argv))
    splits = data.load_splits(args.data, seed=args.train.seed)
    trainer = sft.SFT().build_trainer(args, splits, tokenizer, load_model(args.model.model_name_or_path))
    assert tokenizer.decode(trainer.train_dataset[0]["input_ids"]).startswith("HELLO user:")


CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 2 + 2?"},
    {"role": "assistant", "content": "Four."},
    {"role": "user", "content": "And 3 + 3?"},
    {"role": "assistant", "content": "Six, since 3 + 3 = 6."},
]


def messages_stage(tmp_path, *extra):
    """SFT recipe args on a file of ``messages`` rows (the same five-turn conversation)."""
    from rlft.core import data
    from rlft.stage.skeleton import StageArgs

    rows = tmp_path / "chats.jsonl"
    rows.write_text("".join(json.dumps({"messages": CONVERSATION}) + "\n" for _ in range(4)))
    args = StageArgs(*sft.parse(["recipes/sft.yaml", "--output_dir", str(tmp_path / "out"), *FAST,
                                 "--dataset_name", str(rows), "--test_size", "0.25", *extra]))
    return args, data.load_splits(args.data, seed=args.train.seed)


def trained_and_masked(tokenizer, trainer):
    """One collated row: (text of the tokens with labels, text of the tokens without, labels, input ids)."""
    batch = trainer.data_collator([trainer.train_dataset[0]])
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    return tokenizer.decode(ids[labels != -100]), tokenizer.decode(ids[labels == -100]), labels, ids


def test_messages_rows_train_on_assistant_turns_only(bundled_tokenizer, bundled_dir, tmp_path):
    from rlft.core.models import load_model

    args, splits = messages_stage(tmp_path)
    trainer = sft.SFT().build_trainer(args, splits, bundled_tokenizer, load_model(args.model.model_name_or_path))
    assert not args.train.assistant_only_loss, "SmolLM2's template has no generation markers: rlft masks it"
    trained, masked, labels, ids = trained_and_masked(bundled_tokenizer, trainer)
    full = bundled_tokenizer.apply_chat_template(CONVERSATION, tokenize=True, return_dict=False)
    assert ids.tolist() == full  # the very tokens TRL would have rendered
    # exactly the two assistant turns, each with its end-of-turn token (the model must learn to stop)
    assert trained == "Four.<|im_end|>\nSix, since 3 + 3 = 6.<|im_end|>\n"
    assert masked == ("<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n"
                      "<|im_start|>assistant\n<|im_start|>user\nAnd 3 + 3?<|im_end|>\n<|im_start|>assistant\n")
    # and position by position: masked tokens form the system/user turns and the assistant headers
    first_trained = int((labels != -100).nonzero()[0])
    header = bundled_tokenizer.apply_chat_template(CONVERSATION[:2], tokenize=True, return_dict=False,
                                                   add_generation_prompt=True)
    assert first_trained == len(header) and (labels[:first_trained] == -100).all()


def test_messages_rows_train_on_every_token_when_the_recipe_says_so(bundled_tokenizer, bundled_dir, tmp_path):
    from rlft.core.models import load_model

    args, splits = messages_stage(tmp_path, "--assistant_only_loss", "false")
    trainer = sft.SFT().build_trainer(args, splits, bundled_tokenizer, load_model(args.model.model_name_or_path))
    _trained, masked, labels, ids = trained_and_masked(bundled_tokenizer, trainer)
    assert masked == "" and labels.tolist() == ids.tolist()


def test_messages_rows_use_trl_masking_where_the_template_marks_generations(bundled_dir, tmp_path):
    from rlft.core.models import load_model, load_tokenizer

    tokenizer = load_tokenizer("bundled:smollm2-135m-instruct")
    tokenizer.chat_template = (  # the bundled template with {% generation %} around each assistant turn's output
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' }}{% if m['role'] == 'assistant' %}"
        "{% generation %}{{ m['content'] + '<|im_end|>\n' }}{% endgeneration %}{% else %}"
        "{{ m['content'] + '<|im_end|>\n' }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    args, splits = messages_stage(tmp_path)
    trainer = sft.SFT().build_trainer(args, splits, tokenizer, load_model(args.model.model_name_or_path))
    assert args.train.assistant_only_loss  # TRL's own mechanism
    trained, _masked, _labels, _ids = trained_and_masked(tokenizer, trainer)
    assert trained == "Four.<|im_end|>\nSix, since 3 + 3 = 6.<|im_end|>\n"


def test_assistant_mask_refuses_conversations_it_cannot_split(bundled_tokenizer, bundled_dir):
    from rlft.core.data import assistant_token_mask
    from rlft.core.errors import UserError

    with pytest.raises(UserError, match="opens with an assistant turn"):
        assistant_token_mask(bundled_tokenizer, [{"role": "assistant", "content": "Hi!"}])
    # a template that renders an assistant turn differently once more turns follow (as Qwen3 drops old reasoning)
    tokenizer = type(bundled_tokenizer).from_pretrained(bundled_dir)
    tokenizer.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'assistant' and not loop.last %}[old]{% endif %}"
        "{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
    )
    with pytest.raises(UserError, match="up to its assistant turn 2 differently"):
        assistant_token_mask(tokenizer, CONVERSATION)


@pytest.mark.parametrize("rows", ["prompt-completion", "messages"])
def test_enable_thinking_off_reaches_the_sft_tokens(rows, thinking_tokenizer, tmp_path):
    from rlft.core import data
    from rlft.core.models import load_model
    from rlft.stage.skeleton import StageArgs
    from tests.conftest import THINKING_OFF

    kwargs = ["--chat_template_kwargs", "{enable_thinking: false}"]
    if rows == "messages":
        args, splits = messages_stage(tmp_path, *kwargs)
    else:
        args = StageArgs(*sft.parse(["recipes/sft.yaml", "--output_dir", str(tmp_path), *FAST, *kwargs]))
        splits = data.load_splits(args.data, seed=args.train.seed)
    trainer = sft.SFT().build_trainer(args, splits, thinking_tokenizer, load_model(args.model.model_name_or_path))
    text = thinking_tokenizer.decode(trainer.train_dataset[0]["input_ids"])
    assert text.startswith(f"{THINKING_OFF}\n<|im_start|>system"), text


def test_sft_logs_loss_and_changes_lora(sft_run):
    from safetensors.torch import load_file

    out, _manifest = sft_run
    log = [json.loads(line) for line in (out / "log_history.jsonl").read_text().splitlines()]
    losses = [(e["step"], e["loss"]) for e in log if "loss" in e]
    assert [s for s, _ in losses] == [1, 2, 3] and all(loss > 0 for _, loss in losses)
    weights = load_file(out / "adapter_model.safetensors")
    lora_b = [t for k, t in weights.items() if "lora_B" in k]
    assert lora_b and all(torch.count_nonzero(t) > 0 for t in lora_b), "LoRA B starts at zero: training must move it"
    assert sum(t.numel() for t in weights.values()) < 10_000_000, "adapter must not carry the embeddings"
    assert list(out.rglob("events.out.tfevents*")), "TensorBoard is on by default"


def test_manifest_and_recipe_are_written(sft_run):
    out, manifest = sft_run
    assert manifest == json.loads((out / "rlft_manifest.json").read_text())
    assert manifest["stage"] == "sft" and manifest["base_model"] == "bundled:smollm2-135m-instruct"
    assert manifest["seed"] == 42 and manifest["versions"]["trl"] == "1.16.0"
    table = manifest["results"]["table"]
    assert [row["model"] for row in table] == ["base", "trained"] and table[0]["n"] == 4
    samples = [json.loads(line) for line in (out / "before_after.jsonl").read_text().splitlines()]
    assert len(samples) == 4 and {"prompt", "answer", "base", "trained"} <= set(samples[0])
    recipe = (out / "recipe.yaml").read_text()
    assert "max_steps: 3" in recipe and recipe.startswith("# rlft sft ")


def test_saved_adapter_loads_with_peft_and_generates(sft_run, bundled_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _ = sft_run
    tok = AutoTokenizer.from_pretrained(out)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(bundled_dir), out)
    ids = tok.apply_chat_template([{"role": "user", "content": "What is 2 + 2?"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    gen = model.generate(**ids, max_new_tokens=8, do_sample=False)
    assert gen.shape[1] > ids["input_ids"].shape[1]
    # and through rlft's own resolution: the run directory is a model name
    from rlft.core.models import load_model, resolve_model

    assert resolve_model(str(out)).base == str(bundled_dir)
    merged = load_model(str(out))
    assert type(merged).__name__ == "LlamaForCausalLM"


def test_recipe_written_by_a_run_reruns(sft_run):
    out, _ = sft_run
    (*_, cfg), resolved = sft.parse([str(out / "recipe.yaml")])
    assert cfg.max_steps == 3 and resolved["output_dir"] == str(out)


TOOLS = ["recipes/tools/sft.yaml", "--num_train_samples", "8", "--num_test_samples", "4", "--max_steps", "3",
         "--per_device_train_batch_size", "4", "--logging_steps", "1", "--eval_samples", "4",
         "--eval_batch_size", "4", "--report_to", "none"]


def test_tool_transcripts_train_on_the_call_and_the_answer_not_on_the_result(bundled_tokenizer, bundled_dir,
                                                                             tmp_path):
    import copy

    from rlft.core import data
    from rlft.core.models import load_model
    from rlft.stage.skeleton import StageArgs

    tokenizer = copy.deepcopy(bundled_tokenizer)
    args = StageArgs(*sft.parse([*TOOLS, "--output_dir", str(tmp_path)]))
    splits = data.load_splits(args.data, seed=args.train.seed)
    stage = sft.SFT()
    stage.check_data(args, splits)
    trainer = stage.build_trainer(args, splits, tokenizer, load_model(args.model.model_name_or_path))
    trained, masked, _labels, ids = trained_and_masked(tokenizer, trainer)
    row = splits["train"][0]
    call = f'<tool_call>\n{{"name": "calculator", "arguments": {{"expression": "{row["expression"]}"}}}}\n</tool_call>'
    assert trained == f"{call}<|im_end|>\n{row['solution']}<|im_end|>\n"
    # the calculator's schema in the system prompt and its result are context, as in GRPO's rollouts
    assert '"name": "calculator"' in masked and f"<tool_response>\n{row['answer']}\n</tool_response>" in masked
    rollout_prompt = tokenizer.apply_chat_template(row["prompt"], tools=stage.tools.functions, tokenize=False,
                                                   add_generation_prompt=True)
    assert tokenizer.decode(ids).startswith(rollout_prompt)


def test_sft_with_tools_answers_through_the_tool_loop_and_rlft_eval_does_too(bundled_dir, tmp_path):
    """3 steps on transcripts; the closing check and `rlft eval` (with paired_previous) both use the calculator."""
    from rlft import eval as rlft_eval
    from rlft.core.models import load_tokenizer
    from rlft.tools.chat import smollm_tool_template

    out = tmp_path / "sft"
    manifest = sft.main([*TOOLS, "--output_dir", str(out), "--eval_steps", "3"])
    table = manifest["results"]["table"]
    assert {"tool_use", "turns"} <= set(table[0]) and manifest["results"]["tools"]["tools"] == ["calculator"]
    sample = json.loads((out / "before_after.jsonl").read_text().splitlines()[0])
    assert "transcript_trained" in sample
    [during] = [json.loads(line) for line in (out / "log_history.jsonl").read_text().splitlines()
                if "eval/tool_use" in line]
    assert during["step"] == 3 and during["eval/tool_use"] == table[1]["tool_use"]
    assert during["eval/accuracy"] == table[1]["accuracy"]  # the same loop, the same prompts, the same scorer
    # the run's tokenizer keeps the tool template, so GRPO from this run renders the calculator the same way
    assert load_tokenizer(str(out)).chat_template == smollm_tool_template()

    results = rlft_eval.main(["recipes/tools/eval.yaml", "--models", "base", str(out), "--engine", "hf",
                              "--eval_samples", "4", "--num_test_samples", "4", "--general_suite", "false",
                              "--eval_batch_size", "4", "--output_dir", str(tmp_path / "eval")])
    rows = {r["model"]: r for r in results["models"]}
    assert rows[str(out)]["tool_use"] == table[1]["tool_use"] and rows["base"]["tool_use"] == table[0]["tool_use"]
    assert rows[str(out)]["accuracy"] == table[1]["accuracy"]  # rlft eval agrees with the closing check
    assert rows[str(out)]["prev"] == "base" and "vs previous" in results["table"]
    assert "with tools: base called one in" in results["table"]
    line = json.loads((tmp_path / "eval" / "samples.jsonl").read_text().splitlines()[0])
    assert line["outputs"][str(out)]["transcript"][0]["role"] == "assistant"


TEMPLATE = ("{% for m in messages %}### {{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}### assistant:{% endif %}")


@pytest.mark.slow
def test_a_template_file_renders_the_rows_training_sees_and_the_tokenizer_it_saves(tmp_path):
    """messages rows with a template without generation markers: rlft tokenizes them itself, after TRL's
    chat_template_path has been applied (it was applied only once TRL built the trainer)."""
    from rlft.core.models import load_model
    from rlft.stage.skeleton import StageArgs
    from tests.helpers import tiny_model_dir

    template = tmp_path / "plain.jinja"
    template.write_text(TEMPLATE)
    rows = tmp_path / "chats.jsonl"
    rows.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"{i} + 1?"},
                                                     {"role": "assistant", "content": str(i + 1)}]}) + "\n"
                            for i in range(12)))
    stage = sft.SFT()
    args = stage.settle(StageArgs(*stage.parse(["recipes/sft.yaml", "--model_name_or_path", str(tiny_model_dir()),
                                                "--dataset_name", str(rows), "--chat_template_path", str(template),
                                                "--output_dir", str(tmp_path / "o")])))
    splits, tokenizer, options = stage.prepare(args)
    trainer = stage.build_trainer(args, splits, tokenizer, load_model(str(tiny_model_dir()), options=options))
    first = trainer.train_dataset[0]
    text = tokenizer.decode(first["input_ids"])
    assert text.startswith("### user: ") and "### assistant: " in text, text
    assert trainer.processing_class.chat_template == TEMPLATE
    answer = [t for t, label in zip(first["input_ids"], first["labels"]) if label != -100]
    assert answer and len(answer) < len(first["input_ids"])  # the loss on the answer only
    assert tokenizer.decode(answer).strip().isdigit(), tokenizer.decode(answer)  # the assistant turn: a number


def test_a_template_cloned_from_a_model_with_messages_rows_is_refused_before_loading(tmp_path):
    rows = tmp_path / "chats.jsonl"
    rows.write_text("".join(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                                     {"role": "assistant", "content": "yo"}]}) + "\n"
                            for _ in range(4)))
    with pytest.raises(Exception, match="chat_template_path: Qwen/Qwen3-0.6B is not a .jinja file"):
        sft.main(["recipes/sft.yaml", "--dataset_name", str(rows), "--chat_template_path", "Qwen/Qwen3-0.6B",
                  "--output_dir", str(tmp_path / "o")])


@pytest.mark.parametrize("column", ["solution", "answer"])
def test_sft_target_column_names_the_column_trained_on(column, tmp_path):
    """The completion SFTTrainer gets is the row's ``sft_target_column``, as the stage builds its rows."""
    from rlft.core import data
    from rlft.core.arguments import DataArguments
    from rlft.stage.skeleton import StageArgs

    args = StageArgs(*sft.parse(["recipes/sft.yaml", "--sft_target_column", column, "--output_dir", str(tmp_path)]))
    train = data.load_splits(DataArguments(dataset_name="task:word_problems", num_train_samples=4,
                                           num_test_samples=2))["train"]
    rows = sft.sft_rows(args, train, tokenizer=None)
    assert [row["completion"][0]["content"] for row in rows] == train[column]
