"""GRPO stage: reinforcement learning with verifiable rewards on TRL's ``GRPOTrainer``.

    accelerate launch rlft/grpo.py recipes/math.yaml [--key value ...]
    python -m rlft.grpo recipes/math.yaml --max_steps 2
    rlft grpo recipes/math.yaml

Rewards come from the recipe (``reward_funcs``, ``reward_kwargs``,
``reward_weights``); TRL's GRPO settings pass through; LoRA by default.
Completions come from ``engine`` (``hf``: TRL's own generation; ``vllm``:
:mod:`rlft.rollout.engine`). The sequence is :class:`rlft.stage.skeleton.TrainingStage`'s.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from rlft.core.arguments import RewardArguments, RewardFailureArguments
from rlft.core.errors import run_cli
from rlft.rollout.engine import RolloutArguments
from rlft.stage.skeleton import TrainingStage
from rlft.training.length_buckets import LengthBucketArguments
from rlft.training.zero_advantage import ZeroAdvantageArguments

logger = logging.getLogger("rlft.grpo")


class GRPO(TrainingStage):
    name = "grpo"
    extra_arguments = (RewardFailureArguments, RolloutArguments, ZeroAdvantageArguments, LengthBucketArguments)

    def __init__(self) -> None:
        self.reward_funcs: list = []  # built and checked in check_data, before the model loads
        self.engine = None  # the vLLM engine, when the recipe asks for one
        self.fallback: dict = {}  # why the rollouts came from hf when the recipe asked for vllm

    def config_class(self) -> type:
        from trl import GRPOConfig

        return GRPOConfig

    def check_data(self, args, splits) -> None:
        """Prompts present; the engine's sync can follow this model; every reward tried on the first row.

        All before the model loads and the output directory is claimed.
        """
        from rlft.core.data import require_columns
        from rlft.rollout.engine import resolve_sync
        from rlft.stage.input_checks import checked_rewards

        require_columns(splits["train"], ["prompt"], "the GRPO stage")
        rollout = args.get(RolloutArguments)
        if rollout.engine == "vllm":  # e.g. vllm_sync: adapter with DoRA, which vLLM cannot load
            resolve_sync(rollout.vllm_sync, args.model.use_peft, args.model.use_dora)
        self.reward_funcs = checked_rewards(args.get(RewardArguments), args.train, splits["train"][0],
                                            args.get(RewardFailureArguments).on_reward_error)

    def build_trainer(self, args, splits, tokenizer, model):
        from rlft.core import models
        from rlft.stage.trainers import stage_trainer
        from rlft.training.grpo_trainer import RlftGRPOTrainer

        self.engine = self.start_engine(args.get(RolloutArguments), args, tokenizer, model)
        return stage_trainer(RlftGRPOTrainer)(
            model=model, reward_funcs=self.reward_funcs, args=args.train, train_dataset=splits["train"],
            processing_class=tokenizer, peft_config=models.lora_config(args.model), engine=self.engine,
            skip_zero_advantage=args.get(ZeroAdvantageArguments).skip_zero_advantage,
            length_buckets=args.get(LengthBucketArguments).length_buckets,
        )

    def scoring_rewards(self, args) -> list:
        return self.reward_funcs  # the trained-on rewards, already built and checked

    def start_engine(self, rollout, args, tokenizer, model):
        """The vLLM engine the recipe asks for; if it cannot start, hf (recorded) or a one-line stop."""
        from rlft.core.errors import UserError
        from rlft.rollout.engine import EngineStartError, make_engine

        try:
            return make_engine(rollout, args.train, args.model, tokenizer, start_model=model)
        except EngineStartError as err:
            if rollout.rollout_fallback == "error":
                raise UserError(f"engine: vllm could not start ({err}); rollout_fallback: error stops here "
                                "(rollout_fallback: hf generates with transformers instead)") from None
            logger.warning("vLLM engine unavailable (%s); generating with transformers (engine: hf) instead", err)
            self.fallback = {"fallback_from": "vllm", "fallback_reason": str(err)}
            return None

    def results(self, trainer) -> dict:
        return {"rollout": self.engine.describe() if self.engine else {"engine": "hf", **self.fallback}}

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
