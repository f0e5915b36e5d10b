"""``rlft merge``: fold a run's adapter chain into its base and save a plain model directory.

    rlft merge runs/pipeline/grpo runs/grpo-merged [--dtype bfloat16] [--overwrite]

A LoRA stage saves only its own adapter; after SFT → DPO → GRPO the GRPO
directory's adapter sits on the DPO-merged weights, so plain ``peft`` on the
raw base would load the wrong model (see :mod:`rlft.stage.preference`). This
command writes what every other tool can load with no rlft installed:
``AutoModelForCausalLM.from_pretrained(out)``, ``vllm.LLM(model=out)``,
llama.cpp's converter. The tokenizer (with its chat template) is saved
alongside, and ``rlft_merged.json`` records the chain it came from. The
directory is written under a temporary name and renamed into place, so an
interrupted merge leaves nothing half-written.

Example:
    >>> main(["runs/sft", "runs/sft-merged"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

from rlft.core.errors import UserError, run_cli
from rlft.core.models import load_model, load_tokenizer, resolve_model
from rlft.core.run_dir import PARTIAL
from rlft.core.runtime import setup_logging


def merge(run_dir: str, out: Path, dtype: str | None = None) -> dict:
    """Write the merged model of ``run_dir`` (an adapter chain, or a plain model) to ``out``; return its provenance.

    Example:
        >>> merge("runs/sft", Path("runs/sft-merged"))["adapters"]  # doctest: +SKIP
        ['/work/runs/sft']
    """
    resolved = resolve_model(run_dir)
    model = load_model(run_dir, dtype)
    tokenizer = load_tokenizer(run_dir)
    staging = out.with_name(f"{PARTIAL}{out.name}")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    provenance = {"source": str(run_dir), "base": str(resolved.base),
                  "adapters": [str(a) for a in resolved.adapters], "dtype": str(model.dtype).removeprefix("torch.")}
    (staging / "rlft_merged.json").write_text(json.dumps(provenance, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    return provenance


def main(argv: Sequence[str] | None = None) -> dict:
    """``rlft merge RUN_DIR OUT_DIR``: see the module docstring."""
    parser = argparse.ArgumentParser(prog="rlft merge", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="an rlft run directory (its adapters are merged in order) or a model")
    parser.add_argument("out_dir", help="where the merged model goes (a new directory)")
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                        help="weights dtype (default: the base model's)")
    parser.add_argument("--overwrite", action="store_true", help="replace out_dir if it exists")
    args = parser.parse_args(argv)

    setup_logging()
    out = Path(args.out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.overwrite:
        raise UserError(f"out_dir {out} already exists; pass --overwrite to replace it or choose another directory")
    if Path(args.run_dir).resolve() == out.resolve():
        raise UserError("out_dir must differ from run_dir: the merge reads the run while it writes")
    provenance = merge(args.run_dir, out, args.dtype)
    print(f"merged {len(provenance['adapters'])} adapter(s) of {args.run_dir} into {out}")
    return provenance


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
