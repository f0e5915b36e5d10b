"""The model card every finished run gets: ``README.md`` in the Hugging Face format, with the evidence.

YAML metadata (``huggingface_hub.ModelCardData``: base model, library,
license, datasets, tags), then what was trained (the stage chain, the recipe,
seed, versions, commit), the closing before/after table with its intervals,
base-vs-trained samples from ``before_after.jsonl``, how to use it and the
exact commands that reproduce it. It replaces the generic card TRL's
``save_model`` writes (which names the base ``None`` and a local cache path).

Example:
    >>> hub_base("bundled:smollm2-135m-instruct")
    ('HuggingFaceTB/SmolLM2-135M-Instruct', 'apache-2.0')
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData, try_to_load_from_cache

from rlft.core.files import write_atomic
from rlft.core.recipe import load_recipe_file
from rlft.evaluation.report import format_table

# what the bundled models are on the hub, and their licenses (the GGUF packages say so)
BUNDLED_ON_HUB = {"smollm2-135m-instruct": ("HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0")}
SAMPLES = 3  # base-vs-trained examples shown


def hub_base(base: str) -> tuple[str | None, str | None]:
    """A recorded base as a hub id (``None`` for a local path) and its license when its own card says it.

    The base's card is read from disk only: a local model's ``README.md``, or
    the copy in the Hugging Face cache (``try_to_load_from_cache``; no network).
    """
    if base.startswith("bundled:"):
        return BUNDLED_ON_HUB.get(base.split(":", 1)[1], (None, None))
    local = Path(base).expanduser()
    if base.startswith("/") or local.is_dir():
        return None, _card_license(local / "README.md")

    cached = try_to_load_from_cache(base, "README.md")
    return base, _card_license(Path(cached)) if isinstance(cached, str) else None


def _card_license(path: Path) -> str | None:
    if not path.is_file():
        return None

    try:
        return ModelCard.load(path).data.to_dict().get("license")
    except Exception:  # noqa: BLE001 - a malformed card of someone else's must not fail the run
        return None


def chain_of(run_dir: Path, manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """(stage, where) from the bottom base up to this run."""
    steps: list[tuple[str, str]] = [(manifest.get("stage", "?"), str(run_dir))]
    base = manifest.get("base_model", "")
    for _ in range(16):  # an adapter chain is short; never loop on a cycle
        record = Path(base) / "rlft_manifest.json"
        if not record.is_file():
            break
        earlier = json.loads(record.read_text())
        steps.insert(0, (earlier.get("stage", "?"), base))
        base = earlier.get("base_model", "")
    return [("base", base), *steps]


def _samples(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "before_after.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()[:SAMPLES]]


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, list):
        return "\n".join(str(m.get("content", "")) for m in prompt if m.get("role") == "user")
    return str(prompt)


def metadata(run_dir: Path, manifest: dict[str, Any], merged: bool = False) -> Any:
    """The card's YAML metadata as ``huggingface_hub.ModelCardData`` (``merged``: for the run merged into its base)."""
    chain = chain_of(run_dir, manifest)
    hub_id, license_ = hub_base(chain[0][1])
    recipe = _recipe(run_dir)
    dataset = str(recipe.get("dataset_name", ""))
    hub_dataset = "/" in dataset and not Path(dataset).exists() and not dataset.startswith("task:")
    adapter = (run_dir / "adapter_config.json").is_file() and not merged
    kind = "lora" if adapter else "merged" if merged else "full"
    return ModelCardData(base_model=hub_id, license=license_, library_name="peft" if adapter else "transformers",
                         datasets=[dataset] if hub_dataset else None, pipeline_tag="text-generation",
                         tags=["rlft", *dict.fromkeys(s for s, _ in chain[1:]), kind])


def _recipe(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "recipe.yaml"
    return load_recipe_file(path) if path.is_file() else {}


def model_card(run_dir: str | Path, manifest: dict[str, Any], merged: bool = False) -> str:
    """The card's text for a finished run (``manifest``: its ``rlft_manifest.json``; ``merged``: of its merged model)."""
    run_dir = Path(run_dir)
    chain = chain_of(run_dir, manifest)
    card = ["---", metadata(run_dir, manifest, merged).to_yaml(), "---", "", f"# {run_dir.name}", ""]
    card += [f"Trained with rlft from `{chain[0][1]}`: "
             + " → ".join(f"{stage} (`{where}`)" if stage != "base" else "base" for stage, where in chain) + ".", ""]
    table = (manifest.get("results") or {}).get("table")
    if table:
        card += ["## Before and after", "", ("Greedy answers to held-out prompts, scored by the recipe's rewards "
                 "(95 % bootstrap intervals; the change is paired against the base):"), "",
                 "```", format_table(table), "```", ""]
    rollout = (manifest.get("results") or {}).get("rollout")
    if rollout:
        card += [f"Rollouts: {rollout.get('engine')} engine" + (f", {rollout['sync']} sync" if rollout.get("sync")
                                                                 else "") + ".", ""]
    samples = _samples(run_dir)
    if samples:
        card += ["## Samples (base vs trained)", ""]
        for s in samples:
            card += [f"**Prompt:** {_prompt_text(s['prompt'])}", "", f"- gold: `{s.get('answer')}`",
                     f"- base ({s.get('score_base')}): {json.dumps(s.get('base'))}",
                     f"- trained ({s.get('score_trained')}): {json.dumps(s.get('trained'))}", ""]
    card += [("The general-skills check by category (what training may have cost elsewhere) is `rlft eval "
             f"recipes/eval_math.yaml --models base {run_dir}`."), ""]
    system = _recipe(run_dir).get("system_prompt")
    if system:  # the model learned to answer after this turn: users should open with it too
        card += ["## System prompt", "", ("Every training and evaluation prompt opened with this system turn; give "
                                          "the model the same:"), "", "```", str(system), "```", ""]
    card += ["## Use", "", "```bash", f"rlft chat {run_dir}", f"rlft generate {run_dir} --prompt \"...\"",
             f"rlft merge {run_dir} --out merged   # a plain transformers/vLLM model", "```", ""]
    versions = manifest.get("versions") or {}
    card += ["## Reproduce", "", "```bash", f"git checkout {manifest.get('git_commit') or '<commit>'}",
             manifest.get("command") or f"rlft {manifest.get('stage')} {run_dir}/recipe.yaml", "```", "",
             f"Seed {manifest.get('seed')}; launch {json.dumps(manifest.get('launch') or {})}. Versions: "
             + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) + ".", "",
             "The resolved recipe (`recipe.yaml`):", "", "```yaml", _recipe_text(run_dir), "```", ""]
    return "\n".join(card)


def _recipe_text(run_dir: Path) -> str:
    path = run_dir / "recipe.yaml"
    return path.read_text().strip() if path.is_file() else "(none)"


def write_model_card(run_dir: str | Path, manifest: dict[str, Any], target: str | Path | None = None,
                     merged: bool = False) -> Path:
    """Write the run's card as ``README.md`` (atomically) into ``target`` (default: ``run_dir``); returns its path."""
    path = Path(target or run_dir) / "README.md"
    write_atomic(path, model_card(run_dir, manifest, merged))
    return path
