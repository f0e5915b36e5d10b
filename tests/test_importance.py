"""vLLM importance sampling: TRL's arithmetic, and the deferred ratio gives TRL's own loss with one forward less."""

from __future__ import annotations

import math

import pytest
import torch

from rlft.training.importance import vllm_importance_ratio

TRAINER = torch.tensor([[-1.0, -2.0, -0.5], [-0.1, -0.2, -9.0]])
ENGINE = torch.tensor([[-1.5, -2.0, -0.5], [-1.2, -1.3, float("nan")]])
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])  # the second sequence has two tokens


def test_sequence_ratio_is_exp_of_summed_differences_with_mask_and_nan_ignored():
    ratio = vllm_importance_ratio(TRAINER, ENGINE, MASK, "sequence_truncate", None, 100.0)
    assert ratio.shape == (2, 1)
    assert ratio[0, 0].item() == pytest.approx(math.exp(0.5))
    assert ratio[1, 0].item() == pytest.approx(math.exp(1.1 + 1.1))


def test_sequence_mask_drops_sequences_past_the_clip_and_truncate_clamps_them():
    masked = vllm_importance_ratio(TRAINER, ENGINE, MASK, "sequence_mask", None, 3.0)
    assert masked[:, 0].tolist() == pytest.approx([math.exp(0.5), 0.0])  # exp(2.2) = 9.0 > 3: dropped
    clamped = vllm_importance_ratio(TRAINER, ENGINE, MASK, "sequence_truncate", None, 3.0)
    assert clamped[:, 0].tolist() == pytest.approx([math.exp(0.5), 3.0])


def test_token_modes_weigh_each_token():
    ratio = vllm_importance_ratio(TRAINER, ENGINE, MASK, "token_truncate", None, 2.0)
    assert ratio.shape == (2, 3)
    assert ratio[0].tolist() == pytest.approx([math.exp(0.5), 1.0, 1.0])
    assert ratio[1].tolist() == pytest.approx([2.0, 2.0, 1.0])  # exp(1.1) = 3.0 clamped; masked NaN token: 1
    low = vllm_importance_ratio(ENGINE, TRAINER, MASK, "token_mask", 0.7, None)
    assert low.tolist() == [[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]]  # exp(-0.5) = 0.61 < 0.7: dropped


# -- on a real trainer: the deferred path gives TRL's own loss and metrics ------------------------


class FixedEngine:
    """Stands in for the vLLM engine: fixed completions, and logprobs a little off the trainer's."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer, self.trainer, self.logprobs = tokenizer, None, None

    def rollout_func(self, prompts, trainer):
        from rlft.rollout.vllm_runtime import encode_prompt

        completions = [self.tokenizer(" apple" * (n + 1), add_special_tokens=False)["input_ids"]
                       for n in range(len(prompts))]  # lengths differ: length_reward spreads, advantages are not 0
        return {"prompt_ids": [encode_prompt(self.tokenizer, p) for p in prompts], "completion_ids": completions,
                "logprobs": self.logprobs or [[-2.0] * len(c) for c in completions]}

    def sync_weights(self) -> None:
        pass


@pytest.mark.slow
def test_deferred_ratio_gives_trls_loss_with_one_forward_less(tmp_path, bundled_dir, monkeypatch):
    from datasets import Dataset
    from trl import GRPOConfig

    from rlft.core.models import load_model, load_tokenizer
    from rlft.training.grpo_trainer import RlftGRPOTrainer
    from tests.helpers import length_reward

    tokenizer = load_tokenizer("bundled:smollm2-135m-instruct")
    model = load_model("bundled:smollm2-135m-instruct")
    from peft import LoraConfig

    cfg = GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=4,
                     max_completion_length=8, report_to="none", use_cpu=True, logging_steps=1,
                     vllm_importance_sampling_mode="sequence_truncate", vllm_importance_sampling_clip_max=3.0)
    engine = FixedEngine(tokenizer)
    rows = [{"prompt": [{"role": "user", "content": "Count apples."}]}] * 4
    trainer = RlftGRPOTrainer(model=model, reward_funcs=[length_reward], args=cfg,
                              train_dataset=Dataset.from_list(rows),
                              processing_class=tokenizer, engine=engine,
                              peft_config=LoraConfig(r=4, lora_dropout=0.0, target_modules="all-linear"))
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop, which this test does not run
    forwards = []
    original = trainer._get_per_token_logps_and_entropies
    monkeypatch.setattr(trainer, "_get_per_token_logps_and_entropies",
                        lambda *a, **k: forwards.append(1) or original(*a, **k))

    def loss_and_metrics(defer: bool):
        monkeypatch.setattr(trainer, "_defers_importance_sampling", lambda: defer)
        trainer._metrics["train"].clear()
        forwards.clear()
        batch = trainer._generate_and_score_completions(rows)
        loss = trainer._compute_loss(trainer.model, batch)
        return loss.item(), len(forwards), {k: v[-1] for k, v in trainer._metrics["train"].items()
                                             if k.startswith("sampling/")}

    # engine logprobs a little off the trainer's (+-0.05 per token), as a real engine's are
    monkeypatch.setattr(trainer, "_defers_importance_sampling", lambda: False)
    first = trainer._generate_and_score_completions(rows)
    old, mask = first["old_per_token_logps"], first["completion_mask"].bool()
    engine.logprobs = [(old[i][mask[i]] + 0.05 * (-1) ** i).tolist() for i in range(len(rows))]

    trls_loss, trls_forwards, trls_metrics = loss_and_metrics(defer=False)
    loss, n_forwards, metrics = loss_and_metrics(defer=True)
    assert (trls_forwards, n_forwards) == (2, 1)
    assert loss == pytest.approx(trls_loss, rel=1e-5, abs=1e-7) and loss != 0.0
    assert metrics.keys() == trls_metrics.keys() and len(metrics) == 5
    for key, value in trls_metrics.items():
        assert metrics[key] == pytest.approx(value, rel=1e-5), key
