"""rlft's thin layer over TRL's ``GRPOTrainer``: reward bookkeeping in the logs.

TRL already logs, per step, each reward's mean and std, the fraction of
groups whose rewards have zero spread, completion lengths, KL (with
``beta > 0``) and a table of sample completions (``log_completions``). This
subclass adds what rlft's rewards count and TRL cannot see: per reward, the
verifier timeouts and the ``None`` ("cannot verify") results since the last
log, so a run whose signal is silently empty shows it.

Example:
    >>> from collections import Counter
    >>> reward_counters([type("R", (), {"__name__": "accuracy", "stats": Counter(timeouts=2, none=1)})()])
    {'rewards/accuracy/timeouts': 2, 'rewards/accuracy/none': 1}
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import trl.trainer.grpo_trainer as trl_grpo
from trl import GRPOTrainer
from trl.extras.profiling import profiling_context

from rewards.timeouts import refuse_in_worker_bootstrap
from rlft.core.console import stdout_to_log
from rlft.training.importance import DeferredImportanceSampling
from rlft.training.length_buckets import LengthBuckets
from rlft.training.sync_canary import SyncCanary
from rlft.training.tool_use import transcript_figures
from rlft.training.zero_advantage import ZeroAdvantageSkipping

logger = logging.getLogger(__name__)

COUNTED = ("timeouts", "none", "errors", "no_answer")


def reward_counters(funcs: Iterable[Any]) -> dict[str, int]:
    """Current counters of rlft rewards (those with a ``stats`` Counter), keyed as TRL keys rewards."""
    out: dict[str, int] = {}
    for func in funcs:
        stats = getattr(func, "stats", None)
        if not isinstance(stats, Counter):
            continue
        for key in COUNTED:
            if key in stats:
                out[f"rewards/{getattr(func, '__name__', 'reward')}/{key}"] = stats[key]
    return out


def parquet_safe(transcript: Any) -> Any:
    """A tool-use transcript whose tool calls hold their arguments as JSON text (for TRL's completions table).

    The model writes any JSON as a call's ``arguments`` (an object, a string,
    a list), which TRL keeps as parsed; pyarrow cannot put such mixed values
    in one parquet column, so TRL's ``log_completions`` table would crash the
    run. Names become strings for the same reason.

    Example:
        >>> parquet_safe([{"role": "assistant", "content": "", "tool_calls": [
        ...     {"type": "function", "function": {"name": "calculator", "arguments": {"expression": "2*3"}}}]}])
        [{'role': 'assistant', 'content': '', 'tool_calls': [{'type': 'function', 'function': {'name': 'calculator', 'arguments': '{"expression": "2*3"}'}}]}]
    """
    if not isinstance(transcript, list):
        return transcript
    out = []
    for message in transcript:
        calls = message.get("tool_calls")
        if calls:
            message = {**message, "tool_calls": [_text_call(call) for call in calls]}
        out.append(message)
    return out


def _text_call(call: Any) -> dict[str, Any]:
    function = call.get("function", call) if isinstance(call, dict) else {}
    arguments = function.get("arguments")
    return {"type": "function", "function": {"name": str(function.get("name")), "arguments": json.dumps(arguments)}}


@contextlib.contextmanager
def reference_model(reference: Any) -> Iterator[None]:
    """While TRL's GRPOTrainer is built, its reference (``beta > 0``, full fine-tuning) is ``reference``.

    TRL's GRPOTrainer takes no reference model: it loads one from the policy's
    ``config._name_or_path``, which after rlft merged a starting run's
    adapters names the raw base, not the model training starts from (DPOTrainer
    takes ``ref_model``; GRPOTrainer has no such argument). So for the length
    of its ``__init__`` TRL's loader hands back ``reference`` instead; the rest
    of TRL's setup (dropout off, DeepSpeed preparation) applies to it as usual.
    """
    if reference is None:
        yield
        return
    load = trl_grpo.create_model_from_path
    trl_grpo.create_model_from_path = lambda *args, **kwargs: reference
    try:
        yield
    finally:
        trl_grpo.create_model_from_path = load


class RlftGRPOTrainer(ZeroAdvantageSkipping, LengthBuckets, DeferredImportanceSampling, GRPOTrainer):
    """``GRPOTrainer`` with rlft's rollout engine wired in and reward counters in its logs.

    With an ``engine`` (see :mod:`rlft.rollout.engine`), generation goes
    through TRL's ``rollout_func`` hook, and the trainer is told it uses vLLM:
    TRL then computes the trainer's logprobs of the sampled tokens and applies
    its importance-sampling correction against the engine's logprobs — the
    same code paths as its own colocated vLLM, with rlft's engine in place of
    TRL's. Before the first rollout of each optimizer step the trainer hands
    the engine the policy (``engine.sync_weights(model)``). When generation is
    on-policy the correction reuses the training forward's logprobs instead
    of a separate forward (:mod:`rlft.training.importance`). Rows with zero
    advantage skip the training pass where that leaves the gradient unchanged
    (``skip_zero_advantage``, :mod:`rlft.training.zero_advantage`), and the
    rows that remain are trained in length buckets, with less padding
    (``length_buckets``, :mod:`rlft.training.length_buckets`). After each
    sync, engine and trainer score a fixed probe and must agree
    (``sync_check``, :mod:`rlft.training.sync_canary`; logged as
    ``sync/logprob_gap``). On CUDA TRL's own colocated vLLM generates
    instead (``use_vllm``, ``vllm_mode: colocate``): ``wrap_vllm`` wraps
    TRL's generation object so the same sync check and evaluation run on it
    (:mod:`rlft.rollout.colocate`). Stages add atomic checkpoints
    and evaluation during training (:func:`rlft.stage.trainers.stage_trainer`).
    """

    def __init__(self, *args: Any, engine: Any = None, wrap_vllm: Callable[[Any], Any] | None = None,
                 skip_zero_advantage: bool = False, length_buckets: bool | None = False,
                 tool_stats: Any = None, reference: Any = None, **kwargs: Any) -> None:
        refuse_in_worker_bootstrap("a trainer")
        if engine is not None and not (kwargs.get("tools") or kwargs.get("environment_factory")):
            kwargs["rollout_func"] = engine.rollout_func  # with tools TRL's own loop calls engine.generate per turn
        with reference_model(reference):
            super().__init__(*args, **kwargs)
        if engine is None and self.use_vllm and wrap_vllm is not None:
            # TRL's colocated vLLM (CUDA): TRL keeps generating and syncing through ``vllm_generation``;
            # the wrapper adds rlft's sync check and greedy evaluation (rlft.rollout.colocate)
            engine = self.vllm_generation = wrap_vllm(self.vllm_generation)
        self._last_counters: dict[str, int] = {}
        self.tool_stats = tool_stats  # rlft.tools.loading.ToolStats, with tools
        self.enable_zero_advantage_skipping(skip_zero_advantage)
        self.enable_length_buckets(length_buckets)
        self.engine = engine
        if hasattr(engine, "step_of"):  # the engine seeds each step's sampling: a resumed run samples the same
            engine.step_of = lambda: self.state.global_step
        self.sync_canary: SyncCanary | None = None
        if engine is not None and getattr(engine, "sync_check", False):  # test stand-ins have none
            # every rank takes the worst figures, so all stop together or none does
            self.sync_canary = SyncCanary(engine, reduce=self._worst_over_ranks)
        if engine is not None and not self.use_vllm:  # rlft's own engine, through rollout_func
            self.use_vllm = True
            self.vllm_generation = engine  # TRL reads the engine's ``llm`` through this name
            self._last_loaded_step = 0  # the engine starts with the step-0 weights

    def _generate(self, prompts: list) -> Any:
        self._sync_engine()
        result = super()._generate(prompts)
        if self.tools:  # TRL's tool loop ran: what the transcripts show (rlft.training.tool_use)
            mode = "train" if self.model.training else "eval"
            names = {getattr(t, "__name__", "") for t in self.tools}
            figures = transcript_figures(result[3], names, self.max_tool_calling_iterations + 1)
            for key, value in figures.items():
                self._metrics[mode][key].append(value)
        return result

    def engine_completions(self, prompts: list, max_new_tokens: int) -> list[str] | None:
        """Greedy completions from the rollout engine, synced to the policy first (evaluation during training).

        ``None`` without an engine: the caller generates with transformers.
        """
        if self.engine is None or not hasattr(self.engine, "greedy"):  # test stand-ins may have none
            return None
        self._sync_engine()  # the sync the next step's first rollout would make: no extra cost there
        return self.engine.greedy(prompts, max_new_tokens)

    def _sync_engine(self) -> None:
        # TRL would call ``vllm_generation.sync_weights()`` with no arguments; the
        # engine is given the policy instead, so it needs no reference to this trainer.
        if self.engine is not None and self.state.global_step != self._last_loaded_step:
            policy = self.accelerator.unwrap_model(self.model)
            with profiling_context(self, "sync_weights"):
                self.engine.sync_weights(policy)
            self._last_loaded_step = self.state.global_step
            if self.sync_canary is not None:  # before any rollout comes from the new weights
                with profiling_context(self, "sync_check"):
                    self.sync_canary.check(policy, self.state.global_step)

    def _worst_over_ranks(self, figures: Any) -> Any:
        return self.accelerator.gather(figures[None].to(self.accelerator.device)).amax(0).cpu()

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs or any(k.startswith("rewards/") for k in logs):  # a training log, not the summary
            now = {**reward_counters(self.reward_funcs), **(self.tool_stats.snapshot() if self.tool_stats else {})}
            for key, value in now.items():
                logs[key] = value - self._last_counters.get(key, 0)
            self._last_counters = now
            if self.sync_canary is not None:
                logs.update(self.sync_canary.pop_logs())
            if self.log_completions and self.accelerator.is_main_process:
                # TRL makes this folder in __init__; ``--overwrite`` empties the output dir after that
                os.makedirs(os.path.join(self.args.output_dir, "completions"), exist_ok=True)
                if self.tools or self.environment_factories is not None:
                    completions = self._logs["completion"]
                    self._logs["completion"] = type(completions)(map(parquet_safe, completions),
                                                                 maxlen=completions.maxlen)
        table = self.log_completions
        self.log_completions = table and self.model.training  # an eval log (greedy_eval) repeats no table
        try:
            with stdout_to_log():  # TRL prints a completions table per log (log_completions): the run log's
                super().log(logs, start_time)
        finally:
            self.log_completions = table
