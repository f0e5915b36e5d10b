"""Length buckets: each micro-batch trained in narrower passes, with TRL's loss and gradient."""

from __future__ import annotations

import itertools
import random

import pytest
import torch

from rlft.training import length_buckets
from rlft.training.batch_rows import take_rows
from rlft.training.length_buckets import plan_buckets, split_by_length


def cost(buckets, completion, prompt, overhead):
    return sum(len(b) * (max(prompt[i] for i in b) + max(completion[i] for i in b)) + overhead for b in buckets)


def test_the_plan_is_the_cheapest_cut_of_the_sorted_rows():
    rng = random.Random(0)
    for _ in range(40):
        n = rng.randint(1, 7)
        completion = [rng.choice([1, 3, 12, 15, 64]) for _ in range(n)]
        prompt = [rng.randint(38, 42) for _ in range(n)]
        overhead = rng.choice([0, 20, 64, 500])
        plan = plan_buckets(completion, prompt, overhead)
        assert sorted(i for b in plan for i in b) == list(range(n))  # every row, once
        order = sorted(range(n), key=lambda i: (completion[i], prompt[i]))
        cheapest = min(cost([order[a:b] for a, b in zip((0, *cuts), (*cuts, n))], completion, prompt, overhead)
                       for k in range(n) for cuts in itertools.combinations(range(1, n), k))
        assert cost(plan, completion, prompt, overhead) == cheapest


def test_one_long_completion_no_longer_pads_the_short_ones():
    # the recipe's late steps: 31 terse answers and one that runs to the 64-token limit
    plan = plan_buckets([12] * 31 + [64], [40] * 32)
    assert plan == [list(range(31)), [31]]
    assert cost(plan, [12] * 31 + [64], [40] * 32, 0) == 31 * 52 + 104  # vs 32 x 104 in one pass


def micro_batch():
    prompt_mask = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1], [0, 0, 1, 1]])
    completion_mask = torch.tensor([[1, 0, 0, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    return {"prompt_ids": prompt_mask * 7, "prompt_mask": prompt_mask,
            "completion_ids": completion_mask * torch.arange(1, 6), "completion_mask": completion_mask,
            "sampling_per_token_logps": -completion_mask.float(), "advantages": torch.tensor([0.5, -1.0, 0.5]),
            "num_items_in_batch": torch.tensor(8), "deferred_importance_sampling": torch.tensor(True)}


def test_take_rows_trims_prompt_padding_on_the_left_and_completion_padding_on_the_right():
    out = take_rows(micro_batch(), torch.tensor([0, 2]))
    assert out["prompt_mask"].tolist() == [[1, 1], [1, 1]]
    assert out["completion_ids"].tolist() == [[1, 0], [1, 2]]
    assert out["sampling_per_token_logps"].shape == (2, 2)
    assert int(out["num_items_in_batch"]) == 8 and bool(out["deferred_importance_sampling"])


def test_split_keeps_every_row_once_in_narrower_passes():
    buckets = split_by_length(micro_batch(), overhead=0)
    assert [b["completion_ids"].tolist() for b in buckets] == [[[1]], [[1, 2]], [[1, 2, 3, 4, 5]]]
    assert [b["prompt_ids"].size(1) for b in buckets] == [2, 2, 3]
    assert sorted(float(a) for b in buckets for a in b["advantages"]) == [-1.0, 0.5, 0.5]
    whole = micro_batch()
    one = split_by_length(whole)
    assert len(one) == 1 and one[0] is whole  # 3 short rows: one pass is cheaper than two


# -- on a real trainer: TRL's loss and gradient, in several passes -----------------------------


@pytest.mark.slow
def test_buckets_give_trls_loss_and_gradient(tmp_path, monkeypatch):
    from datasets import Dataset
    from peft import LoraConfig
    from trl import GRPOConfig

    from rlft.core.models import load_model, load_tokenizer
    from rlft.training.grpo_trainer import RlftGRPOTrainer
    from tests.helpers import length_reward, loss_and_grads
    from tests.test_zero_advantage import TwoGroups

    tokenizer = load_tokenizer("bundled:smollm2-135m-instruct")
    cfg = GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=8, num_generations=4,
                     max_completion_length=8, report_to="none", use_cpu=True, loss_type="dapo", beta=0.0,
                     bf16=False,  # TRL's default on CPU is bf16 autocast: its rounding, not the buckets', would show
                     vllm_importance_sampling_mode="token_truncate")  # per-token ratios, trimmed with each bucket
    rows = [{"prompt": [{"role": "user", "content": "Count apples."}]}] * 4 + \
           [{"prompt": [{"role": "user", "content": "Name a fruit, please."}]}] * 4  # prompts of two lengths
    trainer = RlftGRPOTrainer(model=load_model("bundled:smollm2-135m-instruct"), reward_funcs=[length_reward],
                              args=cfg, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                              engine=TwoGroups(tokenizer), skip_zero_advantage=False, length_buckets=None,
                              peft_config=LoraConfig(r=4, lora_dropout=0.0, target_modules="all-linear",
                                                     init_lora_weights=False))
    assert trainer.length_buckets  # None: on, because this trainer runs on CPU
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    passes = []
    original = trainer._get_per_token_logps_and_entropies
    monkeypatch.setattr(trainer, "_get_per_token_logps_and_entropies",
                        lambda model, ids, mask, keep, **k: passes.append((len(ids), ids.size(1), keep)) or original(
                            model, ids, mask, keep, **k))
    generated = trainer._generate_and_score_completions(rows)
    # every row carries a gradient, and they do not cancel out (a group's own advantages sum to 0: then float
    # rounding, ~5e-5 of a logprob where a prompt's left padding is trimmed, is all that is left to compare)
    generated["advantages"] = torch.linspace(0.2, 1.0, 8)

    trls_loss, trls_grads = loss_and_grads(trainer, generated, length_buckets=False)
    monkeypatch.setattr(length_buckets, "PASS_OVERHEAD_TOKENS", 1)  # passes nearly free: a bucket per length
    loss, grads = loss_and_grads(trainer, generated, length_buckets=True)
    whole, *buckets = passes
    assert whole[0] == 8 and whole[2] == 7  # TRL: 8 rows x 7 completion tokens
    assert [(rows, keep) for rows, _, keep in buckets] == [(1, 1), (1, 2), (1, 3), (1, 4), (4, 7)]
    assert buckets[0][1] < whole[1] - 6  # the shorter prompt's left padding went too
    assert loss == pytest.approx(trls_loss, rel=1e-5) and loss != 0.0
    for name, grad in trls_grads.items():
        assert (grads[name] - grad).abs().max() <= 1e-4 * grad.abs().max(), name
    assert trainer._metrics["train"]["length_buckets/passes"][-1] == 5.0


class Recorder:
    """Stands in for TRL's ``_compute_loss``: records the batches it is given."""

    def _compute_loss(self, model, inputs):
        self.seen.append(inputs)
        return torch.tensor(float(len(inputs["advantages"])))


def mixed_trainer():
    from collections import defaultdict

    from rlft.training.zero_advantage import ZeroAdvantageSkipping

    class Trainer(ZeroAdvantageSkipping, length_buckets.LengthBuckets, Recorder):
        pass

    trainer = Trainer()
    trainer.model = torch.nn.Linear(1, 1)  # .training is True
    trainer.seen, trainer._metrics = [], {"train": defaultdict(list)}
    trainer.skip_zero_advantage = trainer.length_buckets = True
    return trainer


def test_the_trainer_drops_then_buckets_but_leaves_batches_with_images_whole(monkeypatch):
    monkeypatch.setattr(length_buckets, "PASS_OVERHEAD_TOKENS", 0)
    trainer = mixed_trainer()
    batch = micro_batch()
    batch["advantages"] = torch.tensor([0.5, -1.0, 0.0])  # the third row has no signal
    assert trainer._compute_loss(None, batch).item() == 2.0  # two rows trained, in two passes
    assert [b["completion_ids"].tolist() for b in trainer.seen] == [[[1]], [[1, 2, 3, 4, 5]]]

    trainer.seen.clear()
    with_images = {**batch, "pixel_values": torch.zeros(3, 4)}  # one row per patch, not per completion
    assert trainer._compute_loss(None, with_images).item() == 3.0
    assert len(trainer.seen) == 1 and trainer.seen[0] is with_images
