"""Every GRPO loss TRL 1.16 offers, GSPO and a KL term, two steps each on the bundled model with the vLLM engine.

The tests train each variant on the tiny model with the hf engine
(``tests/test_loss_variants.py``); this runs them as the demo does: the
bundled model, ``recipes/math.yaml``, rlft's vLLM engine (merged sync, the
sync check on). Per variant it records both steps' losses, whether every LoRA
B matrix moved, and the sync check's gap against its tolerance. A reward with
spread in every group (``tests.helpers:length_reward``) makes each step train.

    python tests/bench/bench_losses.py [--only dapo gspo]

Writes ``bench/results/losses.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.common import ROOT, write_result
from tests.test_loss_variants import GRPO_VARIANTS, adapter_moved, losses

# VESPO weighs sequences itself: with the vLLM engine TRL wants token-level importance sampling
ENGINE_NEEDS = {"vespo": ["--vllm_importance_sampling_mode", "token_truncate"]}
# two prompts x 8 completions of up to 32 tokens per step: the recipe's sampling, a smaller batch; no warmup, so
# that step 1 trains: the sync checked after it follows a real update, and step 2's KL term has a policy to measure
RUN = ["recipes/math.yaml", "--max_steps", "2", "--warmup_steps", "0", "--logging_steps", "1", "--save_strategy", "no",
       "--report_to",
       "none", "--eval_before_after", "false", "--num_train_samples", "64", "--engine", "vllm",
       "--per_device_train_batch_size", "16", "--gradient_accumulation_steps", "1", "--max_completion_length", "32",
       "--reward_funcs", "[tests.helpers:length_reward]", "--reward_weights", "[1.0]"]


def run_variant(name: str, overrides: list[str], out: Path) -> dict[str, Any]:
    """One variant in a process of its own (an engine's memory is not all returned to the system when it closes)."""
    began = time.perf_counter()
    argv = [sys.executable, "-m", "rlft.grpo", *RUN, *overrides, *ENGINE_NEEDS.get(name, []), "--output_dir", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        return {"variant": name, "error": done.stderr.strip().splitlines()[-1:], "finite": False,
                "adapter_moved": False, "sync_ok": False, "engine": None, "losses": [], "sync_gap": None,
                "sync_tolerance": None, "overrides": overrides, "seconds": round(time.perf_counter() - began, 1)}
    manifest = json.loads((out / "rlft_manifest.json").read_text())
    logged = losses(out)
    rollout = manifest["results"]["rollout"]
    check = rollout.get("sync_check") or {}
    return {"variant": name, "overrides": overrides + ENGINE_NEEDS.get(name, []), "engine": rollout["engine"],
            "losses": logged, "finite": len(logged) == 2 and all(math.isfinite(v) for v in logged),
            "adapter_moved": adapter_moved(out), "sync_gap": check.get("logprob_gap"),
            "sync_tolerance": check.get("tolerance"),
            "sync_ok": check.get("logprob_gap") is not None and check["logprob_gap"] <= check["tolerance"],
            "seconds": round(time.perf_counter() - began, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="variant names (default: all)")
    args = parser.parse_args()
    variants = [v for v in GRPO_VARIANTS if not args.only or v[0] in args.only]
    rows = []
    with tempfile.TemporaryDirectory(prefix="rlft-losses-") as tmp:
        for name, overrides, _ in variants:
            row = run_variant(name, overrides, Path(tmp) / name)
            rows.append(row)
            print(json.dumps(row), flush=True)
    trained = [r["variant"] for r in rows if r["finite"] and r["adapter_moved"] and r["sync_ok"] and r["engine"] == "vllm"]
    write_result("losses", {"recipe": "recipes/math.yaml", "variants": rows, "trained": trained,
                            "all_trained": len(trained) == len(rows)})


if __name__ == "__main__":
    main()
