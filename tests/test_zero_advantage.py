"""Zero-advantage rows skip the training pass: same loss and gradient as TRL's, fewer rows through the model."""

from __future__ import annotations

import logging

import pytest
import torch

from rlft.training.batch_rows import why_not_exact
from rlft.training.zero_advantage import drop_zero_advantage_rows


def batch(advantages, mask):
    mask = torch.tensor(mask)
    return {"advantages": torch.tensor(advantages), "completion_mask": mask,
            "completion_ids": torch.arange(mask.numel()).reshape(mask.shape),
            "sampling_per_token_logps": -torch.ones(mask.shape), "importance_sampling_ratio": torch.ones(len(mask), 1),
            "prompt_ids": torch.ones(len(mask), 5), "num_items_in_batch": torch.tensor(9), "flag": torch.tensor(True)}


def test_rows_with_zero_advantage_go_and_so_do_the_columns_only_they_used():
    out = drop_zero_advantage_rows(batch([0.0, -0.7, 1e-9, 0.7], [[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0],
                                                                   [1, 0, 0, 0]]))
    assert out["advantages"].tolist() == pytest.approx([-0.7, 0.7])
    assert out["completion_ids"].tolist() == [[4, 5], [12, 13]]  # width 4 -> 2: the longest kept row
    assert out["sampling_per_token_logps"].shape == (2, 2) and out["importance_sampling_ratio"].shape == (2, 1)
    assert out["prompt_ids"].shape == (2, 5)  # prompts are left-padded: their columns stay
    assert int(out["num_items_in_batch"]) == 9 and bool(out["flag"])  # TRL's normalizer is untouched


def test_all_zero_keeps_the_shortest_row_and_nothing_to_drop_returns_the_batch_itself():
    out = drop_zero_advantage_rows(batch([0.0, 0.0, 0.0], [[1, 1, 1], [1, 0, 0], [1, 1, 0]]))
    assert out["completion_ids"].tolist() == [[3]]
    full = batch([0.5, -0.5], [[1, 0], [1, 1]])
    assert drop_zero_advantage_rows(full) is full


def test_token_level_advantages_keep_a_row_with_any_non_zero_token():
    out = drop_zero_advantage_rows(batch([[0.0, 0.0], [0.0, 0.3]], [[1, 1], [1, 1]]))
    assert out["advantages"].tolist() == [[0.0, pytest.approx(0.3)]]


@pytest.mark.parametrize("settings, words", [
    ({"loss_type": "grpo", "beta": 0.0}, "loss_type 'grpo'"),
    ({"loss_type": "dapo", "beta": 0.04}, "beta is 0.04"),
    ({"loss_type": "dapo", "beta": 0.0, "top_entropy_quantile": 0.2}, "top_entropy_quantile"),
    ({"loss_type": "dapo", "beta": 0.0, "accelerator": type("A", (), {"num_processes": 2})()}, "2 processes"),
])
def test_settings_where_skipping_would_change_the_gradient_are_named(settings, words):
    assert words in why_not_exact(type("Trainer", (), settings)())


def test_dapo_without_kl_is_exact():
    assert why_not_exact(type("Trainer", (), {"loss_type": "dapo", "beta": 0.0, "top_entropy_quantile": 1.0})()) is None


# -- on a real trainer: TRL's loss and gradient, from half the rows ---------------------------


class TwoGroups:
    """Fixed completions: the first prompt's four differ in length (length_reward spreads), the second's do not."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer, self.trainer = tokenizer, None

    def rollout_func(self, prompts, trainer):
        from rlft.rollout.vllm_runtime import encode_prompt

        lengths = [1, 2, 3, 4, 7, 7, 7, 7]
        completions = [self.tokenizer(" apple" * n, add_special_tokens=False)["input_ids"] for n in lengths]
        return {"prompt_ids": [encode_prompt(self.tokenizer, p) for p in prompts], "completion_ids": completions,
                "logprobs": [[-2.0] * len(c) for c in completions]}

    def sync_weights(self) -> None:
        pass


@pytest.mark.slow
def test_skipping_gives_trls_loss_and_gradient_from_the_rows_with_signal(tmp_path, monkeypatch, caplog):
    from datasets import Dataset
    from peft import LoraConfig
    from trl import GRPOConfig

    from rlft.core.models import load_model, load_tokenizer
    from rlft.training.grpo_trainer import RlftGRPOTrainer
    from tests.helpers import length_reward, loss_and_grads

    tokenizer = load_tokenizer("bundled:smollm2-135m-instruct")
    cfg = GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=8, num_generations=4,
                     max_completion_length=8, report_to="none", use_cpu=True, loss_type="dapo", beta=0.0,
                     bf16=False)
    rows = [{"prompt": [{"role": "user", "content": "Count apples."}]}] * 4 + \
           [{"prompt": [{"role": "user", "content": "Name a fruit."}]}] * 4
    trainer = RlftGRPOTrainer(model=load_model("bundled:smollm2-135m-instruct"), reward_funcs=[length_reward],
                              args=cfg, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                              engine=TwoGroups(tokenizer), skip_zero_advantage=True,
                              peft_config=LoraConfig(r=4, lora_dropout=0.0, target_modules="all-linear",
                                                     init_lora_weights=False))  # B != 0: every LoRA weight has a gradient
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop, which this test does not run
    widths = []
    original = trainer._get_per_token_logps_and_entropies
    monkeypatch.setattr(trainer, "_get_per_token_logps_and_entropies",
                        lambda model, ids, mask, keep, **k: widths.append((len(ids), keep)) or original(
                            model, ids, mask, keep, **k))
    generated = trainer._generate_and_score_completions(rows)
    assert generated["advantages"][4:].abs().max() == 0  # the second group has no spread

    trls_loss, trls_grads = loss_and_grads(trainer, generated, skip_zero_advantage=False)
    loss, grads = loss_and_grads(trainer, generated, skip_zero_advantage=True)
    assert widths == [(8, 7), (4, 4)]  # TRL: 8 rows x 7 columns (7 apples); skipping: 4 rows x 4
    assert loss == pytest.approx(trls_loss, rel=1e-5) and loss != 0.0
    for name, grad in trls_grads.items():
        assert torch.allclose(grads[name], grad, rtol=1e-4, atol=1e-8), name
    assert trainer._metrics["train"]["zero_advantage/skipped"][-1] == 0.5

    caplog.set_level(logging.INFO, logger="rlft.training.zero_advantage")
    trainer.loss_type = "grpo"
    trainer.enable_zero_advantage_skipping(True)
    assert not trainer.skip_zero_advantage and "skip_zero_advantage: off, loss_type 'grpo'" in caplog.text
