"""Rewards used by the tests (loaded by dotted path, as users load theirs)."""

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


def fading_reward(completions, **columns):
    """1.0 for every answer on the first call, 1/2 on the second, ...: the first evaluation is the best one."""
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
