"""Rewards used by the tests (loaded by dotted path, as users load theirs)."""

from rewards import completion_text


def length_reward(completions, **columns):
    """Longer is better: guarantees reward spread within every group, so a 2-step run always gets gradients."""
    return [len(completion_text(c)) / 100 for c in completions]


def broken_reward(completions, **columns):
    """A reward with a bug, as users write them."""
    return [1 / 0 for _ in completions]
