"""Recipes written for TRL's earlier releases and the scripts around it (TRL's examples, open-r1), read by rlft.

A TRL user's recipe carries keys that TRL 1.x or transformers 5 renamed or
removed, and keys of the scripts that wrap TRL (open-r1's
``GRPOScriptArguments`` and ``GRPOConfig``). Each is listed once here, with
the release that changed it:

- :data:`MAPPED`: rlft has the setting under another name (or another
  value): the key is read as rlft's, with one deferred note naming both;
- :data:`NO_EQUIVALENT`: nothing in rlft does what the key did: refused in
  one line saying what changed and what to do instead.

A mapped key applies only where the stage has the key it maps to (``use_vllm``
means ``engine`` in GRPO; an SFT recipe with it is told the key is unknown).

Example:
    >>> translate({"torch_dtype": "bfloat16", "use_vllm": True}, {"dtype", "engine"}, "in r.yaml")
    {'dtype': 'bfloat16', 'engine': 'vllm'}
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Any

from rlft.core.errors import UserError
from rlft.core.runtime import defer_warning


@dataclass(frozen=True)
class Mapped:
    """An old key read as rlft's ``new``, its value converted by ``value`` (``None``: kept)."""

    new: str
    why: str
    value: Callable[[Any], Any] | None = None


def _engine(use_vllm: Any) -> str:
    if isinstance(use_vllm, str):
        use_vllm = use_vllm.strip().lower() in ("true", "yes", "1", "on")
    return "vllm" if use_vllm else "hf"


#: {old key: Mapped}. Sources: transformers 4.56 (``torch_dtype`` -> ``dtype``), transformers 5.0 release notes
#: (``overwrite_output_dir`` and ``warmup_ratio`` removed; ``warmup_steps`` below 1 is a ratio of the steps),
#: TRL's ``GRPOConfig`` (``use_vllm``), open-r1's ``GRPOScriptArguments`` (``dataset_prompt_column``).
MAPPED: dict[str, Mapped] = {
    "torch_dtype": Mapped("dtype", "transformers 4.56 and TRL renamed it"),
    "dataset_prompt_column": Mapped("prompt_column", "open-r1's name for it"),
    "overwrite_output_dir": Mapped("overwrite", "transformers 5 removed it; rlft's overwrite replaces the run"),
    "warmup_ratio": Mapped("warmup_steps", "transformers 5 removed it; a warmup_steps below 1 is that fraction of "
                                          "the steps"),
    "use_vllm": Mapped("engine", "TRL's switch; rlft's engine: vllm is TRL's colocate mode on CUDA and rlft's "
                                 "engine on CPU", _engine),
    "per_device_eval_batch_size": Mapped("eval_batch_size", "rlft evaluates by greedy generation, in batches of "
                                                            "eval_batch_size"),
}

_REWARD_SETTING = ("a setting of open-r1's reward functions: give it to the reward that reads it, in "
                   "reward_kwargs: {reward_name: {key: value}}")
_WANDB = "set WANDB_ENTITY / WANDB_PROJECT / WANDB_RUN_GROUP in the environment (report_to: [wandb])"
_HUB = "rlft push RUN_DIR --repo_id ID publishes a finished run (its card and the model rlft evaluated)"

#: {old key: what to do instead}: keys of TRL's scripts and open-r1 with no rlft equivalent.
NO_EQUIVALENT: dict[str, str] = {
    "benchmarks": "open-r1's post-training benchmarks: rlft scores during training with eval_steps, and rlft eval "
                  "compares checkpoints",
    "callbacks": "open-r1's callbacks (hub pushes per checkpoint): rlft push publishes a finished run",
    "chat_template": "write the template to a file and set chat_template_path",
    "dataset_mixture": "mix the datasets into one file (JSONL) and give it as dataset_name",
    "dataset_streaming": "rlft reads a dataset whole (its splits are cut and checked before training); drop it",
    "gradient_checkpointing_use_reentrant": "use gradient_checkpointing_kwargs: {use_reentrant: ...}",
    "ignore_bias_buffers": "rlft trains through TRL's trainers, which handle bias buffers; drop it",
    "hub_model_revision": _HUB, "push_to_hub_revision": _HUB, "overwrite_hub_revision": _HUB,
    "wandb_entity": _WANDB, "wandb_project": _WANDB, "wandb_run_group": _WANDB,
    "wandb_log_unique_prompts": "log_completions writes every prompt and completion to the run's log",
    **{key: _REWARD_SETTING for key in (
        "cosine_min_value_wrong", "cosine_max_value_wrong", "cosine_min_value_correct", "cosine_max_value_correct",
        "cosine_max_len", "repetition_n_grams", "repetition_max_penalty", "code_language",
        "code_eval_test_batch_size", "code_eval_scoring_mode", "parallel_code_exec_per_proc", "e2b_router_url",
        "morph_router_url", "code_provider", "ioi_provider", "max_completion_len", "soft_punish_cache")},
}


def translate(values: dict[str, Any], known: Container[str], source: str, warn: bool = True) -> dict[str, Any]:
    """``values`` with TRL-era keys read as rlft's (a deferred note each, when ``warn``) or refused in one line.

    A mapped key is read as rlft's wherever the parse has rlft's key, even
    where TRL's config still has the old one (``use_vllm``,
    ``per_device_eval_batch_size``: rlft decides those); a key without an
    equivalent is refused only where the parse does not know it.

    Example:
        >>> translate({"wandb_project": "x"}, set(), "in r.yaml")
        Traceback (most recent call last):
        ...
        rlft.core.errors.UserError: wandb_project (in r.yaml) is not an rlft key: set WANDB_ENTITY / WANDB_PROJECT / WANDB_RUN_GROUP in the environment (report_to: [wandb])
    """
    out = {}
    for key, value in values.items():
        mapped = MAPPED.get(key)
        if mapped is not None and mapped.new in known:
            if mapped.new in values:
                raise UserError(f"recipe keys '{key}' and '{mapped.new}' ({source}) are the same setting in rlft; "
                                f"keep '{mapped.new}'")
            out[mapped.new] = mapped.value(value) if mapped.value else value
            shown = f"{mapped.new}: {out[mapped.new]}" if mapped.value else f"'{mapped.new}'"
            if warn:
                defer_warning(f"recipe key '{key}' ({source}) is read as {shown} ({mapped.why})")
        elif key in known or key not in NO_EQUIVALENT:
            out[key] = value  # rlft's own, or unknown (named as such by the parse)
        else:
            raise UserError(f"{key} ({source}) is not an rlft key: {NO_EQUIVALENT[key]}")
    return out
