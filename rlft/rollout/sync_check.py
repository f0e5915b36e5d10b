"""The sync check's settings and figures: its probe length, its tolerance by precision, its manifest entry.

Kept apart from the engines (rlft's, :mod:`rlft.rollout.engine`, and TRL's
colocated one, :mod:`rlft.rollout.colocate`), which both use them, and from the
check itself (:mod:`rlft.training.sync_canary`, which needs torch): a recipe
is read without importing either.

Example:
    >>> sync_tolerance("auto", "float32", trainer_bf16=False) == SYNC_TOLERANCE["float32"]
    True
"""

from __future__ import annotations

from typing import Any

PROBE_COMPLETION_TOKENS = 32  # the sync check's probe: the first rollout's first prompt + this much of its completion


# The sync check's tolerance on the mean per-token |engine - trainer| logprob gap over its probe, in nats,
# by the lower of the engine's and the trainer's precisions. Measured on the bundled model (math task, lr
# 3e-4 after the recipe's 2 warmup steps; docs/stages.md, "The sync check"): 20 healthy float32 syncs
# (merged, adapter, DoRA) gave 5.6e-6 to 8.8e-6, an engine that missed one step of learning (at the warmup's
# 1.5e-4) 0.029, and 0.128 at lr 1e-3: 1e-3 is 110x above the first and 29x below the second. With a
# bfloat16 engine its own rounding gave 0.031 to 0.074 on 20 healthy syncs (merged and adapter, trainer in
# float32 or bf16), as much as several steps of learning (a never-synced engine: 0.041, 0.057, 0.086 after
# steps 1-3): 0.2 stays 2.7x above healthy, so there the check catches only an engine far behind.
SYNC_TOLERANCE = {"float32": 1e-3, "bfloat16": 0.2}


def sync_tolerance(setting: str | float, engine_dtype: str, trainer_bf16: bool) -> float:
    """The sync check's tolerance: the recipe's number, or for ``auto`` :data:`SYNC_TOLERANCE` by precision.

    float16 counts as bfloat16 (it rounds less, so bf16's tolerance holds for it).

    Example:
        >>> sync_tolerance("auto", "float32", trainer_bf16=False) == SYNC_TOLERANCE["float32"]
        True
        >>> sync_tolerance(0.5, "bfloat16", trainer_bf16=True)
        0.5
    """
    if setting != "auto":
        return float(setting)
    exact = engine_dtype == "float32" and not trainer_bf16
    return SYNC_TOLERANCE["float32" if exact else "bfloat16"]


def probe_scores(result: Any, probe: list[int]) -> list[float]:
    """Each probe token's logprob after the first, from a vLLM result with ``prompt_logprobs=0``."""
    return [scores[tok].logprob for scores, tok in zip(result.prompt_logprobs[1:], probe[1:], strict=True)]


def sync_check_summary(engine: Any) -> dict[str, Any] | None:
    """The sync check's manifest entry: the worst logged gap figures over the run (``None`` when it is off).

    ``engine`` has ``sync_check``, ``sync_tolerance``, ``probe`` and ``sync_checks``
    (rlft's engine, or TRL's colocated one wrapped by :mod:`rlft.rollout.colocate`).

    Example:
        >>> sync_check_summary(type("E", (), {"sync_check": True, "sync_tolerance": 1e-3, "probe": [1, 2],
        ...     "sync_checks": [{"gap": 1e-5, "gap_max": 2e-5, "seconds": 0.5}]})())["logprob_gap"]
        1e-05
    """
    if not engine.sync_check:
        return None
    checks = engine.sync_checks
    return {"tolerance": engine.sync_tolerance, "checks": len(checks), "probe_tokens": len(engine.probe or []),
            "logprob_gap": max((c["gap"] for c in checks), default=None),
            "logprob_gap_max": max((c["gap_max"] for c in checks), default=None),
            "seconds_mean": round(sum(c["seconds"] for c in checks) / len(checks), 3) if checks else None}


