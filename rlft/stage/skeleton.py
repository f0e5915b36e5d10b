"""The sequence every training stage follows, written once.

    config -> seed -> output dir checked -> data -> stage checks -> tokenizer
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

from collections.abc import Sequence
from typing import Any

#: Defaults every stage has where transformers' differ: TensorBoard logs in ``<output_dir>/runs``
#: (local, no account; ``report_to: none`` turns them off).
STAGE_DEFAULTS = {"report_to": ["tensorboard"]}


class StageArgs:
    """A stage's parsed recipe: each argument group by its class, TRL's config as ``train``.

    Example:
        >>> from rlft.core.run_dir import RunArguments
        >>> args = StageArgs([RunArguments(resume=True), object()], {"resume": True})
        >>> args.run.resume, args.recipe
        (True, {'resume': True})
    """

    def __init__(self, parts: Sequence[Any], recipe: dict[str, Any]) -> None:
        self.parts, self.recipe = list(parts), recipe
        self.train = self.parts[-1]  # TRL's *Config comes last

    def get(self, cls: type) -> Any:
        """The group of class ``cls`` (e.g. ``RewardArguments``)."""
        return next(part for part in self.parts if isinstance(part, cls))

    @property
    def data(self) -> Any:
        from rlft.core.arguments import DataArguments

        return self.get(DataArguments)

    @property
    def eval(self) -> Any:
        from rlft.core.arguments import EvalArguments

        return self.get(EvalArguments)

    @property
    def model(self) -> Any:
        from rlft.core.arguments import ModelArguments

        return self.get(ModelArguments)

    @property
    def run(self) -> Any:
        from rlft.core.run_dir import RunArguments

        return self.get(RunArguments)


class TrainingStage:
    """The skeleton of a training stage; subclasses fill in what differs.

    Must set :attr:`name` and implement :meth:`config_class` and
    :meth:`build_trainer`; may set :attr:`extra_arguments` and override
    :meth:`check_data`, :meth:`scoring_rewards`, :meth:`results` and :meth:`close`.
    """

    name: str = ""
    extra_arguments: tuple[type, ...] = ()  # argument groups beyond data, eval, model, reward and run
    output_dir: str = ""  # set by run()

    # -- what a stage says about itself --
    def config_class(self) -> type:
        """TRL's config class for this stage (``SFTConfig``, ``GRPOConfig``, ...)."""
        raise NotImplementedError

    def check_data(self, args: StageArgs, splits: Any) -> None:
        """Refuse data (or settings) this stage cannot train on, before the model loads."""

    def build_trainer(self, args: StageArgs, splits: Any, tokenizer: Any, model: Any) -> Any:
        """The TRL trainer for ``model`` on ``splits["train"]`` (with atomic checkpoints)."""
        raise NotImplementedError

    def scoring_rewards(self, args: StageArgs) -> list:
        """The rewards the closing check scores with: the recipe's ``reward_funcs`` (default ``[accuracy]``)."""
        from rlft.core.arguments import RewardArguments

        return args.get(RewardArguments).build()

    def eval_tools(self, args: StageArgs) -> tuple[list, int, Any] | None:
        """The closing check's tools, its ``max_turns`` and the environment's ``episode(row)`` (``None``: no tools)."""
        return None

    def results(self, trainer: Any) -> dict[str, Any]:
        """What this stage adds to the manifest's ``results`` once training ended."""
        return {}

    def close(self) -> None:
        """Release what :meth:`build_trainer` started (runs even when training fails)."""

    # -- the sequence, once --
    def argument_types(self) -> list[type]:
        """The recipe's argument groups, in parse order: data, eval (closing, during training), model, rewards,
        extras, run, TRL config."""
        from rlft.core.arguments import (
            DataArguments,
            EvalArguments,
            ModelArguments,
            RewardArguments,
        )
        from rlft.core.run_dir import RunArguments
        from rlft.stage.greedy_eval import TrainingEvalArguments

        return [DataArguments, EvalArguments, TrainingEvalArguments, ModelArguments, RewardArguments,
                *self.extra_arguments, RunArguments, self.config_class()]

    def parse(self, argv: Sequence[str] | None) -> tuple[list[Any], dict[str, Any]]:
        """The recipe's argument groups (:meth:`argument_types`, one instance each) and the resolved recipe."""
        from rlft.core.recipe import parse_recipe
        from rlft.core.runtime import cpu_precision, launcher_precision, platform_defaults
        from rlft.stage.settings import refuse_set_keys

        classes = self.argument_types()

        def adjust(values: dict[str, Any]) -> dict[str, Any]:
            refuse_set_keys(self.name, values, classes)  # before TRL's config checks them in its own words
            return cpu_precision(values)

        with launcher_precision():  # parsing leaves the environment as it was
            return parse_recipe(classes, argv, prog=f"rlft {self.name}",
                                defaults={**STAGE_DEFAULTS, **platform_defaults()}, adjust=adjust)

    def run(self, argv: Sequence[str] | None = None) -> dict[str, Any]:
        """Parse, check, train, save and record the stage; returns the manifest (``{}`` off rank 0)."""
        from rlft.stage.key_table import precheck

        precheck(self.name, argv)  # a bad recipe refused in its one line before torch loads
        from transformers import set_seed

        from rlft.core.console import close_run_log
        from rlft.core.runtime import defer_warning, setup_logging
        from rlft.stage.run import StageRun
        from rlft.stage.settings import check_settings

        args = StageArgs(*self.parse(argv))
        idle = check_settings(self.name, args)  # set but idle here (refused keys: the parse refused them)
        if idle:
            defer_warning(f"set but doing nothing in this run: {', '.join(idle)}")
        cfg = args.train
        self.output_dir = cfg.output_dir
        setup_logging(cfg.log_level if cfg.log_level != "passive" else "info", verbose=args.run.verbose)
        set_seed(cfg.seed)
        record = StageRun(self.name, args.recipe, args.run, args.model)
        record.check(cfg.output_dir)  # opens the run log: closed (removed if never claimed) whatever happens
        try:
            return self._checked_run(args, record)
        finally:
            close_run_log()

    def _checked_run(self, args: StageArgs, record: Any) -> dict[str, Any]:
        """Load, train, save and conclude, once the recipe and the output directory have been checked."""
        from rlft.core import data, models
        from rlft.core.loading import LoadOptions
        from rlft.core.runtime import is_main_process
        from rlft.stage import greedy_eval, input_checks

        cfg = args.train
        input_checks.check_counts(cfg)
        options = LoadOptions.from_args(args.model, cfg)  # revision, attention, remote code, 4/8-bit

        splits = data.load_splits(args.data, seed=cfg.seed)
        self.check_data(args, splits)
        during = args.get(greedy_eval.TrainingEvalArguments)
        scoring = self.scoring_rewards(args) if args.eval.eval_before_after or during.eval_steps else []
        greedy_eval.check_plan(during, splits["test"], scoring, cfg, self.eval_tools(args))
        tokenizer = models.load_tokenizer(args.model.model_name_or_path, options=options)
        input_checks.require_chat_template(tokenizer, splits["train"], args.model.model_name_or_path)
        model = models.load_model(args.model.model_name_or_path, args.model.dtype, options=options)  # adapters merged
        input_checks.check_lora_targets(model, args.model)

        try:
            trainer = self.build_trainer(args, splits, tokenizer, model)
            greedy_eval.attach(trainer, during, args.eval, splits["test"], scoring, tokenizer,
                               args.model.chat_template_kwargs, self.eval_tools(args))
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
        return record.conclude(tokenizer, splits["test"], args.eval, results, scoring, tools=self.eval_tools(args))
