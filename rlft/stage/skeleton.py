"""The sequence every training stage follows, written once.

    config (parsed, then settled for this machine) -> seed -> output dir checked -> data -> stage checks -> tokenizer
    -> model -> trainer (+ evaluation during training) -> directory claimed
    -> guarded train -> save -> greedy before/after check -> manifest

A stage (``rlft/sft.py``, ``grpo.py``, ``dpo.py``, ``orpo.py``) is a
:class:`TrainingStage` subclass that says only where it differs: its TRL
config, any extra argument groups, the checks its data needs before the
model loads, how its trainer is built, what it adds to the manifest, and
what it releases at the end. Every check runs before the output directory is
claimed, so a bad recipe costs nothing (:mod:`rlft.core.run_dir`).

Example:
    >>> class Toy(TrainingStage):
    ...     name = "toy"
    >>> Toy().name, Toy().extra_arguments
    ('toy', ())
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from rlft.core import data, models
from rlft.core.arguments import DataArguments, EvalArguments, ModelArguments, RewardArguments
from rlft.core.console import close_run_log
from rlft.core.loading import LoadOptions
from rlft.core.run_dir import RunArguments
from rlft.core.runtime import (
    cpu_precision,
    is_main_process,
    setup_logging,
)
from rlft.core.tool_setup import ToolSetup
from rlft.stage import greedy_eval, input_checks, memory_check, parsing
from rlft.stage.greedy_eval import TrainingEvalArguments


class StageArgs:
    """A stage's parsed recipe: each argument group by its class, TRL's config as ``train``.

    ``recipe`` is what the file and the command line set (the resolved
    recipe, defaults left out: ``key in args.recipe`` is "the user set it");
    ``settled`` is what :meth:`TrainingStage.settle` changed for this run,
    each key with its value and why.

    Example:
        >>> args = StageArgs([RunArguments(resume=True), object()], {"resume": True})
        >>> args.run.resume, args.recipe, args.settled
        (True, {'resume': True}, {})
    """

    def __init__(self, parts: Sequence[Any], recipe: dict[str, Any],
                 settled: dict[str, dict[str, Any]] | None = None) -> None:
        self.parts, self.recipe, self.settled = list(parts), recipe, dict(settled or {})
        self.train = self.parts[-1]  # TRL's *Config comes last

    def get(self, cls: type) -> Any:
        """The group of class ``cls`` (e.g. ``RewardArguments``)."""
        return next(part for part in self.parts if isinstance(part, cls))

    @property
    def data(self) -> Any:
        return self.get(DataArguments)

    @property
    def eval(self) -> Any:
        return self.get(EvalArguments)

    @property
    def model(self) -> Any:
        return self.get(ModelArguments)

    @property
    def run(self) -> Any:
        return self.get(RunArguments)


class TrainingStage:
    """The skeleton of a training stage; subclasses fill in what differs.

    Must set :attr:`name` and :attr:`config` and implement
    :meth:`build_trainer`; may set :attr:`extra_arguments` and override
    :meth:`check_data`, :meth:`settle_config`, :meth:`scoring_rewards`,
    :meth:`results` and :meth:`close`. Its entry in
    :mod:`rlft.stage.registry` makes ``rlft <name>`` run it.
    """

    name: str = ""
    config: str = ""  # TRL's config class for this stage, as module:Class (``trl:SFTConfig``)
    extra_arguments: tuple[type, ...] = ()  # argument groups beyond data, eval, model, reward and run
    output_dir: str = ""  # set by run()
    tools: ToolSetup | None = None  # the recipe's tools, loaded by check_data: training and every evaluation use them

    # -- what a stage says about itself --
    def config_class(self) -> type:
        """TRL's config class for this stage (imports TRL: the slow half of a parse)."""
        module, _, name = self.config.partition(":")
        return getattr(importlib.import_module(module), name)

    def settle_config(self, args: StageArgs) -> dict[str, tuple[Any, str]]:
        """TRL settings this stage derives from the recipe, as ``{key: (value, why)}`` (:meth:`settle`)."""
        return {}

    def check_data(self, args: StageArgs, splits: Any) -> None:
        """Refuse data (or settings) this stage cannot train on, before the model loads."""

    def build_trainer(self, args: StageArgs, splits: Any, tokenizer: Any, model: Any) -> Any:
        """The TRL trainer for ``model`` on ``splits["train"]`` (with atomic checkpoints)."""
        raise NotImplementedError

    def prepare_tokenizer(self, args: StageArgs, tokenizer: Any) -> None:
        """The tokenizer the stage trains with, changed in place: with tools, a template that renders them (or a
        one-line refusal). Before the model loads, and again by :meth:`build_trainer` (tests build one directly)."""
        if self.tools and self.tools.chat_template:
            self.tools.chat_template(tokenizer, args.model.model_name_or_path)

    def memory_rows(self, args: StageArgs, splits: Any, tokenizer: Any) -> dict[str, Any]:
        """The training micro-batch at this stage's peak: ``sequences`` (rows) and ``tokens`` (the longest row,
        capped by ``max_length``); ``reference_copy`` when the stage keeps a frozen copy of a full model."""
        columns = [c for c in ("messages", "prompt", "completion", "text", "solution")
                   if c in splits["train"].column_names]
        return {"sequences": args.train.per_device_train_batch_size,
                "tokens": self.longest_tokens(args, splits, tokenizer, columns, getattr(args.train, "max_length", None))}

    def longest_tokens(self, args: StageArgs, splits: Any, tokenizer: Any, columns: list[str],
                       cap: int | None = None) -> int:
        """The longest training row over ``columns`` as the trainer renders it: the recipe's chat template
        options, and the stage's tool schemas (:func:`rlft.stage.memory_check.longest_tokens`)."""
        return memory_check.longest_tokens(tokenizer, splits["train"], columns,
                                           tools=self.tools.functions if self.tools else None,
                                           options=args.model.chat_template_kwargs, cap=cap)

    def memory_engine(self, args: StageArgs) -> dict[str, Any]:
        """What generates beside training (GRPO's engine): ``engine``, ``fraction``, ``sequences``."""
        return {}

    def memory_plan(self, args: StageArgs, splits: Any, tokenizer: Any) -> Any:
        """This run's :class:`~rlft.stage.memory_plan.Plan` (``None`` on CUDA), from data already checked."""
        return memory_check.plan_run(args, self.memory_rows(args, splits, tokenizer), self.memory_engine(args))

    def prepare(self, args: StageArgs) -> tuple[Any, Any, LoadOptions]:
        """The checked data splits, the tokenizer and the load options: what comes before the model
        (the run, and ``rlft plan``)."""
        options = LoadOptions.from_args(args.model, args.train)  # revision, attention, remote code, 4/8-bit
        splits = data.load_splits(args.data, seed=args.train.seed)
        self.check_data(args, splits)
        tokenizer = models.load_tokenizer(args.model.model_name_or_path, options=options)
        input_checks.require_chat_template(tokenizer, splits["train"], args.model.model_name_or_path)
        self.prepare_tokenizer(args, tokenizer)  # before the plan: it counts what the template renders
        return self.filter_rows(args, splits, tokenizer), tokenizer, options

    def filter_rows(self, args: StageArgs, splits: Any, tokenizer: Any) -> Any:
        """The splits with rows this stage drops by length (GRPO's ``max_prompt_length``), once the tokenizer
        is read."""
        return splits

    def scoring_rewards(self, args: StageArgs) -> list:
        """The rewards the closing check scores with: the recipe's ``reward_funcs`` (default ``[accuracy]``)."""
        return args.get(RewardArguments).build()

    def results(self, trainer: Any) -> dict[str, Any]:
        """What this stage adds to the manifest's ``results`` once training ended."""
        return {}

    def close(self) -> None:
        """Release what :meth:`build_trainer` started (runs even when training fails)."""

    # -- the sequence, once --
    def rlft_argument_types(self) -> list[type]:
        """rlft's own argument groups, in parse order: data, eval (closing, during training), model, rewards,
        extras, run."""
        return [DataArguments, EvalArguments, TrainingEvalArguments, ModelArguments, RewardArguments,
                *self.extra_arguments, RunArguments]

    def argument_types(self) -> list[type]:
        """The recipe's argument groups, in parse order: rlft's, then TRL's config."""
        return [*self.rlft_argument_types(), self.config_class()]

    def parse(self, argv: Sequence[str] | None) -> tuple[list[Any], dict[str, Any]]:
        """The recipe's argument groups (:meth:`argument_types`, one instance each) and the resolved recipe.

        Pure (:mod:`rlft.stage.parsing`): nothing is measured and the environment is left as it was.
        """
        return parsing.parse_stage(self, argv)

    def settle(self, args: StageArgs) -> StageArgs:
        """The arguments that run on this machine: the parsed ones with what the machine and the stage decide.

        Once per run, after parsing: bf16 off on a CPU where it is slower than
        float32 (measured once per machine; the ranks of a launch read the
        first one's figure, :func:`rlft.core.runtime.cpu_bf16_slowdown`), and
        the TRL settings the stage derives (:meth:`settle_config`). TRL's config
        is built again from the changed values, so the launcher's precision
        follows them. ``settled`` names each change and why; the manifest
        records it.
        """
        values = parsing.run_values(args.recipe)
        changes = {key: (value, "slower than float32 on this CPU (measured)")
                   for key, value in cpu_precision(values).items() if values.get(key) != value}
        changes.update(self.settle_config(args))
        return self.changed(args, changes)

    def changed(self, args: StageArgs, changes: dict[str, tuple[Any, str]]) -> StageArgs:
        """``args`` rebuilt with ``changes`` (``{key: (value, why)}``) over the recipe and what was settled."""
        if not changes:
            return args
        values = {**parsing.run_values(args.recipe), **{key: v["value"] for key, v in args.settled.items()},
                  **{key: value for key, (value, _) in changes.items()}}
        return StageArgs(parsing.build_instances(self.argument_types(), values), args.recipe,
                         {**args.settled, **{key: {"value": v, "why": why} for key, (v, why) in changes.items()}})

    def fit_auto(self, args: StageArgs, plan: Any) -> tuple[StageArgs, Any]:
        """The recipe's ``auto`` keys (``per_device_train_batch_size``, ``gradient_checkpointing``) set to the
        fastest values whose memory plan fits, with the optimizer step unchanged; the args and their plan.

        Example (a recipe with ``per_device_train_batch_size: auto`` on a machine where 8 rows do not fit)::

            auto chose per_device_train_batch_size: 4, gradient_accumulation_steps: 2, ... (the fastest whose
            memory plan fits: 9.8 GB of 12.0 GB)
        """
        asked = parsing.auto_keys(args.recipe)
        if not asked:
            return args, plan
        choice = memory_check.choose(plan, asked, args.run.memory_check, self.micro_batch_divides(args))
        why = f"auto: the fastest setting whose memory plan fits ({memory_check.gb(choice.plan.peak)})"
        changes = {"per_device_train_batch_size": (choice.examples, why),
                   "gradient_accumulation_steps": (choice.accumulation, why),
                   "gradient_checkpointing": (choice.checkpointing, why)}
        changes = {key: value for key, value in changes.items()
                   if value[0] != getattr(args.train, key) or key in asked}
        return self.changed(args, {**changes, **self.auto_follows(args, choice.examples)}), choice.plan

    def micro_batch_divides(self, args: StageArgs) -> int:
        """A number every micro-batch ``auto`` chooses must divide (0: any divisor of the optimizer step)."""
        return 0

    def auto_follows(self, args: StageArgs, examples: int) -> dict[str, tuple[Any, str]]:
        """Settings that change with an ``auto`` micro-batch of ``examples`` (GRPO's ``steps_per_generation``)."""
        return {}

    def run(self, argv: Sequence[str] | None = None) -> dict[str, Any]:
        """Parse, settle, check, train, save and record the stage; returns the manifest (``{}`` off rank 0)."""
        args = self.settle(StageArgs(*self.parse(argv)))  # a bad recipe is refused before torch loads
        from transformers import set_seed

        from rlft.stage.run import StageRun

        parsing.warn_idle(parsing.idle_keys(self.name, args))  # refused keys never get here: the parse refused them
        cfg = args.train
        self.output_dir = cfg.output_dir
        setup_logging(cfg.log_level if cfg.log_level != "passive" else "info", verbose=args.run.verbose)
        set_seed(cfg.seed)
        record = StageRun(self.name, args.recipe, args.run, args.model, settled=args.settled)
        record.check(cfg.output_dir)  # opens the run log: closed (removed if never claimed) whatever happens
        try:
            return self._checked_run(args, record)
        finally:
            close_run_log()

    def _checked_run(self, args: StageArgs, record: Any) -> dict[str, Any]:
        """Load, train, save and conclude, once the recipe and the output directory have been checked."""
        cfg = args.train
        input_checks.check_counts(cfg)
        splits, tokenizer, options = self.prepare(args)
        during = args.get(greedy_eval.TrainingEvalArguments)
        scoring = self.scoring_rewards(args) if args.eval.eval_before_after or during.eval_steps else []
        greedy_eval.check_plan(during, splits["test"], scoring, cfg, self.tools)
        input_checks.check_scoring(splits["test"], scoring, max(args.eval.eval_samples, 1),
                                   bool(self.tools and self.tools.has_environment))
        args, plan = self.fit_auto(args, self.memory_plan(args, splits, tokenizer))
        record.settled.update(args.settled)
        record.memory_plan = memory_check.check(plan, args.run.memory_check)
        model = models.load_model(args.model.model_name_or_path, args.model.dtype, options=options)  # adapters merged
        input_checks.check_lora_targets(model, args.model)

        try:
            trainer = self.build_trainer(args, splits, tokenizer, model)
            greedy_eval.attach(trainer, during, args.eval, splits["test"], scoring, tokenizer,
                               args.model.chat_template_kwargs, self.tools)
            record.begin(trainer, splits["train"])
            record.train()
            trainer.save_model(cfg.output_dir)  # with final_model: best, the best checkpoint's weights
            results = self.results(trainer)
            if during.eval_steps:
                results["eval_during_training"] = greedy_eval.summary(trainer, during)
        finally:
            self.close()
        if not is_main_process():
            return {}
        return record.conclude(tokenizer, splits["test"], args.eval, results, scoring, tools=self.tools)
