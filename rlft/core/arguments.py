"""rlft's own recipe arguments (TRL's ``*Config`` classes supply the rest).

- :class:`ModelArguments`: TRL's ``ModelConfig`` (model path, dtype, LoRA/DoRA
  settings) with rlft's defaults: the bundled model, LoRA on all linear layers.
- :class:`DataArguments`: where the data comes from and how much of it to use.
- :class:`EvalArguments`: the greedy before/after check run at the end of a stage.
- :class:`RewardArguments`: the rewards GRPO trains on and every closing check scores with.

Example:
    >>> ModelArguments().model_name_or_path
    'bundled:smollm2-135m-instruct'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from trl import ModelConfig

import rewards
from rlft.core.errors import UserError

BUNDLED_DEFAULT = "bundled:smollm2-135m-instruct"


@dataclass
class ModelArguments(ModelConfig):
    """TRL's ``ModelConfig`` with rlft's defaults and chat-template options."""

    model_name_or_path: str | None = field(
        default=BUNDLED_DEFAULT,
        metadata={"help": "Hub id, local directory (an earlier rlft stage's output too), or bundled:<name>."},
    )
    use_peft: bool = field(default=True, metadata={"help": "Train a LoRA adapter (default) instead of all weights."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] | None = field(
        default_factory=lambda: ["all-linear"],
        metadata={"help": "Module names to adapt; 'all-linear' = every linear layer but the LM head."},
    )
    chat_template_kwargs: dict[str, Any] | None = field(
        default=None,
        metadata={"help": "Passed to apply_chat_template, e.g. {enable_thinking: false} for Qwen3."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.use_peft and self.lora_r <= 0:
            raise UserError(f"lora_r must be a positive integer, got {self.lora_r}")


@dataclass
class DataArguments:
    """Which data a stage trains and evaluates on."""

    dataset_name: str = field(
        default="task:word_problems",
        metadata={"help": "task:arithmetic, task:word_problems, a .jsonl/.json/.csv/.parquet path, or a hub id."},
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset config name."})
    dataset_train_split: str = field(default="train", metadata={"help": "Split to train on."})
    dataset_test_split: str = field(default="test", metadata={"help": "Held-out split (made with test_size if absent)."})
    test_size: float = field(default=0.1, metadata={"help": "Fraction held out when the data has no test split."})
    num_train_samples: int | None = field(default=None, metadata={"help": "Use at most this many training rows."})
    num_test_samples: int | None = field(default=None, metadata={"help": "Use at most this many test rows."})
    task_kwargs: dict[str, Any] | None = field(
        default=None, metadata={"help": "Options for a task: generator, e.g. {digits: 3, ops: '+-'}."}
    )
    prompt_column: str | None = field(
        default=None,
        metadata={"help": "Build the chat prompt from this text column (e.g. question for GSM8K) when there is "
                          "no 'prompt' column."},
    )
    prompt_instruction: str | None = field(
        default=None, metadata={"help": "Text added on its own line after each prompt_column question."},
    )
    sft_target_column: str = field(
        default="solution", metadata={"help": "Column holding the SFT target when there is no 'completion'."}
    )
    system_prompt: str | None = field(
        default=None,
        metadata={"help": "A system turn put first in every chat prompt (and messages row) rlft builds or reads; "
                          "rows with their own system turn keep theirs."},
    )

    def __post_init__(self) -> None:
        for name in ("num_train_samples", "num_test_samples"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise UserError(f"{name} must be a positive integer, got {value}")
        if not 0.0 < self.test_size < 1.0:
            raise UserError(f"test_size must be between 0 and 1, got {self.test_size}")


@dataclass
class EvalArguments:
    """The greedy before/after check that ends a stage."""

    eval_before_after: bool = field(
        default=True, metadata={"help": "Score base and trained model greedily on the test split after training."}
    )
    eval_samples: int = field(default=100, metadata={"help": "Test prompts to score (first N of the test split)."})
    eval_max_new_tokens: int = field(default=96, metadata={"help": "Greedy generation length for the check."})
    eval_batch_size: int = field(default=16, metadata={"help": "Prompts per generate() call."})

    def __post_init__(self) -> None:
        for name in ("eval_samples", "eval_max_new_tokens", "eval_batch_size"):
            if getattr(self, name) <= 0:
                raise UserError(f"{name} must be a positive integer, got {getattr(self, name)}")


@dataclass
class RewardArguments:
    """Which rewards score completions, with their settings (weights are TRL's ``reward_weights``).

    Every stage has them: GRPO trains on them, and every stage's closing
    before/after check scores with them (:mod:`rlft.evaluation.scoring`).
    """

    reward_funcs: list[str] = field(
        default_factory=lambda: ["accuracy"],
        metadata={"help": "Reward names (see `rewards.REWARDS`) or dotted paths package.module:function."},
    )
    reward_kwargs: dict[str, dict[str, Any]] | None = field(
        default=None,
        metadata={"help": "Settings per reward, e.g. {accuracy: {fallback_last_number: false}}."},
    )

    def __post_init__(self) -> None:
        if not self.reward_funcs:
            raise UserError("reward_funcs is empty; name at least one reward, e.g. [accuracy]")
        for name, settings in (self.reward_kwargs or {}).items():
            if name not in self.reward_funcs:
                raise UserError(
                    f"reward_kwargs has settings for {name!r}, which is not in reward_funcs "
                    f"({', '.join(self.reward_funcs)})"
                )
            if not isinstance(settings, dict):
                raise UserError(f"reward_kwargs.{name} must be a mapping of setting: value, got {settings!r}")

    def build(self) -> list:
        """The reward callables, in ``reward_funcs`` order (one-line error for a bad name or setting).

        Example:
            >>> [f.__name__ for f in RewardArguments(reward_funcs=["accuracy", "tag_count"]).build()]
            ['accuracy', 'tag_count']
        """
        out = []
        for name in self.reward_funcs:
            try:
                out.append(rewards.resolve(name, **(self.reward_kwargs or {}).get(name, {})))
            except rewards.RewardInputError as err:
                raise UserError(str(err)) from None
        return out


@dataclass
class RewardFailureArguments:
    """What GRPO does when a reward raises mid-run."""

    on_reward_error: Literal["stop", "skip"] = field(
        default="stop",
        metadata={"help": "A reward that raises mid-run: stop (checkpoint, show the sample) or skip the sample."},
    )
