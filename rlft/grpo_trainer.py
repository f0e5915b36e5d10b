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

import logging
from collections import Counter
from collections.abc import Iterable
from typing import Any

from trl import GRPOTrainer

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


class RlftGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` whose logs also carry reward timeouts and ``None`` counts per interval."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last_counters: dict[str, int] = {}

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs or any(k.startswith("rewards/") for k in logs):  # a training log, not the summary
            now = reward_counters(self.reward_funcs)
            for key, value in now.items():
                logs[key] = value - self._last_counters.get(key, 0)
            self._last_counters = now
        super().log(logs, start_time)
