"""Reward functions in the style of TRL's documentation and open-r1: chat completions, a ``solution`` column,
``**kwargs`` for everything else TRL passes. Written for the tests; rlft must run them unchanged."""

import re


def _last_number(text):
    boxed = re.findall(r"\\boxed\{([^{}]*)\}", text)
    if boxed:
        return boxed[-1].strip()
    numbers = re.findall(r"-?\d+(?:\.\d+)?", text)
    return numbers[-1] if numbers else None


def accuracy_reward(completions, solution, **kwargs):
    """1.0 when the completion's final number matches the solution's; None when the solution has none."""
    contents = [completion[0]["content"] for completion in completions]
    rewards = []
    for content, sol in zip(contents, solution):
        gold = _last_number(sol)
        rewards.append(None if gold is None else float(_last_number(content) == gold))
    return rewards


def format_reward(completions, **kwargs):
    """1.0 for <think>...</think><answer>...</answer>."""
    pattern = r"^<think>.*?</think>\s*<answer>.*?</answer>$"
    contents = [completion[0]["content"] for completion in completions]
    return [1.0 if re.match(pattern, c, re.DOTALL) else 0.0 for c in contents]


def progress_reward(completions, trainer_state, log_metric, completion_ids, **kwargs):
    """Uses what TRL passes besides the columns: the trainer's state, a metric logger and the token ids."""
    log_metric("progress/step", float(trainer_state.global_step))
    return [min(1.0, len(ids) / 100) for ids in completion_ids]


def text_accuracy_reward(completions, solution, **kwargs):
    """For plain-text prompts TRL passes plain-text completions."""
    return [float(_last_number(c) == _last_number(s)) for c, s in zip(completions, solution)]
