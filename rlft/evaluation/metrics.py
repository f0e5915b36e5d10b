"""Evaluation statistics: unbiased pass@k and paired bootstrap intervals.

Both are a few lines of arithmetic; rlft's pinned dependencies carry no
statistics library (no scipy), and these formulas are standard:

- pass@k from n samples with c correct: ``1 - C(n-c, k) / C(n, k)`` (Chen et
  al., 2021), computed as a product so large n does not overflow.
- The difference of two models' per-prompt scores on the same prompts, with a
  95 % percentile bootstrap interval over prompts (paired: each resample
  draws prompts, and both models' scores on them).

Example:
    >>> round(pass_at_k(n=10, c=3, k=1), 3)
    0.3
    >>> pass_at_k(n=5, c=5, k=2)
    1.0
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples (drawn from n, c of them correct) is correct.

    Example:
        >>> pass_at_k(n=4, c=1, k=2)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
        0.5
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def paired_bootstrap(a: Sequence[float], b: Sequence[float], resamples: int = 2000, seed: int = 0,
                     confidence: float = 0.95) -> dict[str, float]:
    """Mean of ``b - a`` over prompts, with a percentile bootstrap interval (seeded: reruns agree).

    Example:
        >>> out = paired_bootstrap([0, 0, 1, 0] * 25, [1, 0, 1, 1] * 25)
        >>> out["diff"], out["low"] > 0
        (0.5, True)
    """
    if len(a) != len(b) or not a:
        raise ValueError(f"paired_bootstrap needs two equally long, non-empty score lists ({len(a)} vs {len(b)})")
    out = bootstrap_mean([y - x for x, y in zip(a, b)], resamples, seed, confidence)
    return {"diff": out["mean"], "low": out["low"], "high": out["high"]}


def bootstrap_mean(scores: Sequence[float], resamples: int = 2000, seed: int = 0,
                   confidence: float = 0.95) -> dict[str, float]:
    """Mean of ``scores`` with a percentile bootstrap interval (seeded: reruns agree).

    Example:
        >>> bootstrap_mean([1.0, 1.0, 1.0])
        {'mean': 1.0, 'low': 1.0, 'high': 1.0}
    """
    if not scores:
        raise ValueError("bootstrap_mean needs at least one score")
    n = len(scores)
    rng = random.Random(seed)
    means = sorted(sum(scores[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    tail = (1.0 - confidence) / 2
    return {"mean": sum(scores) / n, "low": means[int(tail * (resamples - 1))],
            "high": means[round((1 - tail) * (resamples - 1))]}
