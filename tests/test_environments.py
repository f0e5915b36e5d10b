"""Multi-turn environments (``environment:``): TRL's contract, checked before the model loads, trained and evaluated.

The example environment (``examples/guess_number``) is driven two ways: by a
scripted engine that plays binary search, so every reward is known, and by
a tiny random model on rlft's real vLLM engine for two steps.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest

from examples.guess_number.env import GuessNumber
from rlft import grpo
from rlft.core.errors import run_cli
from tests.conftest import REPO
from tests.helpers import tiny_model_dir
from tests.test_grpo import logged

EXAMPLE = ["examples/guess_number/grpo.yaml", "--model_name_or_path", str(tiny_model_dir()), "--max_steps", "2", "--num_test_samples", "4", "--eval_samples", "4",
           "--save_strategy", "no", "--report_to", "none", "--log_completions", "false", "--learning_rate", "1e-3",
           "--warmup_steps", "0", "--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "1"]


class NoReward:
    """An environment that does not score itself."""

    def reset(self, **row) -> None:
        pass

    def look(self) -> str:
        """Look around."""
        return "nothing"


class BrokenReset(NoReward):
    def reset(self, secret: int, **row) -> None:
        raise KeyError("level")


class Undocumented:
    def reset(self, **row) -> None:
        pass

    def move(self, where):
        return where


def no_environment_class(**row):
    return None


@pytest.mark.parametrize(("extra", "says"), [
    (["--environment", "tests.test_environments:no_environment_class"], "is not a class"),
    (["--environment", "tests.test_environments:BrokenReset", "--reward_funcs", "[accuracy]"],
     "failed to start on the first training row: KeyError: 'level'"),
    (["--environment", "tests.test_environments:Undocumented", "--reward_funcs", "[accuracy]"],
     "cannot be shown to the model"),
    (["--reward_funcs", "[accuracy]"], "scores its episodes (get_reward), but reward_funcs does not name it"),
    (["--environment", "tests.test_environments:NoReward"], "has no get_reward()"),
    (["--environment", "no_such_module:Env"], "environment: cannot import"),
])
def test_a_bad_environment_is_refused_before_the_model_loads(extra, says, tmp_path, capsys):
    out = tmp_path / "run"
    code = run_cli(grpo.main, [*EXAMPLE, "--output_dir", str(out), *extra])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and says in lines[0], lines
    assert not out.exists()


def look() -> str:
    """A standalone tool with the same name as an environment method.

    Returns:
        What is there.
    """
    return "a tool"


def test_a_tool_named_like_an_environment_method_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "rlft.grpo", *EXAMPLE, "--output_dir", str(tmp_path / "run"),
                           "--environment", "tests.test_environments:NoReward", "--reward_funcs", "[accuracy]",
                           "--tools", "[tests.test_environments:look]"], cwd=REPO, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [("error: tools: look is both a tool and a method of the environment "
                                               "(the model calls tools by name)")]
    assert not (tmp_path / "run").exists()


def test_the_environment_reward_without_an_environment_is_one_line(tmp_path, capsys):
    code = run_cli(grpo.main, ["recipes/math.yaml", "--output_dir", str(tmp_path / "run"), "--reward_funcs",
                               "[environment]"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and lines == [("error: reward 'environment' reads the recipe's environment (environment: "
                                   "module:Class), and this run has none")]


# -- the closing check plays each prompt in its own episode ---------------------------------------------------


def binary_search_reply(text: str) -> str:
    """The next turn of a player that halves the range on each answer, then states the number."""
    lo, hi = 1, 10
    guesses = re.findall(r'"number": (\d+)', text.split("<|im_start|>assistant", 1)[-1])
    answers = re.findall(r"<tool_response>\n(\w+)\n</tool_response>", text)
    for guess, answer in zip(guesses, answers, strict=True):
        if answer == "correct":
            return f"The number is {guess}.<|im_end|>"
        lo, hi = (int(guess) + 1, hi) if answer == "higher" else (lo, int(guess) - 1)
    return f'<tool_call>\n{{"name": "guess", "arguments": {{"number": {(lo + hi) // 2}}}}}\n</tool_call><|im_end|>'


def guesses_needed(secret: int) -> int:
    lo, hi, n = 1, 10, 0
    while True:
        n += 1
        mid = (lo + hi) // 2
        if mid == secret:
            return n
        lo, hi = (mid + 1, hi) if secret > mid else (lo, mid - 1)


def test_closing_check_scores_each_model_in_its_own_episodes(monkeypatch, bundled_tokenizer):
    """Base (never calls the tool) and trained (binary search): each prompt a fresh episode, scored by get_reward."""
    import copy

    from datasets import Dataset

    import rewards
    from examples.guess_number.env import rows
    from rlft.core.tool_setup import ToolSetup
    from rlft.evaluation import closing
    from rlft.tools.chat import enable_tool_calls
    from rlft.tools.environments import environment_factory, episode
    from rlft.tools.loading import ToolStats

    tok = enable_tool_calls(copy.deepcopy(bundled_tokenizer), "bundled:smollm2-135m-instruct")
    stats = ToolStats()
    env_class = environment_factory(GuessNumber, 5.0, stats)

    class Model:  # the trained model; its adapter disabled is the base
        @contextlib.contextmanager
        def disable_adapter(self):
            self.off = True
            yield
            self.off = False

    model = Model()
    model.off = False

    def completions(m, tokenizer, texts, **kwargs):
        if m.off:
            return ["I guess 5." for _ in texts]
        return [binary_search_reply(t) for t in texts]

    monkeypatch.setattr(closing, "hf_completions", completions)
    data = rows(6, seed=3)
    table, samples = closing.before_after(model, tok, Dataset.from_list(data), [rewards.resolve("environment")],
                                          tools=ToolSetup([], 5, env_class, lambda row: episode(env_class, row)))
    want = [round(max(0.5, 1.1 - 0.1 * guesses_needed(r["secret"])), 2) for r in data]
    assert [s["score_trained"] for s in samples] == want
    assert [s["score_base"] for s in samples] == [0.0] * 6
    assert table[0]["metric"] == "environment" and table[1]["tool_use"] == 1.0 and table[0]["tool_use"] == 0.0
    assert stats.snapshot() == {"tools/guess/calls": sum(guesses_needed(r["secret"]) for r in data)}


# -- training ------------------------------------------------------------------------------------------------------

ENGINES: list = []


class GuessingEngine:
    """rlft's engine as TRL's tool loop calls it; rollouts at odd positions of the first turn never call the tool."""

    sync, dtype, sync_check, probe = "scripted", "float32", False, None

    def __init__(self, args, cfg, model_args, tokenizer, sync, start_model=None) -> None:
        self.tokenizer, self.lazy = tokenizer, set()
        self.llm = SimpleNamespace(llm_engine=SimpleNamespace(model_config=SimpleNamespace(max_model_len=4096)))
        ENGINES.append(self)

    def rollout_func(self, prompts, trainer):
        raise AssertionError("with an environment, TRL's loop generates through engine.generate")

    def generate(self, prompts, images=None, num_generations=1, profiler=None):
        texts = [self.tokenizer.decode(p) for p in prompts]
        first = all("<tool_response>" not in t for t in texts)
        out = ["The number is 5.<|im_end|>" if first and i % 2 else binary_search_reply(t)
               for i, t in enumerate(texts)]
        ids = [self.tokenizer(o, add_special_tokens=False)["input_ids"] for o in out]
        return [list(p) for p in prompts], ids, [[[0.0]] * len(i) for i in ids], None

    def sync_weights(self, model) -> None:
        pass

    def describe(self):
        return {"engine": "vllm", "sync": "scripted"}

    def close(self) -> None:
        pass


@pytest.mark.slow
def test_grpo_in_the_example_environment_rewards_what_the_episode_says(monkeypatch, tmp_path):
    from tests.test_grpo import lora_b_all_nonzero

    monkeypatch.setattr("rlft.rollout.engine.VLLMEngine", GuessingEngine)
    episodes = []
    original = GuessNumber.get_reward

    def recorded(self):
        reward = original(self)
        episodes.append((self.found, self.guesses, reward))
        return reward

    monkeypatch.setattr(GuessNumber, "get_reward", recorded)
    out = tmp_path / "run"
    manifest = grpo.main([*EXAMPLE, "--output_dir", str(out), "--eval_before_after", "false",
                          "--vllm_importance_sampling_correction", "false"])
    trained = [e for e in episodes if e[1]]  # the preflight's episode made no guess
    assert trained and all(found and reward == round(max(0.5, 1.1 - 0.1 * n), 2) for found, n, reward in trained)
    steps = [e for e in logged(out) if "loss" in e]
    assert [e["step"] for e in steps] == [1, 2]
    for e in steps:  # half the rollouts searched (reward >= 0.7 on 1..10), half answered at once (0)
        assert 0.3 < e["rewards/environment/mean"] < 0.55 and e["tools/call_frequency"] > 0
        assert e["tools/guess/calls"] > 0
    assert lora_b_all_nonzero(out)  # the spread within each group gave gradients
    tools = manifest["results"]["tools"]
    assert tools["environment"] == "GuessNumber" and tools["tools"] == ["guess"] and tools["max_turns"] == 5
    assert tools["counts"]["tools/guess/calls"] == sum(n for _, n, _ in trained)


@pytest.mark.slow
def test_the_example_trains_two_steps_on_the_real_engine(tmp_path):
    """The tiny model in the example environment, rlft's vLLM engine, the closing check in fresh episodes."""
    pytest.importorskip("vllm")
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "rlft.grpo", *EXAMPLE, "--output_dir", str(out),
                           "--max_completion_length", "96", "--eval_max_new_tokens", "48",
                           "--per_device_train_batch_size", "4"],  # one episode group per step
                          cwd=REPO, capture_output=True, text=True, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "experimental feature" not in proc.stderr + proc.stdout  # the checked notice went to run.log
    steps = [e for e in logged(out) if "loss" in e]
    assert [e["step"] for e in steps] == [1, 2]
    assert all({"rewards/environment/mean", "tools/call_frequency", "tools/turns"} <= set(e) for e in steps)
    manifest = json.loads((out / "rlft_manifest.json").read_text())
    [base, trained] = manifest["results"]["table"]
    assert base["metric"] == "environment" and {"tool_use", "turns"} <= set(trained)
    assert "with tools:" in proc.stdout
