"""What the sync check can tell apart, per engine dtype: a synced engine against one a step behind.

Runs the GRPO demo recipe (bundled model, vLLM engine, merged sync) for a few
steps per engine dtype, with a reward that has spread in every group so that
every step moves the weights as far as the recipe's optimizer does. At every
sync the check's probe is scored by the engine *before* the sync (still the
previous step's weights: an engine one step behind), *after* it (a synced
engine), and by the trainer, in float32 and with its weights in bf16. Three
statistics are compared: the gap to the float32 trainer (the check as it
is), the gap to the trainer in bf16, and how far the engine's move over a
sync differs from the trainer's move since the previous sync (an engine that
lags a step at every sync moves as the trainer did a step earlier). A
synced engine's largest value is the noise, a lagging engine's smallest the
signal; their ratio above 1 means a tolerance between them tells the two
apart at every sync measured. Syncs after a step that did not move the
trainer (the warmup's first, at learning rate 0) are left out.

    python tests/bench/bench_canary.py [--steps 7] [--dtypes float32 bfloat16]

Writes ``bench/results/canary.json``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.common import write_result


def bf16_logprobs(model: Any, ids: list[int]) -> torch.Tensor:
    """The trainer's logprobs of ``ids`` with its weights (and activations) in bfloat16, as a bf16 engine has them."""
    from rlft.training.sync_canary import model_logprobs

    with torch.autocast("cpu", dtype=torch.bfloat16):
        return model_logprobs(model, ids)


def measure(dtype: str, steps: int, out: Path) -> list[dict[str, Any]]:
    """One GRPO run with the engine in ``dtype``; at each sync the probe's per-token logprobs, four ways."""
    from rlft import grpo
    from rlft.rollout import engine as rollout
    from rlft.training.sync_canary import model_logprobs

    syncs: list[dict[str, Any]] = []
    real_sync = rollout.VLLMEngine.sync_weights

    def sync_weights(self, model):
        if self.probe is None:
            return real_sync(self, model)
        behind = self.probe_logprobs()  # still the previous step's weights
        real_sync(self, model)
        syncs.append({"step": len(syncs) + 1, "engine_behind": list(behind), "engine_synced": self.probe_logprobs(),
                      "trainer": model_logprobs(model, self.probe).tolist(),
                      "trainer_bf16": bf16_logprobs(model, self.probe).tolist()})
        return None

    rollout.VLLMEngine.sync_weights = sync_weights
    try:
        grpo.main(["recipes/math.yaml", "--output_dir", str(out / dtype), "--max_steps", str(steps),
                   "--vllm_dtype", dtype, "--sync_check_tolerance", "100", "--eval_before_after", "false",
                   "--num_train_samples", "256", "--save_strategy", "no", "--report_to", "none",
                   "--reward_funcs", "[tests.helpers:length_reward]", "--reward_weights", "[1.0]"])
    finally:
        rollout.VLLMEngine.sync_weights = real_sync
    return syncs


def mean_gap(a: list[float], b: list[float]) -> float:
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)


def figures(syncs: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Per sync after one that trained: the gaps the check could use.

    ``synced``/``behind``: the engine after/before the sync against the float32 trainer (the check as it is);
    ``*_vs_bf16``: against the trainer with bf16 weights; ``moved``: how far the trainer's own logprobs moved since
    the previous sync; ``delta_synced``/``delta_behind``: how far the engine's move over this sync differs from
    the trainer's, for a synced engine and for one that lags a step at every sync (its move is the previous one).
    """
    out = []
    for prev, now in itertools.pairwise(syncs):
        moved = mean_gap(now["trainer"], prev["trainer"])
        engine_move = [a - b for a, b in zip(now["engine_synced"], now["engine_behind"])]
        lagging_move = [a - b for a, b in zip(prev["engine_synced"], prev["engine_behind"])]
        trainer_move = [a - b for a, b in zip(now["trainer"], prev["trainer"])]
        out.append({"step": now["step"], "moved": moved,
                    "synced": mean_gap(now["engine_synced"], now["trainer"]),
                    "behind": mean_gap(now["engine_behind"], now["trainer"]),
                    "synced_vs_bf16": mean_gap(now["engine_synced"], now["trainer_bf16"]),
                    "behind_vs_bf16": mean_gap(now["engine_behind"], now["trainer_bf16"]),
                    "delta_synced": mean_gap(engine_move, trainer_move),
                    "delta_behind": mean_gap(lagging_move, trainer_move)})
    return out


def summary(rows: list[dict[str, float]]) -> dict[str, Any]:
    """Per statistic: the largest value for a synced engine (noise), the smallest for one a step behind (signal),
    and their ratio (above 1: a tolerance between them tells the two apart at every sync measured)."""
    out = {}
    for name, synced, behind in (("gap to the float32 trainer", "synced", "behind"),
                                 ("gap to the trainer in bf16", "synced_vs_bf16", "behind_vs_bf16"),
                                 ("move against the trainer's move", "delta_synced", "delta_behind")):
        noise, signal = max(r[synced] for r in rows), min(r[behind] for r in rows)
        out[name] = {"synced_max": noise, "behind_min": signal, "separation": round(signal / noise, 2)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    args = parser.parse_args()
    report: dict[str, Any] = {"steps": args.steps, "recipe": "recipes/math.yaml", "dtypes": {}}
    with tempfile.TemporaryDirectory(prefix="rlft-canary-") as tmp:
        for dtype in args.dtypes:
            rows = [r for r in figures(measure(dtype, args.steps, Path(tmp))) if r["moved"] > 1e-3]
            report["dtypes"][dtype] = {"syncs": rows, "summary": summary(rows)}
            print(dtype, report["dtypes"][dtype]["summary"], flush=True)
    write_result("canary", report)


if __name__ == "__main__":
    main()
