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

import logging
import sys
from collections.abc import Sequence

from rlft.core.arguments import RewardArguments, RewardFailureArguments
from rlft.core.errors import run_cli
from rlft.rollout.engine import RolloutArguments
from rlft.stage.skeleton import TrainingStage
from rlft.tools.loading import ToolArguments
from rlft.training.length_buckets import LengthBucketArguments
from rlft.training.zero_advantage import ZeroAdvantageArguments

logger = logging.getLogger("rlft.grpo")


class GRPO(TrainingStage):
    name = "grpo"
    extra_arguments = (RewardFailureArguments, RolloutArguments, ZeroAdvantageArguments, LengthBucketArguments,
                       ToolArguments)

    def __init__(self) -> None:
        self.reward_funcs: list = []  # built and checked in check_data, before the model loads
        self.engine = None  # the vLLM engine, when the recipe asks for one
        self.backend = "hf"  # hf, rlft (rlft's engine) or trl-colocate (rlft.core.accelerator.rollout_backend)
        self.fallback: dict = {}  # why the rollouts came from hf when the recipe asked for vllm
        self.tools: list = []  # the recipe's tools, wrapped (rlft.tools.loading); TRL's tool loop calls them
        self.tool_stats = None
        self.environment = None  # the recipe's environment class, wrapped (rlft.tools.environments)

    def config_class(self) -> type:
        from trl import GRPOConfig

        return GRPOConfig

    def check_data(self, args, splits) -> None:
        """Prompts present; the engine's sync can follow this model; every reward tried on the first row.

        All before the model loads and the output directory is claimed.
        """
        from rlft.core.accelerator import RLFT_ENGINE, Launch, rollout_backend
        from rlft.core.data import require_columns
        from rlft.rollout.engine import resolve_sync
        from rlft.stage.input_checks import checked_rewards

        require_columns(splits["train"], ["prompt"], "the GRPO stage")
        rollout = args.get(RolloutArguments)
        # refused here: rlft's engine with several processes or ZeRO-3, 4-bit bases under TRL's colocate mode
        self.backend = rollout_backend(Launch.current(), rollout.engine, rollout.vllm_sync,
                                       bool(args.model.load_in_4bit))
        if self.backend == RLFT_ENGINE:  # e.g. vllm_sync: adapter with DoRA, which vLLM cannot load
            resolve_sync(rollout.vllm_sync, args.model.use_peft, args.model.use_dora)
        tool_args = args.get(ToolArguments)
        if tool_args.tools or tool_args.environment:
            self.load_tools(tool_args, args.get(RewardArguments), splits["train"][0])
        row = dict(splits["train"][0])
        if self.environment is not None:  # the environment reward is tried on an episode started from this row
            row["environments"] = self.environment()
            row["environments"].reset(**splits["train"][0])
        self.reward_funcs = checked_rewards(args.get(RewardArguments), args.train, row,
                                            args.get(RewardFailureArguments).on_reward_error)

    def load_tools(self, tool_args, reward_args, row) -> None:
        """The recipe's tools and environment, imported and checked; whether its rewards and its environment agree."""
        from rlft.core.errors import UserError
        from rlft.tools.environments import environment_tools, has_reward, load_environment
        from rlft.tools.loading import ToolStats, load_tools

        self.tool_stats = ToolStats()
        self.tools = load_tools(tool_args.tools, tool_args.tool_timeout, self.tool_stats)
        if not tool_args.environment:
            return
        self.environment = load_environment(tool_args.environment, tool_args.tool_timeout, self.tool_stats, row)
        clash = {t.__name__ for t in self.tools} & {t.__name__ for t in environment_tools(self.environment())}
        if clash:
            raise UserError(f"tools: {', '.join(sorted(clash))} is both a tool and a method of the environment "
                            "(the model calls tools by name)")
        named = "environment" in reward_args.reward_funcs
        if has_reward(self.environment) and not named:
            raise UserError(f"environment: {tool_args.environment} scores its episodes (get_reward), but "
                            "reward_funcs does not name it: add `environment` to reward_funcs")
        if named and not has_reward(self.environment):
            raise UserError(f"reward_funcs names `environment`, but {tool_args.environment} has no get_reward()")

    def build_trainer(self, args, splits, tokenizer, model):
        from rlft.core import models
        from rlft.core.accelerator import RLFT_ENGINE, TRL_COLOCATE
        from rlft.rollout.colocate import with_engine_start
        from rlft.stage.trainers import stage_trainer
        from rlft.training.grpo_trainer import RlftGRPOTrainer

        rollout = args.get(RolloutArguments)
        if self.tools or self.environment:  # TRL's tool loop: a template that renders tools, up to max_turns turns
            from rlft.tools.chat import enable_tool_calls

            enable_tool_calls(tokenizer, args.model.model_name_or_path)
            args.train.max_tool_calling_iterations = args.get(ToolArguments).max_turns - 1
        wrap_vllm = None
        if self.backend == TRL_COLOCATE:
            wrap_vllm = self.colocate(rollout, args)
        elif self.backend == RLFT_ENGINE:
            self.engine = self.start_engine(rollout, args, tokenizer, model)
        trainer = with_engine_start(lambda: stage_trainer(RlftGRPOTrainer)(
            model=model, reward_funcs=self.reward_funcs, args=args.train, train_dataset=splits["train"],
            processing_class=tokenizer, peft_config=models.lora_config(args.model), engine=self.engine,
            wrap_vllm=wrap_vllm, skip_zero_advantage=args.get(ZeroAdvantageArguments).skip_zero_advantage,
            length_buckets=args.get(LengthBucketArguments).length_buckets,
            tools=self.tools or None, tool_stats=self.tool_stats, environment_factory=self.environment,
        ))
        self.engine = trainer.engine
        return trainer

    def colocate(self, rollout, args):
        """TRL's colocated vLLM (CUDA): its settings on ``args.train``; the wrapper that adds rlft's checks.

        ``None`` (TRL generates with transformers) when vLLM is not installed
        and ``rollout_fallback`` is ``hf``.
        """
        import functools
        import importlib.util

        from rlft.rollout.colocate import ColocateEngine, colocate_settings

        if importlib.util.find_spec("vllm") is None:
            self.fall_back(rollout, "vllm is not installed (pip install 'rlft[gpu]')")
            return None
        for key, value in colocate_settings(rollout).items():
            setattr(args.train, key, value)
        return functools.partial(ColocateEngine, rollout=rollout, bf16=bool(args.train.bf16),
                                 chat_template_kwargs=args.model.chat_template_kwargs)

    def scoring_rewards(self, args) -> list:
        return self.reward_funcs  # the trained-on rewards, already built and checked

    def start_engine(self, rollout, args, tokenizer, model):
        """rlft's vLLM engine (CPU; CUDA with vllm_sync: adapter); if it cannot start, :meth:`fall_back`."""
        from rlft.rollout.engine import EngineStartError, make_engine

        try:
            return make_engine(rollout, args.train, args.model, tokenizer, start_model=model)
        except EngineStartError as err:
            self.fall_back(rollout, str(err))
            return None

    def fall_back(self, rollout, reason: str) -> None:
        """vLLM cannot start: generate with transformers (warned, recorded), or stop in one line."""
        from rlft.core.errors import UserError

        if rollout.rollout_fallback == "error":
            raise UserError(f"engine: vllm could not start ({reason}); rollout_fallback: error stops here "
                            "(rollout_fallback: hf generates with transformers instead)")
        logger.warning("vLLM engine unavailable (%s); generating with transformers (engine: hf) instead", reason)
        self.fallback = {"fallback_from": "vllm", "fallback_reason": reason}

    def eval_tools(self, args):
        """With tools, the closing check answers through the tool loop, up to ``max_turns`` turns, in the environment."""
        if not (self.tools or self.environment):
            return None
        import functools

        from rlft.tools.environments import episode

        return (self.tools, args.get(ToolArguments).max_turns,
                functools.partial(episode, self.environment) if self.environment else None)

    def results(self, trainer) -> dict:
        out = {"rollout": self.engine.describe() if self.engine else {"engine": "hf", **self.fallback}}
        if self.tools or self.environment:
            out["tools"] = {"tools": [getattr(t, "__name__", "") for t in trainer.tools],
                            "environment": self.environment.__name__ if self.environment else None,
                            "max_turns": trainer.max_tool_calling_iterations + 1, "counts": self.tool_stats.snapshot()}
        return out

    def close(self) -> None:
        if self.engine:
            self.engine.close()


def parse(argv: Sequence[str] | None):
    return GRPO().parse(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the GRPO stage; returns the manifest written to the output directory."""
    from rlft.evaluation.closing import closing_text

    stage = GRPO()
    manifest = stage.run(argv)
    if manifest:
        print(closing_text(manifest, stage.output_dir))
    return manifest


if __name__ == "__main__":
    sys.exit(run_cli(main))
