"""Every loss TRL 1.16 offers trains through rlft: GRPO's loss types, GSPO, a KL term against its reference, DPO's.

Mechanics on the tiny model with the hf engine (two steps each): the loss is finite, the adapter moved, and the
run's recorded recipe names the variant. The same variants on the bundled model with the vLLM engine are
``tests/bench/bench_losses.py``.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml
from safetensors.torch import load_file

from rlft import dpo, grpo
from rlft.stage.parsing import CHOICES
from tests.helpers import tiny_model_dir, write_pairs

TINY = ["--model_name_or_path", str(tiny_model_dir()), "--max_steps", "2", "--logging_steps", "1",
        "--save_strategy", "no", "--report_to", "none", "--eval_before_after", "false", "--learning_rate", "1e-3",
        "--warmup_steps", "0", "--bf16", "false"]
GRPO_TINY = ["recipes/math.yaml", *TINY, "--per_device_train_batch_size", "8", "--num_generations", "4",
             "--max_completion_length", "12", "--num_train_samples", "16", "--num_test_samples", "4",
             "--log_completions", "false", "--engine", "hf",
             "--reward_funcs", "[tests.helpers:length_reward]", "--reward_weights", "[1.0]"]  # spread in every group

# (id, recipe overrides, what TRL's config must say)
SEQUENCE = {"luspo": ["--importance_sampling_level", "sequence"]}  # LUSPO is a sequence-level loss
GRPO_VARIANTS = [(loss, ["--loss_type", loss, "--beta", "0", *SEQUENCE.get(loss, [])], {"loss_type": loss, "beta": 0.0})
                 for loss in CHOICES["grpo"]["loss_type"]] + [
    ("gspo", ["--loss_type", "grpo", "--importance_sampling_level", "sequence", "--beta", "0"],
     {"importance_sampling_level": "sequence"}),
    ("kl-reference", ["--loss_type", "dapo", "--beta", "0.04"], {"beta": 0.04}),
]


def losses(out) -> list[float]:
    rows = [json.loads(line) for line in (out / "log_history.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


def adapter_moved(out) -> bool:
    return any(torch.count_nonzero(t) > 0 for k, t in load_file(out / "adapter_model.safetensors").items()
               if "lora_B" in k)


@pytest.mark.slow
@pytest.mark.parametrize(("overrides", "config"), [v[1:] for v in GRPO_VARIANTS], ids=[v[0] for v in GRPO_VARIANTS])
def test_each_grpo_loss_trains_two_steps(overrides, config, tmp_path):
    out = tmp_path / "run"
    grpo.main([*GRPO_TINY, *overrides, "--output_dir", str(out)])
    logged = losses(out)
    assert len(logged) == 2 and all(math.isfinite(v) for v in logged), logged
    assert adapter_moved(out), "the adapter must move"
    recipe = yaml.safe_load((out / "recipe.yaml").read_text())
    assert {k: recipe[k] for k in config} == config


DPO_LOSSES = [loss for loss in CHOICES["dpo"]["loss_type"]]


@pytest.mark.slow
@pytest.mark.parametrize("loss", DPO_LOSSES)
def test_each_dpo_loss_trains_two_steps(loss, tmp_path):
    out = tmp_path / "run"
    dpo.main(["recipes/dpo.yaml", *TINY, "--dataset_name", str(write_pairs(tmp_path / "pairs.jsonl")),
                         "--per_device_train_batch_size", "2", "--max_length", "64", "--loss_type", f"[{loss}]",
                         "--loss_weights", "[1.0]", "--output_dir", str(out),
                         *(["--label_smoothing", "0.001"] if loss == "exo_pair" else [])])
    logged = losses(out)
    assert len(logged) == 2 and all(math.isfinite(v) for v in logged), logged
    assert adapter_moved(out), "the adapter must move"
    assert yaml.safe_load((out / "recipe.yaml").read_text())["loss_type"] == [loss]
