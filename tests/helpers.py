"""Rewards used by the tests (loaded by dotted path, as users load theirs), the tests' tiny model and pairs."""

import json
from pathlib import Path

from rewards import completion_text


def length_reward(completions, **columns):
    """Longer is better: guarantees reward spread within every group, so a 2-step run always gets gradients."""
    return [len(completion_text(c)) / 100 for c in completions]


def broken_reward(completions, **columns):
    """A reward with a bug, as users write them."""
    return [1 / 0 for _ in completions]


def wrong_count_reward(completions, **columns):
    """Returns two values whatever the batch: the classic off-by-a-batch bug."""
    return [0.0, 1.0]


def fails_after_first_step(completions, trainer_state=None, **columns):
    """Scores length on the first step; from the second on it parses a "####" marker that is not there."""
    if trainer_state is not None and trainer_state.global_step >= 1:
        return [float(completion_text(c).split("####")[1]) for c in completions]  # IndexError, as careless code does
    return [len(completion_text(c)) / 100 for c in completions]


def nan_reward(completions, **columns):
    """A reward whose arithmetic went wrong: NaN for every completion."""
    return [float("nan") for _ in completions]


def loss_and_grads(trainer, batch, **flags):
    """One micro-batch's loss and the LoRA gradients it gives, with trainer attributes set from ``flags``."""
    for name, value in flags.items():
        setattr(trainer, name, value)
    trainer.model.zero_grad()
    loss = trainer._compute_loss(trainer.model, dict(batch))
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.requires_grad}


FADING_CALLS = [0]


def fading_reward(completions, trainer_state=None, **columns):
    """1.0 for every answer at the first evaluation during training, 1/2 at the second, ...: the first is the best.

    Calls before training (step 0: the check that the test split can be scored) are not counted.
    """
    if trainer_state is None or trainer_state.global_step == 0:
        return [1.0] * len(completions)
    FADING_CALLS[0] += 1
    return [1.0 / FADING_CALLS[0]] * len(completions)


def broken_tool(x: int) -> str:
    """A tool with a bug, as users write them.

    Args:
        x: any number.
    """
    return str(1 // 0)


def slow_tool(seconds: float) -> str:
    """A tool that takes its time.

    Args:
        seconds: how long to take.
    """
    import time

    time.sleep(seconds)
    return "done"


def undocumented_tool(x):
    return x


TINY_MODEL_NAME = "tiny-llama-test-v5"  # a new name when the recipe below changes: the cache keeps the old one


def tiny_model_dir() -> Path:
    """A 2-layer random Llama with the bundled model's tokenizer and chat template, built once per machine.

    For tests of mechanics (a run resumes, a launcher starts, an engine syncs): it loads, trains and samples in
    a fraction of the bundled model's time. It answers nothing right; tests of what a model says use the bundled
    one. Its directory sits in the rlft cache beside the bundled model, so subprocesses and vLLM load it by path.

    Example:
        >>> from transformers import AutoConfig
        >>> AutoConfig.from_pretrained(tiny_model_dir()).num_hidden_layers  # doctest: +SKIP
        2
    """
    import os
    import shutil

    from rlft.core.models import bundled_model_dir, cache_root

    target = cache_root() / "models" / TINY_MODEL_NAME
    if (target / "model.safetensors").exists():
        return Path(target)
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    bundled = bundled_model_dir()
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
        shutil.copy(bundled / name, tmp / name)
    base = LlamaConfig.from_pretrained(bundled)
    # head_dim 64 as the bundled model's (vLLM's CPU attention takes it); untied embeddings: tied, a random
    # model's likeliest next token is the last one, and greedy answers are the same token over and over
    config = LlamaConfig(vocab_size=base.vocab_size, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=64, max_position_embeddings=2048,
                         initializer_range=0.1, tie_word_embeddings=False, bos_token_id=base.bos_token_id,
                         eos_token_id=base.eos_token_id, pad_token_id=base.pad_token_id,
                         rope_parameters=base.rope_parameters)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        # Sharper next-token distributions (logit std ~6.8): greedy answers differ from prompt to prompt with clear
        # margins, so two engines' float noise cannot flip an argmax; sampling still spreads a group's completions.
        model.lm_head.weight.mul_(6.0)
    model.save_pretrained(tmp)
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    return Path(target)


def write_pairs(path: Path) -> Path:
    """Preference pairs on sums (the right sum chosen, one off rejected), written by hand: 48 rows in ``path``."""
    rows = [{"prompt": [{"role": "user", "content": f"What is {a} + {b}?"}],
             "chosen": [{"role": "assistant", "content": f"The answer is {a + b}."}],
             "rejected": [{"role": "assistant", "content": f"The answer is {a + b + 1}."}], "answer": str(a + b)}
            for a in range(2, 26) for b in (3, 7)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
