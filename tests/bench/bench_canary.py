"""What the sync check can tell apart, per engine dtype: a synced engine against one a step behind.

Runs the GRPO demo recipe (bundled model, vLLM engine, merged sync) for a few
steps per engine dtype (with a reward that has spread in every group, so
every step changes the weights by what the recipe's optimizer moves them) and, at every sync, scores the sync check's probe
with the engine *before* the sync (the weights of the previous step: an
engine one step behind), *after* it (a synced engine), and with the trainer.
The synced engine's gap to the trainer is the check's noise; the
one-step-behind engine's gap is the smallest signal it must catch. The
trainer's side is scored twice: in float32, and with its weights rounded to
the engine's dtype (``bf16 reference``), the reference a bf16 engine can match.

    python tests/bench/bench_canary.py [--steps 8] [--dtypes float32 bfloat16]

Writes ``bench/results/canary.json`` (every sync's figures, and per dtype the
largest synced gap, the smallest one-step-behind gap and their ratio).
"""

from __future__ import annotations

import argparse
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


def measure(dtype: str, steps: int, out: Path) -> list[dict[str, float]]:
    """One GRPO run with the engine in ``dtype``; each sync's gaps."""
    from rlft import grpo
    from rlft.rollout import engine as rollout
    from rlft.training.sync_canary import logprob_gap, model_logprobs

    syncs: list[dict[str, float]] = []
    real_sync = rollout.VLLMEngine.sync_weights

    def sync_weights(self, model):
        if self.probe is None:
            return real_sync(self, model)
        behind = self.probe_logprobs()  # still the previous step's weights
        real_sync(self, model)
        synced = self.probe_logprobs()
        trainer, reference = model_logprobs(model, self.probe), bf16_logprobs(model, self.probe)
        syncs.append({"step": len(syncs) + 1,
                      "synced": logprob_gap(synced, trainer)[0], "behind": logprob_gap(behind, trainer)[0],
                      "synced_vs_bf16_reference": logprob_gap(synced, reference)[0],
                      "behind_vs_bf16_reference": logprob_gap(behind, reference)[0]})
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


def summary(syncs: list[dict[str, float]]) -> dict[str, Any]:
    """The largest synced gap (noise), the smallest one-step-behind gap (signal), and their ratio, per reference."""
    out = {}
    for reference, suffix in (("float32 trainer", ""), ("bf16 reference", "_vs_bf16_reference")):
        noise = max(s["synced" + suffix] for s in syncs)
        signal = min(s["behind" + suffix] for s in syncs)
        out[reference] = {"synced_max": noise, "behind_min": signal, "separation": round(signal / noise, 2)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    args = parser.parse_args()
    report: dict[str, Any] = {"steps": args.steps, "recipe": "recipes/math.yaml", "dtypes": {}}
    with tempfile.TemporaryDirectory(prefix="rlft-canary-") as tmp:
        for dtype in args.dtypes:
            syncs = measure(dtype, args.steps, Path(tmp))
            report["dtypes"][dtype] = {"syncs": syncs, **summary(syncs)}
            print(dtype, report["dtypes"][dtype], flush=True)
    write_result("canary", report)


if __name__ == "__main__":
    main()
