"""GRPO stage: reinforcement learning with verifiable rewards on TRL's ``GRPOTrainer``.

    accelerate launch rlft/grpo.py recipes/math.yaml [--key value ...]
    python -m rlft.grpo recipes/math.yaml --max_steps 2
    rlft grpo recipes/math.yaml

Rewards come from the recipe (``reward_funcs``, ``reward_kwargs``,
``reward_weights``); TRL's GRPO settings pass through; LoRA by default.
Completions come from ``engine`` (``hf``: TRL's own generation; ``vllm``:
rlft's in-process engine on CPU, :mod:`rlft.rollout.engine`, and TRL's
colocate mode on CUDA, :mod:`rlft.rollout.colocate`; see ``docs/scaling.md``).
The sequence is :class:`rlft.stage.skeleton.TrainingStage`'s.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import sys
from collections.abc import Sequence
from typing import Any

from rlft.core import models
from rlft.core.accelerator import RLFT_ENGINE, TRL_COLOCATE, Launch, rollout_backend
from rlft.core.arguments import RewardArguments, RewardFailureArguments
from rlft.core.data import require_columns
from rlft.core.errors import UserError, run_cli
from rlft.core.loading import LoadOptions
from rlft.core.runtime import defer_warning
from rlft.rollout import engine as rollout_engine
from rlft.rollout.colocate import ColocateEngine, colocate_settings, with_engine_start
from rlft.rollout.engine import EngineStartError, RolloutArguments, resolve_sync
from rlft.stage.input_checks import checked_rewards
from rlft.stage.memory_check import row_tokens
from rlft.stage.skeleton import TrainingStage
from rlft.tools.environments import tool_setup
from rlft.tools.loading import ToolArguments
from rlft.training.length_buckets import LengthBucketArguments
from rlft.training.zero_advantage import ZeroAdvantageArguments

logger = logging.getLogger("rlft.grpo")


class GRPO(TrainingStage):
    name = "grpo"
    config = "trl:GRPOConfig"
    extra_arguments = (RewardFailureArguments, RolloutArguments, ZeroAdvantageArguments, LengthBucketArguments,
                       ToolArguments)

    def __init__(self) -> None:
        self.reward_funcs: list = []  # built and checked in check_data, before the model loads
        self.engine = None  # the vLLM engine, when the recipe asks for one
        self.backend = "hf"  # hf, rlft (rlft's engine) or trl-colocate (rlft.core.accelerator.rollout_backend)
        self.fallback: dict = {}  # why the rollouts came from hf when the recipe asked for vllm

    def settle_config(self, args) -> dict:
        """Which engine generates for this launch (refused here if it cannot), and the TRL settings that follow."""
        rollout = args.get(RolloutArguments)
        # refused here: rlft's engine with several processes or ZeRO-3, 4-bit bases under TRL's colocate mode
        self.backend = rollout_backend(Launch.current(), rollout.engine, rollout.vllm_sync,
                                       bool(args.model.load_in_4bit))
        if self.backend == RLFT_ENGINE:  # e.g. vllm_sync: adapter with DoRA, which vLLM cannot load
            resolve_sync(rollout.vllm_sync, args.model.use_peft, args.model.use_dora)
        changes = {}
        if self.backend == TRL_COLOCATE:
            if importlib.util.find_spec("vllm") is None:
                self.fall_back(rollout, "vllm is not installed (pip install 'rlft[gpu]')", defer=True)
            else:
                changes = {key: (value, "engine: vllm on CUDA is TRL's colocate mode")
                           for key, value in colocate_settings(rollout).items()}
        tool_args = args.get(ToolArguments)
        if tool_args.tools or tool_args.environment:  # TRL's tool loop runs up to max_turns model turns
            changes["max_tool_calling_iterations"] = (tool_args.max_turns - 1, "max_turns: tool rounds + 1")
        return changes

    def check_data(self, args, splits) -> None:
        """Prompts present; the tools loaded; every reward tried on the first row. All before the model loads."""
        require_columns(splits["train"], ["prompt"], "the GRPO stage")
        if args.train.sync_ref_model and (args.model.use_peft or not args.train.beta):  # TRL raises after loading
            raise UserError("sync_ref_model: the reference model is a frozen copy only with full fine-tuning and "
                            "beta > 0 (with LoRA it is the adapter disabled; with beta 0 there is none); drop it")
        first = dict(splits["train"][0])
        reward_args = args.get(RewardArguments)
        self.tools = tool_setup(args.get(ToolArguments), first, reward_args.reward_funcs)
        row = dict(first)
        if self.tools and self.tools.has_environment:  # its reward is tried on an episode started from this row
            row["environments"] = self.tools.environment()
            row["environments"].reset(**first)
        self.reward_funcs = checked_rewards(reward_args, args.train, row,
                                            args.get(RewardFailureArguments).on_reward_error)

    def filter_rows(self, args, splits, tokenizer):
        """Training prompts longer than ``max_prompt_length`` tokens dropped (TRL 0.x cut them from the left,
        which loses the system turn and the question's start; TRL 1.x dropped the key)."""
        limit = args.get(RolloutArguments).max_prompt_length
        if not limit:
            return splits
        train = splits["train"]
        options = {"tools": self.tools.functions if self.tools else None,
                   "options": args.model.chat_template_kwargs}
        kept = train.filter(lambda row: row_tokens(tokenizer, row, ["prompt"], **options) <= limit)
        if not len(kept):
            raise UserError(f"max_prompt_length: {limit}: every training prompt is longer; raise it")
        if len(kept) < len(train):
            logger.info("max_prompt_length %d: dropped %d of %d training prompts longer than that", limit,
                        len(train) - len(kept), len(train))
        splits["train"] = kept
        return splits

    def memory_rows(self, args, splits, tokenizer) -> dict:
        """A micro-batch of completions: the longest prompt (tool schemas rendered) + max_completion_length."""
        prompt = self.longest_tokens(args, splits, tokenizer, ["prompt"])
        completion = args.train.max_completion_length  # TRL reads logits at the completion only
        return {"sequences": args.train.per_device_train_batch_size, "tokens": prompt + completion,
                "logit_tokens": completion, "loss": "grpo", "reference_copy": args.train.beta > 0}

    def memory_engine(self, args) -> dict:
        if self.backend == RLFT_ENGINE:
            return {"engine": "vllm", "fraction": args.train.vllm_gpu_memory_utilization}
        cfg = args.train
        return {"engine": "hf", "sequences": cfg.per_device_train_batch_size * (cfg.steps_per_generation or 1)}

    def micro_batch_divides(self, args) -> int:
        """A set generation batch (or steps per generation) stays as it is: the micro-batch must divide it."""
        if "generation_batch_size" in args.recipe or "steps_per_generation" in args.recipe:
            return args.train.generation_batch_size // args.train.world_size
        return 0  # steps_per_generation follows gradient_accumulation_steps: the generation batch is the step

    def auto_follows(self, args, examples) -> dict:
        if "steps_per_generation" not in args.recipe:
            return {}
        steps = args.train.generation_batch_size // args.train.world_size // examples
        return {"steps_per_generation": (steps, "auto: the generation batch kept with the chosen micro-batch")}

    def build_trainer(self, args, splits, tokenizer, model):
        from rlft.stage.trainers import stage_trainer
        from rlft.training.grpo_trainer import RlftGRPOTrainer

        rollout = args.get(RolloutArguments)
        self.prepare_tokenizer(args, tokenizer)  # TRL's tool loop: a template that renders tools
        wrap_vllm = None
        if self.backend == TRL_COLOCATE and not self.fallback:  # TRL's colocated vLLM with rlft's checks
            wrap_vllm = functools.partial(ColocateEngine, rollout=rollout, bf16=bool(args.train.bf16),
                                          chat_template_kwargs=args.model.chat_template_kwargs)
        elif self.backend == RLFT_ENGINE:
            self.engine = self.start_engine(rollout, args, tokenizer, model)
        trainer = with_engine_start(lambda: stage_trainer(RlftGRPOTrainer)(
            model=model, reward_funcs=self.reward_funcs, args=args.train, train_dataset=splits["train"],
            processing_class=tokenizer, peft_config=models.lora_config(args.model), engine=self.engine,
            wrap_vllm=wrap_vllm, skip_zero_advantage=args.get(ZeroAdvantageArguments).skip_zero_advantage,
            length_buckets=args.get(LengthBucketArguments).length_buckets,
            tools=(self.tools.functions or None) if self.tools else None,
            tool_stats=self.tools.stats if self.tools else None,
            environment_factory=self.tools.environment if self.tools else None, reference=self.reference(args),
        ))
        self.engine = trainer.engine
        return trainer

    def reference(self, args) -> Any:
        """The frozen reference of ``beta > 0`` with full fine-tuning: the starting model, loaded as the policy
        was (a run directory with its adapters merged); ``None`` where TRL needs none (LoRA: the adapter
        disabled; ``beta: 0``)."""
        if not args.train.beta or args.model.use_peft:
            return None
        options = LoadOptions.from_args(args.model, args.train)
        return models.load_model(args.model.model_name_or_path, args.model.dtype, options=options).eval()

    def scoring_rewards(self, args) -> list:
        return self.reward_funcs  # the trained-on rewards, already built and checked

    def start_engine(self, rollout, args, tokenizer, model):
        """rlft's vLLM engine (CPU; CUDA with vllm_sync: adapter); if it cannot start, :meth:`fall_back`."""
        try:
            return rollout_engine.make_engine(rollout, args.train, args.model, tokenizer, start_model=model)
        except EngineStartError as err:
            self.fall_back(rollout, str(err))
            return None

    def fall_back(self, rollout, reason: str, defer: bool = False) -> None:
        """vLLM cannot start: generate with transformers (warned, recorded), or stop in one line.

        ``defer``: found while settling the recipe, before the run's log is open (logged once it is).
        """
        if rollout.rollout_fallback == "error":
            raise UserError(f"engine: vllm could not start ({reason}); rollout_fallback: error stops here "
                            "(rollout_fallback: hf generates with transformers instead)")
        warning = f"vLLM engine unavailable ({reason}); generating with transformers (engine: hf) instead"
        if defer:
            defer_warning(warning)
        else:
            logger.warning(warning)
        self.fallback = {"fallback_from": "vllm", "fallback_reason": reason}

    def results(self, trainer) -> dict:
        out = {"rollout": self.engine.describe() if self.engine else {"engine": "hf", **self.fallback}}
        if self.tools:
            out["tools"] = {"tools": [getattr(t, "__name__", "") for t in trainer.tools],
                            "environment": self.tools.environment.__name__ if self.tools.environment else None,
                            "max_turns": trainer.max_tool_calling_iterations + 1, "counts": self.tools.stats.snapshot()}
        return out

    def close(self) -> None:
        if self.engine:
            self.engine.close()


def parse(argv: Sequence[str] | None):
    return GRPO().parse(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the GRPO stage; returns the manifest written to the output directory."""
    stage = GRPO()
    manifest = stage.run(argv)
    if manifest:
        # imported only now, after the recipe was parsed: rlft.evaluation.closing loads transformers
        from rlft.evaluation.closing import closing_text

        print(closing_text(manifest, stage.output_dir))
    return manifest


if __name__ == "__main__":
    sys.exit(run_cli(main))
