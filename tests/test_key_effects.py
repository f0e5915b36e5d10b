"""Every key a stage accepts changes something it feeds, or is refused: a test generated from the key rules.

For each stage and each key its rules (:func:`rlft.stage.registry.rules_for`)
do not refuse, the stage is read twice, in a context where the key's
condition holds (``engine: vllm`` for vLLM keys, file data for split keys,
...): once as it is and once with that key changed. Something the key feeds
must differ between the two, observed where rlft hands it on, never in rlft's
own parsed groups:

- ``config``: TRL's config as the stage builds it for its trainer, and what
  the stage settled for the machine (``settled``);
- ``load``: the run up to the model, by the stage's own sequence
  (:meth:`~rlft.stage.skeleton.TrainingStage._checked_run`): the rows it
  loaded, its memory plan, the refusal it gave, and the ``from_pretrained``
  call it made (stopped there, nothing loads);
- ``lora``: the peft ``LoraConfig`` built from the recipe;
- ``rewards``: the built rewards' scores on fixed completions.

The two commands that read recipes like the stages, ``rlft pairs`` and
``rlft eval``, are run whole for each key with their model loading and
completion engine recorded instead of run (:class:`FakeEngine`): the engine's
settings, what it was asked, the models loaded and the files written must
differ (or the key is refused, naming it).

A key whose effect only a run can show (``keep_best``, ``resume``,
``sync_check``, ...) names, in :data:`PROVEN_BY`, the test that shows it;
this test checks that the named test exists and sets that key. A new key with
no observed effect and no such test fails here.
"""

from __future__ import annotations

import ast
import enum
import json
import shutil
import typing
from dataclasses import fields
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from rlft.core import accelerator, console, data, models
from rlft.core.accelerator import RLFT_ENGINE
from rlft.core.arguments import RewardArguments
from rlft.core.errors import UserError
from rlft.rollout import engine as rollout_engine
from rlft.rollout.engine import RolloutArguments
from rlft.stage import parsing, registry
from rlft.stage.registry import rules_for
from rlft.stage.skeleton import StageArgs
from tests.conftest import REPO
from tests.helpers import tiny_model_dir, write_pairs

STAGES = registry.names(is_stage=True)
CONFIGS = ("SFTConfig", "DPOConfig", "ORPOConfig", "GRPOConfig")

# Keys whose effect is a run's behaviour, each with the tests that show it (the test must exist and set the key).
PROVEN_BY = {
    "eval_before_after": "test_greedy_eval.py::test_sft_evaluates_at_the_right_steps_keeps_the_best_checkpoint_and_agrees_with_rlft_eval",
    "eval_samples": "test_greedy_eval.py::test_the_closing_check_answers_eval_samples_rows_in_batches_of_eval_batch_size",
    "eval_max_new_tokens": "test_greedy_eval.py::test_the_closing_check_answers_eval_samples_rows_in_batches_of_eval_batch_size",
    "eval_batch_size": "test_greedy_eval.py::test_the_closing_check_answers_eval_samples_rows_in_batches_of_eval_batch_size",
    "eval_steps": "test_greedy_eval.py::test_sft_evaluates_at_the_right_steps_keeps_the_best_checkpoint_and_agrees_with_rlft_eval",
    "keep_best": "test_greedy_eval.py::test_sft_evaluates_at_the_right_steps_keeps_the_best_checkpoint_and_agrees_with_rlft_eval",
    "final_model": "test_greedy_eval.py::test_sft_evaluates_at_the_right_steps_keeps_the_best_checkpoint_and_agrees_with_rlft_eval",
    "early_stopping_patience": "test_greedy_eval.py::test_early_stopping_ends_the_run_after_patience_evaluations_without_a_new_best",
    "resume": "test_reliability.py::test_sft_killed_then_resumed_matches_an_uninterrupted_run",
    "overwrite": "test_reliability.py::test_occupied_output_dir_is_refused_unless_resume_or_overwrite",
    "verbose": "test_console.py::test_a_default_run_prints_rlfts_own_lines_and_verbose_brings_the_trainer_output_back",
    "memory_check": "test_memory_plan.py::test_memory_check_warn_runs_anyway_and_records_the_plan",
    "on_reward_error": "test_reliability.py::test_reward_raising_mid_run_stops_with_the_sample_and_a_checkpoint",
    "rollout_fallback": "test_fallback.py::test_rollout_fallback_error_is_a_one_line_refusal",
    "skip_zero_advantage": "test_zero_advantage.py::test_skipping_gives_trls_loss_and_gradient_from_the_rows_with_signal",
    "length_buckets": "test_length_buckets.py::test_buckets_give_trls_loss_and_gradient",
    "tool_timeout": "test_tools.py::test_a_tool_that_raises_or_hangs_is_counted_and_its_error_is_a_message",
    "assistant_only_loss": "test_sft.py::test_messages_rows_train_on_every_token_when_the_recipe_says_so",
    "sft_target_column": "test_sft.py::test_sft_target_column_names_the_column_trained_on",
    "chat_template_kwargs": "test_grpo.py::test_enable_thinking_off_reaches_the_rollout_prompts",
}

# Values to change a key to where its type does not say one (paths, names, lists, mappings, strings).
VALUES: dict[str, Any] = {
    "model_revision": "v2",
    "attn_implementation": "eager",
    "dtype": "bfloat16",
    "dataset_name": "task:arithmetic",
    "accelerator_config": {"split_batches": True},
    "dataloader_multiprocessing_context": "spawn",
    "dataset_kwargs": {"add_special_tokens": False},
    "ddp_backend": "gloo",
    "eos_token": "<|endoftext|>",
    "pad_token": "<|im_start|>",
    "fsdp": "full_shard",
    "fsdp_config": {"min_num_params": 1000},
    "gradient_checkpointing_kwargs": {"use_reentrant": False},
    "hub_model_id": "someone/model",
    "hub_revision": "dev",
    "hub_token": "hf_not_a_token",
    "include_num_input_tokens_seen": "all",
    "label_names": ["labels"],
    "length_column_name": "lengths",
    "log_level": "warning",
    "log_level_replica": "info",
    "lr_scheduler_kwargs": {"num_cycles": 0.25},
    "optim_args": "betas=0.8",
    "optim_target_modules": ["attn"],
    "packing_strategy": "wrapped",
    "pad_to_multiple_of": 8,
    "project": "rlft-tests",
    "report_to": "none",
    "run_name": "another-name",
    "torch_compile_backend": "eager",
    "torch_compile_mode": "reduce-overhead",
    "trackio_bucket_id": "bucket",
    "trackio_space_id": "space",
    "train_sampling_strategy": "sequential",
    "lora_target_modules": ["q_proj", "v_proj"],
    "lora_target_parameters": ["mlp.experts.down_proj"],
    "lora_modules_to_save": ["lm_head"],
    "lora_task_type": "SEQ_CLS",
    "bnb_4bit_quant_type": "fp4",
    "bnb_4bit_quant_storage": "bfloat16",
    "reward_funcs": ["accuracy", "think_format"],
    "reward_kwargs": {"accuracy": {"allow_multiple_boxed": True}},
    "system_prompt": "You are terse.",
    "prompt_column": "question",
    "prompt_instruction": "Answer in one word.",
    "dataset_config": "other",
    "dataset_train_split": "validation",
    "dataset_test_split": "holdout",
    "task_kwargs": {"digits": 3},
    "chat_template_kwargs": {"enable_thinking": False},
    "sft_target_column": "answer",
    "tools": ["rlft.tools:calculator"],
    "environment": "examples.guess_number.env:GuessNumber",
    "sync_check_tolerance": 0.05,
    "f_divergence_type": "js_divergence",
    "loss_weights": [0.5, 1.0],
    "cache_implementation": "static",
    "generation_kwargs": {"min_tokens": 1},
    "importance_sampling_level": "sequence",
    "log_completions_hub_repo": "someone/completions",
    "multi_objective_aggregation": "normalize_then_sum",
    "reward_weights": [0.5],
    "scale_rewards": "batch",
    "transformers_continuous_batching_config": {"max_batch_tokens": 256},
    "vllm_importance_sampling_mode": "token_truncate",
    "vllm_model_impl": "transformers",
}

# Values that differ by stage (``loss_type`` names another stage's losses).
STAGE_VALUES: dict[tuple[str, str], Any] = {
    ("sft", "loss_type"): "dft", ("grpo", "loss_type"): "bnpo", ("dpo", "loss_type"): ["ipo"],
    ("sft", "truncation_mode"): "keep_end", ("dpo", "truncation_mode"): "keep_end",
    ("grpo", "dataset_name"): "task:word_problems", ("grpo", "per_device_train_batch_size"): 16,
    ("pairs", "dataset_name"): "task:word_problems", ("pairs", "min_score_gap"): 2.0,
    ("pairs", "reward_funcs"): ["tests.helpers:length_reward", "accuracy"],
    ("eval", "dataset_name"): "task:word_problems", ("eval", "eval_samples"): 4, ("eval", "pass_k"): [1, 2],
    ("eval", "reward_kwargs"): {"accuracy": {"answer_column": "task"}}, ("eval", "bootstrap_resamples"): 3,
}

# The contexts that make a rule's condition hold (by the condition's words in rlft.stage.key_rules).
CONTEXTS = {
    "use_peft: true": [],
    "load_in_4bit: true": ["--load_in_4bit", "true"],
    "engine: vllm": ["--engine", "vllm"],
    "engine: hf": ["--engine", "hf"],
    "rlft's vLLM engine": ["--engine", "vllm"],
    "engine: vllm on CUDA": ["--engine", "vllm"],
    "a CUDA device": ["--use_cpu", "false", "--bf16", "false"],  # as CUDA runs it (this CPU has no bf16 "GPU")
    "sync_ref_model: true": ["--sync_ref_model", "true", "--use_peft", "false", "--beta", "0.1"],
    "tools": ["--tools", "[rlft.tools:calculator]"],
    "task: data": ["--dataset_name", "task:arithmetic"],
    "file or hub data": ["--dataset_name", "someone/some-data"],
    "prompt_column": ["--dataset_name", "someone/questions", "--prompt_column", "question"],
}


def context_flags(condition: str) -> list[str]:
    for words, flags in CONTEXTS.items():
        if condition.startswith(words):
            return flags
    raise AssertionError(f"no context for the condition {condition!r}: add it to CONTEXTS")


class Loaded(Exception):
    """The stage asked ``from_pretrained`` for its model: what it asked is the observation, nothing loads."""


HUB_ROWS = [{"question": f"What is {i} + 1?", "prompt": f"What is {i} + 1?", "answer": str(i + 1),
             "chosen": f"The answer is {i + 1}.", "rejected": f"The answer is {i}.", "solution": f"#### {i + 1}"}
            for i in range(12)]


@pytest.fixture
def hub(monkeypatch):
    """``datasets.load_dataset`` for a hub name answers from memory, each call recorded (offline here)."""
    import datasets

    calls = []
    real = datasets.load_dataset

    def load_dataset(path, *args, **kwargs):
        if not path.startswith("someone/"):
            return real(path, *args, **kwargs)
        calls.append([path, *args, sorted(kwargs.items())])
        rows = datasets.Dataset.from_list(HUB_ROWS)
        if path == "someone/questions":  # rows a prompt_column makes prompts of
            rows = rows.remove_columns(["prompt"])
        return datasets.DatasetDict(train=rows, validation=rows.select(range(6)), holdout=rows.select(range(3)))

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


TMP_VALUES: dict[str, str] = {}


def base_argv(stage: str, tmp: Path) -> list[str]:
    # memory_check: warn: a plan that does not fit (another job's memory) must not refuse the one run and not
    # the other
    argv = [registry.get(stage).recipe, "--output_dir", str(tmp / "run"), "--num_train_samples", "16",
            "--num_test_samples", "8", "--memory_check", "warn"]
    if stage in ("dpo", "orpo"):
        argv += ["--dataset_name", str(write_pairs(tmp / "pairs.jsonl")), "--test_size", "0.5"]
    return argv


def read(stage: str, argv: list[str]) -> StageArgs:
    entry = registry.get(stage)
    stage_obj = entry.stage()
    return stage_obj, stage_obj.settle(StageArgs(*stage_obj.parse(argv)))


def as_data(value: Any) -> Any:
    return json.loads(json.dumps(value, default=repr, sort_keys=True))


# The groups whose keys feed the run before the model: their effect is observed on the way to it.
BEFORE_THE_MODEL = {"DataArguments", "ModelArguments", "RolloutArguments", "ToolArguments", "RunArguments"}


def observe(stage: str, argv: list[str], group: str, hub_calls: list) -> dict[str, Any]:
    """What the stage hands on from ``argv``: see the module doc."""
    try:
        stage_obj, args = read(stage, argv)
    except UserError as err:
        return {"refused": str(err)}
    seen: dict[str, Any] = {"config": as_data({f.name: getattr(args.train, f.name) for f in fields(args.train)}),
                            "settled": as_data(args.settled), "idle": parsing.idle_keys(stage, args)}
    if group in BEFORE_THE_MODEL:
        seen["load"] = run_to_the_model(stage_obj, args, hub_calls)
    if group == "ModelArguments":
        lora = models.lora_config(args.model)
        seen["lora"] = as_data(lora.to_dict()) if lora else None
    if group == "RewardArguments":
        seen["rewards"] = reward_scores(args)
    if group == "RolloutArguments" and getattr(stage_obj, "backend", None) == RLFT_ENGINE:
        seen["engine"] = engine_settings(stage_obj, args)
    return seen


def run_to_the_model(stage_obj, args: StageArgs, hub_calls: list) -> dict[str, Any]:
    """The stage's own sequence up to its ``from_pretrained`` call: the rows it loaded and prepared, its memory
    plan, the call (or its refusal)."""
    out: dict[str, Any] = {}
    real_splits, real_load, real_prepare = data.load_splits, models._from_pretrained, stage_obj.prepare

    def rows(splits):
        return {name: [len(split), as_data(split[:3])] for name, split in splits.items()}

    def load_splits(data_args, seed=42):
        splits = real_splits(data_args, seed)
        out["rows"] = rows(splits)
        return splits

    def prepare(args):
        splits, tokenizer, options = real_prepare(args)
        out["prepared"] = rows(splits)
        out["template"] = tokenizer.chat_template
        return splits, tokenizer, options

    def from_pretrained(base, dtype, options, name, dequantize):
        raise Loaded([base, str(dtype), as_data(options.from_pretrained_kwargs(dtype)), name])

    data.load_splits, models._from_pretrained, stage_obj.prepare = load_splits, from_pretrained, prepare
    record = type("Record", (), {"settled": {}, "memory_plan": None})()
    try:
        stage_obj._checked_run(args, record)
    except Loaded as loaded:
        out["from_pretrained"] = loaded.args[0]
    except UserError as err:
        out["refused"] = str(err)
    finally:
        data.load_splits, models._from_pretrained = real_splits, real_load
    plan = dict(record.memory_plan or {})
    plan.pop("available_bytes", None), plan.pop("fits", None)  # the machine's free memory now: not the recipe's
    out["plan"] = as_data(plan)
    tools = stage_obj.tools  # the tools as training and every evaluation get them
    out["tools"] = as_data({"functions": [f.__name__ for f in tools.functions], "max_turns": tools.max_turns,
                            "environment": repr(tools.environment)}) if tools else None
    out["hub"] = [as_data(call) for call in hub_calls]
    hub_calls.clear()
    return out


def engine_settings(stage_obj, args: StageArgs) -> Any:
    """What the stage's vLLM engine is started with (vLLM's arguments) and checks by, nothing started."""
    started = {}

    def start_llm(scratch, **kwargs):
        started.update(kwargs)
        return None, None

    real = rollout_engine.start_llm
    rollout_engine.start_llm = start_llm
    try:
        tokenizer = models.load_tokenizer(args.model.model_name_or_path)
        engine = stage_obj.start_engine(args.get(RolloutArguments), args, tokenizer, None)
    finally:
        rollout_engine.start_llm = real
    if engine is None:
        return {"fallback": stage_obj.fallback}
    shutil.rmtree(engine.scratch, ignore_errors=True)
    return as_data({**started, "sync": engine.sync, "dtype": engine.dtype, "sync_check": engine.sync_check,
                    "tolerance": engine.sync_tolerance})


def reward_scores(args: StageArgs) -> Any:
    completions = [[{"role": "assistant", "content": text}] for text in
                   ("<think>2+2</think><answer>\\boxed{3} or \\boxed{4}</answer>", "4", "The answer is 5.")]
    try:
        rewards = args.get(RewardArguments).build()
    except UserError as err:
        return str(err)
    return {getattr(r, "__name__", repr(r)): r(completions, answer=["4"] * 3) for r in rewards}


def current_value(stage: str, argv: list[str], key: str, fallback: Any) -> Any:
    """``key``'s value as the stage reads it in this context (the machine's defaults included)."""
    try:
        _, args = read(stage, argv)
    except UserError:
        return fallback
    value = next((getattr(part, key) for part in args.parts if hasattr(part, key)), fallback)
    return value.value if isinstance(value, enum.Enum) else value


def type_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - a forward reference TRL leaves unresolved: fall back to the default's type
        return {}


def changed_value(stage: str, key: str, hint: Any, default: Any) -> Any:
    """A valid value for ``key`` other than ``default``, from :data:`VALUES` or the field's type."""
    if (stage, key) in STAGE_VALUES:
        return STAGE_VALUES[stage, key]
    if key == "model_name_or_path":
        return str(tiny_model_dir())
    if key in ("chat_template_path", "deepspeed", "output_dir"):  # files: made by the test (tmp)
        return TMP_VALUES[key]
    if key in VALUES:
        return VALUES[key]
    literal = [c for arg in ((hint,) if hint is not None else ()) for c in _literal_values(arg)]
    if literal:
        others = [c for c in literal if c != default and c != "auto"] or [c for c in literal if c != default]
        return others[0] if others else None
    options = _union(hint)
    enums = [a for a in options if isinstance(a, type) and issubclass(a, enum.Enum)]
    if enums:
        return next(m.value for m in enums[0] if m.value not in (default, getattr(default, "value", None)))
    if default is None:
        for kind, value in ((bool, True), (int, 3), (float, 0.5)):
            if kind in options:
                return value
    if isinstance(default, bool):
        return not default
    if isinstance(default, int):
        return default * 2 + 1 if default >= 0 else 3
    if isinstance(default, float):
        return default * 2 if default else 0.25
    return None


def _union(hint: Any) -> list[Any]:
    args = typing.get_args(hint)
    return [a for arg in args for a in _union(arg)] if args and typing.get_origin(hint) is not typing.Literal \
        else [hint]


def _literal_values(hint: Any) -> list[Any]:
    if typing.get_origin(hint) is typing.Literal:
        return list(typing.get_args(hint))
    return [v for arg in typing.get_args(hint) for v in _literal_values(arg)]


def flag(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@cache
def stage_fields(stage: str) -> dict[str, tuple[str, Any, Any, Any]]:
    """Every field the stage accepts: ``{key: (group, field, type hint, default)}`` (first group wins)."""
    stage_obj = registry.get(stage).stage()
    out: dict[str, tuple[str, Any, Any, Any]] = {}
    for cls in stage_obj.argument_types():
        hints = type_hints(cls)
        instance_defaults = {f.name: f.default for f in fields(cls)}
        for f in fields(cls):
            out.setdefault(f.name, (cls.__name__, f, hints.get(f.name), instance_defaults[f.name]))
    return out


@pytest.mark.slow  # ~20-30 s a stage: every key read twice, the data and tokenizer loaded for rlft's own keys
@pytest.mark.parametrize("stage", STAGES)
def test_every_key_a_stage_uses_changes_what_it_hands_on(stage, tmp_path, monkeypatch, hub):
    (tmp_path / "template.jinja").write_text("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n"
                                            "{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}")
    (tmp_path / "ds.json").write_text(json.dumps({"zero_optimization": {"stage": 2}, "train_batch_size": "auto",
                                                  "train_micro_batch_size_per_gpu": "auto"}))
    TMP_VALUES.update(chat_template_path=str(tmp_path / "template.jinja"), deepspeed=str(tmp_path / "ds.json"),
                      output_dir=str(tmp_path / "other-run"))
    rules = rules_for(stage)
    recipe_values = parsing.read_values(registry.get(stage).stage(), base_argv(stage, tmp_path), warn=False)
    no_effect, no_value = [], []
    befores: dict[tuple, dict[str, Any]] = {}  # one observation per context and group: the keys share it
    for key, (group, field, hint, default) in sorted(stage_fields(stage).items()):
        rule = rules[key]
        if rule.kind == "refused" or key in PROVEN_BY:
            continue
        argv = base_argv(stage, tmp_path) + (context_flags(rule.why) if rule.kind == "only_with" else [])
        monkeypatch.setattr(accelerator, "cuda_available", lambda cuda="CUDA" in rule.why: cuda)
        current = current_value(stage, argv, key, recipe_values.get(key, default))
        value = changed_value(stage, key, hint, current)
        if value is None or value == current:
            no_value.append(key)
            continue
        if (tuple(argv), group, rule.why) not in befores:
            befores[tuple(argv), group, rule.why] = steady(lambda a=argv, g=group: observe(stage, a, g, hub))
        before = befores[tuple(argv), group, rule.why]
        after = observe(stage, [*argv, f"--{key}", flag(value)], group, hub)
        if "refused" in before or "refused" in before.get("load", {}):
            # the stage refuses this kind of data whole (a preference stage and task: rows): the key still counts
            # when it changed the rows the stage loaded before refusing them
            rows_moved = before.get("load", {}).get("rows") != after.get("load", {}).get("rows")
            why = before.get("refused") or before["load"]["refused"]
            if not rows_moved:
                no_value.append(f"{key} (its context was refused: {why[:120]})")
        elif "refused" in after:  # refused here, in one line that names it: allowed
            if key not in after["refused"] or "\n" in after["refused"]:
                no_value.append(f"{key} (refused {value!r} without naming it: {after['refused'][:120]})")
        elif key in after.get("idle", []):
            no_effect.append(f"{key} (named idle in its own context)")
        elif before == after:
            no_effect.append(key)
    assert not no_value, f"{stage}: no value to change these keys to (add one to VALUES): {no_value}"
    assert not no_effect, f"{stage}: changing these keys changed nothing the stage hands on: {no_effect}"


def steady(look: Any) -> dict[str, Any]:
    """An observation made twice, which must not differ: a figure that changes by itself (free memory, a time)
    would make every key look as if it did something."""
    first, second = look(), look()
    moving = sorted(k for k in {*first, *second} if first.get(k) != second.get(k))
    assert not moving, f"the observation changes by itself in {moving}: leave that out of it"
    return first


def _test_source(node_id: str) -> str | None:
    file, _, name = node_id.partition("::")
    path = Path(REPO) / "tests" / file
    if not path.exists():
        return None
    source = path.read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            start = min([d.lineno for d in node.decorator_list] + [node.lineno])
            return "\n".join(source.splitlines()[start - 1:node.end_lineno])
    return None


@pytest.mark.parametrize("key", sorted(PROVEN_BY))
def test_a_key_proven_by_a_run_names_a_test_that_sets_it(key):
    source = _test_source(PROVEN_BY[key])
    assert source is not None, f"{key}: {PROVEN_BY[key]} does not exist"
    assert key in source, f"{key}: {PROVEN_BY[key]} does not set it"


def test_every_key_proven_by_a_run_is_a_key_some_stage_uses():
    used = {key for stage in STAGES for key, rule in rules_for(stage).items() if rule.kind != "refused"}
    assert set(PROVEN_BY) <= used, sorted(set(PROVEN_BY) - used)


class FakeEngine:
    """The completion engine of ``rlft pairs`` and ``rlft eval``, recorded: what it was started with, which models
    it was given and what it was asked. The second sample of each arithmetic prompt is right (every sample of a
    model other than the base), the others are ``x`` runs of different lengths."""

    seen: typing.ClassVar[dict[str, Any]] = {}

    def __init__(self, engine, base_dir, tokenizer, max_new_tokens, batch_size, seed, vllm_gpu_memory_utilization,
                 vllm_dtype, chat_template_kwargs):
        FakeEngine.seen["started"] = as_data([engine, base_dir, max_new_tokens, batch_size, seed,
                                              vllm_gpu_memory_utilization, vllm_dtype, chat_template_kwargs])
        self.engine, self.dtype, self.model = engine, vllm_dtype, None
        FakeEngine.seen["asked"], FakeEngine.seen["loaded"] = [], []

    def load(self, model):
        self.model = model
        FakeEngine.seen["loaded"].append(as_data(model))

    def generate(self, prompts, samples=1, temperature=0.0, seed=0):
        FakeEngine.seen["asked"].append(as_data([prompts, samples, temperature, seed]))
        trained = "base" not in json.dumps(as_data(self.model)) and self.model is not None
        return [self.right(prompt) if s == 1 or (trained and i % 2) else "x" * (20 * s)
                for i, prompt in enumerate(prompts) for s in range(samples)]

    @staticmethod
    def right(prompt: Any) -> str:
        """The right answer to an arithmetic prompt."""
        import re

        found = re.search(r"(\d+) ([-+]) (\d+)", json.dumps(prompt))
        if not found:
            return "no sum here"
        a, op, b = found.groups()
        return f"The answer is {int(a) + int(b) if op == '+' else int(a) - int(b)}."

    def describe(self):
        return {"engine": self.engine, "dtype": self.dtype}

    def close(self):
        pass


def fresh(root: Path, occupied: str | None = None) -> None:
    """``root`` emptied; with ``occupied``, that output directory under it holds an earlier run's file."""
    for old in root.iterdir():
        shutil.rmtree(old)
    if occupied:
        (root / occupied).mkdir()
        (root / occupied / "old.txt").write_text("an earlier run")


def command_keys_without_effect(command: str, parts: list[Any], base: list[str], observe: Any,
                                values: dict[str, Any], skip: set[str], contexts: dict[str, list[str]]) -> list[str]:
    """The keys of a command's parsed ``parts`` whose change changes nothing ``observe(argv)`` sees (or that are
    refused without being named); ``overwrite``'s effect, an occupied output directory run, is checked too."""
    from rlft.stage.key_rules import RLFT

    assert "--overwrite" in observe(base, occupied=True)["refused"]
    assert "refused" not in observe([*base, "--overwrite", "true"], occupied=True)
    befores: dict[tuple, dict[str, Any]] = {}
    no_effect = []
    fields_of = {f.name: (type(p), getattr(p, f.name)) for p in parts for f in fields(p)}
    for key, (cls, current) in sorted(fields_of.items()):
        if key in skip or key == "overwrite":
            continue
        value = values.get(key) or changed_value(command, key, type_hints(cls).get(key), current)
        if value is None or value == current:
            no_effect.append(f"{key} (no value to try)")
            continue
        rule = RLFT.get(key)
        argv = base + (context_flags(rule.why) if rule and rule.kind == "only_with" else []) + contexts.get(key, [])
        if tuple(argv) not in befores:
            befores[tuple(argv)] = steady(lambda a=argv: observe(a))
        before = befores[tuple(argv)]
        assert "refused" not in before, before
        after = observe([*argv, f"--{key}", flag(value)])
        if "refused" in after:
            if key not in after["refused"]:
                no_effect.append(f"{key} (refused without naming it: {after['refused'][:100]})")
        elif after == before:
            no_effect.append(key)
    return no_effect


def observe_pairs(argv: list[str], root: Path, hub_calls: list, occupied: bool = False) -> dict[str, Any]:
    """What ``rlft pairs`` does with ``argv``: the model it loads, the engine it asks, the files it writes
    (``occupied``: its output directory holds an earlier run's file)."""
    from rlft.commands import pairs

    fresh(root, "pairs" if occupied else None)
    FakeEngine.seen.clear()
    hub_calls.clear()
    verbose = console._State.verbose
    real_engine, real_load = pairs.CompletionEngine, models.load_model
    pairs.CompletionEngine = FakeEngine
    models.load_model = lambda name, dtype=None, **kwargs: ("model", name, dtype, as_data(kwargs))
    try:
        manifest = pairs.main(argv)
    except UserError as err:
        return {"refused": str(err)}
    finally:
        pairs.CompletionEngine, models.load_model = real_engine, real_load
        FakeEngine.seen["console_verbose"], console._State.verbose = console._State.verbose, verbose
    written = {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("pairs.jsonl"))}
    loaded_from = [as_data(call) for call in hub_calls]
    hub_calls.clear()
    return {**as_data(FakeEngine.seen), "hub": loaded_from, "written": written, "results": manifest["results"]}


@pytest.mark.slow  # ~30 s: every key's run of rlft pairs, the model and engine faked
def test_every_key_rlft_pairs_takes_changes_what_it_loads_asks_or_writes(tmp_path, hub):
    from rlft.commands import pairs

    root = tmp_path / "out"
    root.mkdir()
    base = ["recipes/pairs.yaml", "--output_dir", str(root / "pairs"), "--num_train_samples", "6",
            "--reward_funcs", "[tests.helpers:length_reward]"]
    parts, _ = pairs.parse(base)
    no_effect = command_keys_without_effect(
        "pairs", parts, base, lambda argv, occupied=False: observe_pairs(argv, root, hub, occupied),
        values={"output_dir": str(root / "elsewhere")}, skip=set(), contexts={})
    assert not no_effect, f"rlft pairs: changing these keys changed nothing it loads, asks or writes: {no_effect}"


def observe_eval(argv: list[str], root: Path, hub_calls: list, occupied: bool = False) -> dict[str, Any]:
    """What ``rlft eval`` does with ``argv``: the engine it asks, the models it loads, the results it writes
    (``occupied``: its output directory holds an earlier report's file)."""
    from rlft import eval as rlft_eval
    from rlft.evaluation import compare

    fresh(root, "eval" if occupied else None)
    FakeEngine.seen.clear()
    hub_calls.clear()
    real_engine, real_load = compare.CompletionEngine, models.load_model
    compare.CompletionEngine = FakeEngine
    models.load_model = lambda name, dtype=None, **kwargs: ("model", "base" if name == BASE else name, dtype)
    try:
        rlft_eval.main(argv)
    except UserError as err:
        return {"refused": str(err)}
    finally:
        compare.CompletionEngine, models.load_model = real_engine, real_load
    written = {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*"))
               if p.name in ("results.json", "samples.jsonl")}
    loaded_from = [as_data(call) for call in hub_calls]
    hub_calls.clear()
    return {**as_data(FakeEngine.seen), "hub": loaded_from, "written": written}


BASE = str(models.resolve_model("bundled:smollm2-135m-instruct").base)
EVAL_PROVEN_BY = {
    "sweep": "test_eval.py::test_sweep_evaluates_every_checkpoint",
    # the tool loop every evaluation answers through (the fake engine here calls no tools)
    "max_turns": "test_tools.py::test_tool_loop_appends_masks_and_counts",
    "tool_timeout": "test_tools.py::test_a_tool_that_raises_or_hangs_is_counted_and_its_error_is_a_message",
}
EVAL_CONTEXTS = {"pass_k": ["--pass_k_samples", "4"], "pass_k_temperature": ["--pass_k_samples", "4"]}


@pytest.mark.slow  # ~45 s: every key's run of rlft eval, the model and engine faked
def test_every_key_rlft_eval_takes_changes_what_it_asks_loads_or_writes(tmp_path, hub):
    from rlft import eval as rlft_eval

    root = tmp_path / "out"
    root.mkdir()
    base = ["recipes/eval_math.yaml", "--models", "[base, runs/trained]", "--output_dir", str(root / "eval"),
            "--num_test_samples", "8", "--eval_samples", "12", "--bootstrap_resamples", "50"]
    parts, _ = rlft_eval.parse(base)
    no_effect = command_keys_without_effect(
        "eval", parts, base, lambda argv, occupied=False: observe_eval(argv, root, hub, occupied),
        values={"output_dir": str(root / "elsewhere"), "models": ["base"], "model_name_or_path": str(tiny_model_dir())},
        skip={*EVAL_PROVEN_BY, *rlft_eval.NOT_READ}, contexts=EVAL_CONTEXTS)
    assert not no_effect, f"rlft eval: changing these keys changed nothing it asks, loads or writes: {no_effect}"
