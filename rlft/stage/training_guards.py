"""Guarded training: stop on non-finite numbers, warn on a dead signal, handle failing rewards.

- :class:`TrainingGuard` (a ``TrainerCallback``): non-finite gradients
  (which a NaN or infinite loss produces) are dropped before the optimizer
  step, so the weights never take them in, and the run stops with a
  checkpoint and a message. A non-finite logged loss does the same. Warnings
  (not stops) for many consecutive steps with zero reward spread (GRPO has no
  signal: every group scored alike) and for a KL that runs away.
- :func:`guard_rewards`: a reward that raises, returns the wrong number of
  values or a non-finite number either stops the run with the failing
  sample shown (``on_reward_error: stop``, the default; the stage saves a
  checkpoint first) or scores that sample ``None`` (TRL leaves it out of the
  sum) and counts it under ``rewards/<name>/errors`` in the logs
  (``on_reward_error: skip``). Verification workers that cannot start
  (:class:`rewards.timeouts.WorkersFailed`) stop the run either way.

Example:
    >>> def flaky(completions, **kw):
    ...     return [1.0 / len(c) for c in completions]
    >>> [guarded] = guard_rewards([flaky], on_error="skip")
    >>> guarded(["ab", ""])
    [0.5, None]
    >>> guarded.stats["errors"]
    1
"""

from __future__ import annotations

import functools
import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers import TrainerCallback

from rewards.timeouts import WorkersFailed
from rlft.core.errors import RunStopped, UserError, one_line

logger = logging.getLogger(__name__)

ZERO_SPREAD_STEPS = 5  # consecutive logged steps where every group scored alike before warning
KL_WARN = 1.0  # nats per token; TRL's KL estimate normally stays well under 0.1


class TrainingHalted(UserError):
    """Training stopped itself (non-finite numbers, a failing reward, a failed sync check); a checkpoint was saved."""

    exit_code = 3


class RewardFailure(RunStopped):
    """A reward failed mid-run under ``on_reward_error: stop``; carries a one-line description."""

    advice = "fix the reward and rerun with --resume, or set on_reward_error: skip"


def _short(value: Any, limit: int = 160) -> str:
    text = one_line(value if isinstance(value, str) else repr(value))
    return text if len(text) <= limit else text[:limit] + "..."


def _row(kwargs: dict[str, Any], n: int, i: int) -> dict[str, Any]:
    """The ``i``-th sample's slice of TRL's reward keyword arguments (per-sample lists of length ``n``)."""
    return {k: [v[i]] if isinstance(v, list) and len(v) == n else v for k, v in kwargs.items()}


def guard_rewards(funcs: Sequence[Callable], on_error: str = "stop") -> list[Callable]:
    """Wrap each reward so a failure stops the run with the sample shown, or skips the sample.

    The wrapper keeps the reward's ``__name__`` (TRL's log key) and its
    ``stats`` counter (one is added when a user reward has none).
    """
    if on_error not in ("stop", "skip"):
        raise UserError(f"on_reward_error must be stop or skip, got {on_error!r}")
    return [_guard(func, on_error) for func in funcs]


def _guard(func: Callable, on_error: str) -> Callable:
    name = getattr(func, "__name__", type(func).__name__)
    stats = getattr(func, "stats", None)
    if not isinstance(stats, Counter):
        stats = Counter()

    def fail(problem: str, completions: list, kwargs: dict, i: int | None) -> None:
        where = ""
        if i is not None:
            prompts = kwargs.get("prompts") or [None] * len(completions)
            where = f" on sample {i}: prompt {_short(prompts[i])}, completion {_short(completions[i])}"
        raise RewardFailure(f"reward {name!r} {problem}{where}")

    def per_sample(completions: list, kwargs: dict) -> list:
        out: list = []
        for i, completion in enumerate(completions):
            try:
                value = func([completion], **_row(kwargs, len(completions), i))[0]
            except Exception as err:  # noqa: BLE001 - user code: skip the sample, count it
                if on_error == "stop":
                    fail(f"raised {type(err).__name__}: {_short(str(err))}", completions, kwargs, i)
                stats["errors"] += 1
                value = None
            out.append(value)
        return out

    @functools.wraps(func)
    def guarded(completions: list, **kwargs: Any) -> list:
        try:
            values = func(completions, **kwargs)
        except WorkersFailed as err:  # the verification pool is down: no sample can be scored, even skipping
            raise RewardFailure(f"reward {name!r}: {err}") from None
        except Exception:  # noqa: BLE001 - find the sample that fails, then stop or skip
            values = per_sample(completions, kwargs)
        if not isinstance(values, (list, tuple)) or len(values) != len(completions):
            got = len(values) if isinstance(values, (list, tuple)) else type(values).__name__
            fail(f"returned {got} values for {len(completions)} completions (give one per completion)",
                 completions, kwargs, None)
        values = list(values)
        for i, value in enumerate(values):
            if value is not None and not math.isfinite(value):
                if on_error == "stop":
                    fail(f"returned {value} (not a finite number; return None to skip a sample)",
                         completions, kwargs, i)
                stats["errors"] += 1
                values[i] = None
        return values

    guarded.stats = stats  # type: ignore[attr-defined]
    guarded.__name__ = name
    return guarded


class TrainingGuard(TrainerCallback):
    """Stops on non-finite gradients or loss (with a checkpoint); warns on dead reward signal and runaway KL."""

    def __init__(self, zero_spread_steps: int = ZERO_SPREAD_STEPS, kl_warn: float = KL_WARN) -> None:
        self.zero_spread_steps, self.kl_warn = zero_spread_steps, kl_warn
        self.halted: str | None = None
        self._zero_spread = 0
        self._kl_warned = False

    def _halt(self, control: Any, message: str) -> None:
        if self.halted is None:
            self.halted = message
            logger.error("%s; stopping with a checkpoint", message)
        control.should_training_stop = True
        control.should_save = True

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any):
        if model is None:
            return control
        bad = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
        if bad:
            for param in model.parameters():  # the optimizer skips parameters without gradients
                param.grad = None
            self._halt(control, f"non-finite gradients at step {state.global_step + 1} (in {bad[0]}"
                                f"{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}); that update was not applied")
        return control

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any):
        logs = logs or {}
        loss = logs.get("loss")
        if isinstance(loss, (int, float)) and not math.isfinite(loss):
            self._halt(control, f"non-finite loss ({loss}) at step {state.global_step}")
        spread = logs.get("frac_reward_zero_std")
        if spread is not None:
            self._zero_spread = self._zero_spread + 1 if spread >= 0.999 else 0
            if self._zero_spread == self.zero_spread_steps:
                logger.warning(
                    "no learning signal: for %d steps every group's rewards were identical (all right or all "
                    "wrong); make the task easier or harder, raise temperature or num_generations", self._zero_spread)
        kl = logs.get("kl")
        if kl is not None and kl > self.kl_warn and not self._kl_warned:
            self._kl_warned = True
            logger.warning("KL to the reference reached %.3g at step %d (> %.3g): the policy is running away; "
                           "lower learning_rate or raise beta", kl, state.global_step, self.kl_warn)
        return control
