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
# by the lower of the engine's and the trainer's precisions. Measured on the bundled model (make bench-canary,
# bench/results/canary.json: the demo recipe, lr 3e-4, every step training; at each sync the engine scored the
# probe before the sync, i.e. one step behind, and after it): in float32 a synced engine was 7.2e-6 at most off
# the trainer and one a step behind 0.033 at least, so 1e-3 sits 138x above the one and 33x below the other. In
# bfloat16 the engine's own rounding was up to 0.055 and a step behind 0.062 at least (1.12x apart over 4 syncs;
# comparing the engine's move over a sync with the trainer's did worse, 0.52x): no tolerance tells one step from
# noise there, so 0.2 (2.7x above the largest healthy bf16 gap of earlier runs, 0.074) catches an engine far
# behind, and the run says so (:func:`catches`); an engine and a trainer in float32 are the one-step check.
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


def catches(tolerance: float) -> str:
    """What the check at ``tolerance`` can see (the manifest and the run's log say it).

    Example:
        >>> catches(SYNC_TOLERANCE["float32"])
        'an engine one step behind'
    """
    if tolerance <= SYNC_TOLERANCE["float32"]:
        return "an engine one step behind"
    return ("an engine far behind, not one step: in bfloat16 the engine's rounding is as large as a step of "
            "learning (bench/results/canary.json); an engine and a trainer in float32 (vllm_dtype: float32, "
            "bf16: false) check to one step")


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
    return {"tolerance": engine.sync_tolerance, "catches": catches(engine.sync_tolerance), "checks": len(checks),
            "probe_tokens": len(engine.probe or []),
            "logprob_gap": max((c["gap"] for c in checks), default=None),
            "logprob_gap_max": max((c["gap_max"] for c in checks), default=None),
            "seconds_mean": round(sum(c["seconds"] for c in checks) / len(checks), 3) if checks else None}


