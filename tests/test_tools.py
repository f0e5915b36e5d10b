"""Agentic GRPO: the built-in tools, loading and timing tools, the tool-calling chat template, and TRL's tool loop.

The loop is driven by a scripted engine (fixed outputs chosen from the
question and from the last tool result), standing in for rlft's vLLM engine
behind TRL's tool loop, while the bundled model trains for real.
"""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest

from rlft import grpo
from rlft.core.errors import UserError, run_cli
from rlft.tools import calculator
from rlft.tools.loading import ToolStats, load_tools
from tests.test_grpo import TINY, logged

# -- the calculator ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("expression", "value"), [
    ("123 * 45", "5535"), ("987 * 65", "64155"), ("1/3 + 1/6", "1/2"), ("0.1 + 0.2", "3/10"), ("2 ** 100",
     "1267650600228229401496703205376"), ("-(3 - 5) * 2", "4"), ("10 // 3", "3"), ("-7 % 3", "2"), ("6 / 4", "3/2"),
    ("12345678901234567890 * 98765432109876543210", "1219326311370217952237463801111263526900"),
    ("(2/3) ** -2", "9/4"),
])
def test_calculator_is_exact_on_big_integers_and_fractions(expression, value):
    assert calculator(expression) == value


@pytest.mark.parametrize(("expression", "says"), [
    ("__import__('os').system('ls')", "a function call"), ("x + 1", "the name 'x'"), ("(1).real", "attribute"),
    ("'a' * 3", "the constant 'a'"), ("True + 1", "the constant True"), ("[1, 2]", "List"), ("1 if 1 else 2", "IfExp"),
    ("2 ** 0.5", "whole-number exponents"), ("9 ** 9 ** 9", "more than 1000 digits"), ("1 / 0", "division by zero"),
    ("1 +", "not an arithmetic expression"), ("lambda: 1", "Lambda"),
])
def test_calculator_refuses_anything_but_arithmetic(expression, says):
    with pytest.raises(ValueError, match=re.escape(says)):
        calculator(expression)


def test_python_tool_runs_in_the_sandbox():
    from rlft.tools import python

    assert python("print(6 * 7)") == "42\n"
    assert "ZeroDivisionError" in python("print(1 / 0)")


# -- loading and timing -----------------------------------------------------------------------------------------


def test_a_tool_that_raises_or_hangs_is_counted_and_its_error_is_a_message():
    stats = ToolStats()
    broken, slow = load_tools(["tests.helpers:broken_tool", "tests.helpers:slow_tool"], timeout=0.2, stats=stats)
    assert broken.__name__ == "broken_tool" and "A tool with a bug" in broken.__doc__  # what the model is shown
    with pytest.raises(ZeroDivisionError):
        broken(x=1)
    with pytest.raises(TimeoutError, match=r"slow_tool took longer than 0.2 s \(tool_timeout\)"):
        slow(seconds=2)
    assert slow(seconds=0) == "done"
    assert stats.snapshot() == {"tools/broken_tool/calls": 1, "tools/broken_tool/errors": 1,
                                "tools/slow_tool/calls": 2, "tools/slow_tool/timeouts": 1}


@pytest.mark.parametrize(("path", "says"), [
    ("tests.helpers:undocumented_tool", "cannot be shown to the model"), ("tests.helpers:nothing", "no function"),
    ("no_such_module:f", "cannot import"), ("calculator", "must look like"),
])
def test_a_bad_tool_is_refused_before_the_model_loads(path, says, tmp_path, capsys):
    out = tmp_path / "run"
    code = run_cli(grpo.main, [*TINY, "--output_dir", str(out), "--engine", "hf", "--tools", f"[{path}]"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and lines[-1].startswith("error: tools: ") and says in lines[-1], lines
    assert not out.exists()


# -- the chat template ------------------------------------------------------------------------------------------


def test_bundled_template_renders_tools_and_plain_chats_as_before(bundled_tokenizer):
    import copy

    from trl.chat_template_utils import parse_response

    from rlft.tools.chat import enable_tool_calls

    tok = enable_tool_calls(copy.deepcopy(bundled_tokenizer), "bundled")
    for chat in ([{"role": "user", "content": "Q"}],
                 [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
                  {"role": "assistant", "content": "A"}, {"role": "user", "content": "Q2"}]):
        assert (tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
                == bundled_tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True))
    prompt = tok.apply_chat_template([{"role": "user", "content": "12*3?"}], tools=[calculator], tokenize=True,
                                     add_generation_prompt=True, return_dict=False)
    assert '"name": "calculator"' in tok.decode(prompt)
    call = tok(CALL.format(name="calculator", expression="12*3"), add_special_tokens=False)["input_ids"]
    parsed = parse_response(tok, call, prefix=prompt, tools=[calculator])
    assert parsed["tool_calls"] == [{"type": "function", "function": {"name": "calculator",
                                                                      "arguments": {"expression": "12*3"}}}]


def test_a_template_without_tools_is_refused_in_one_line(bundled_tokenizer):
    import copy

    from rlft.tools.chat import enable_tool_calls

    tok = copy.deepcopy(bundled_tokenizer)
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    with pytest.raises(UserError, match="the chat template of my/model cannot render tool calls"):
        enable_tool_calls(tok, "my/model")


# -- TRL's tool loop, driven by a scripted engine ---------------------------------------------------------------

CALL = '<tool_call>\n{{"name": "{name}", "arguments": {{"expression": "{expression}"}}}}\n</tool_call><|im_end|>'
ENGINES: list = []


class ScriptedEngine:
    """rlft's engine as TRL's tool loop calls it (``generate`` per turn), answering from a script.

    By a rollout's position in the first turn's batch, modulo 5: 0-1 call the calculator and then answer with
    its result; 2 calls a tool that does not exist; 3 writes a broken call; 4 never stops calling.
    """

    sync, dtype, sync_check, probe = "scripted", "float32", False, None

    def __init__(self, args, cfg, model_args, tokenizer, sync, start_model=None) -> None:
        self.tokenizer, self.calls, self.turns = tokenizer, 0, []
        self.llm = SimpleNamespace(llm_engine=SimpleNamespace(model_config=SimpleNamespace(max_model_len=4096)))
        ENGINES.append(self)

    def rollout_func(self, prompts, trainer):
        raise AssertionError("with tools, TRL's loop generates through engine.generate, not rollout_func")

    def reply(self, text: str, position: int) -> str:
        question = re.findall(r"<\|im_start\|>user\n(.*?)<\|im_end\|>", text, re.DOTALL)[0]
        a, op, b = re.search(r"(\d+) ([-+*]) (\d+)", question).groups()
        results = re.findall(r"<tool_response>\n(.*?)\n</tool_response>", text, re.DOTALL)
        if results:  # a later turn: the one that never answers calls again (its calls add "+ 0"); others answer
            if '+ 0"' in text.split("<|im_start|>assistant", 1)[-1]:  # in the rollout's own turns
                return CALL.format(name="calculator", expression=f"{a} {op} {b} + 0")
            return f"The answer is \\boxed{{{results[-1]}}}.<|im_end|>"
        kind = position % 5  # the first turn: the rollout's part in the script
        if kind == 2:
            return CALL.format(name="abacus", expression=f"{a} {op} {b}")
        if kind == 3:
            return '<tool_call>\n{"name": "calculator", "arguments": {"expression": <|im_end|>'
        if kind == 4:
            return CALL.format(name="calculator", expression=f"{a} {op} {b} + 0")
        return CALL.format(name="calculator", expression=f"{a} {op} {b}")

    def generate(self, prompts, images=None, num_generations=1, profiler=None):
        self.calls += 1
        out = [self.tokenizer(self.reply(self.tokenizer.decode(p), i), add_special_tokens=False)["input_ids"]
               for i, p in enumerate(prompts)]
        self.turns.append(len(prompts))
        return [list(p) for p in prompts], out, [[[0.0]] * len(ids) for ids in out], None

    def greedy(self, prompts, max_tokens):  # evaluation during training: the rendered turns of the tool loop
        assert all(isinstance(p, str) for p in prompts)
        return [self.reply(p, 0).removesuffix("<|im_end|>") for p in prompts]

    def sync_weights(self, model) -> None:
        pass

    def describe(self):
        return {"engine": "vllm", "sync": "scripted"}

    def close(self) -> None:
        pass


@pytest.fixture
def scripted(monkeypatch):
    monkeypatch.setattr("rlft.rollout.engine.VLLMEngine", ScriptedEngine)
    ENGINES.clear()
    return ENGINES


@pytest.mark.slow
def test_tool_loop_appends_masks_and_counts(scripted, tmp_path, monkeypatch, bundled_tokenizer):
    from rlft.training.grpo_trainer import RlftGRPOTrainer

    batches = []
    original = RlftGRPOTrainer._generate

    def recording(self, prompts):
        result = original(self, prompts)
        batches.append(result)
        return result

    monkeypatch.setattr(RlftGRPOTrainer, "_generate", recording)
    out = tmp_path / "run"
    manifest = grpo.main([*TINY, "--output_dir", str(out), "--engine", "vllm", "--max_completion_length", "256",
                          "--tools", "[rlft.tools:calculator]", "--max_turns", "3", "--eval_steps", "1",
                          "--vllm_importance_sampling_correction", "false"])
    [engine] = scripted
    # one engine call per turn for every rollout still running: a step's 2 x 8 completions, then fewer
    assert engine.turns[0] == 16 and 0 < engine.turns[2] <= engine.turns[1] < 16
    _, completion_ids, tool_mask, completions = batches[0][:4]
    tok = bundled_tokenizer
    for ids, mask, transcript in zip(completion_ids, tool_mask, completions, strict=True):
        assert len(mask) == len(ids)
        own = tok.decode([t for t, m in zip(ids, mask, strict=True) if m])
        theirs = tok.decode([t for t, m in zip(ids, mask, strict=True) if not m])
        results = [m["content"] for m in transcript if m["role"] == "tool"]
        # env_mask is zero exactly on the tool results: they carry no loss, the model's own turns do
        assert all(r in theirs for r in results) and "<tool_response>" not in own
        assert ("<tool_response>" in theirs) == bool(results)
    first = next(e for e in logged(out) if "loss" in e)
    assert first["tools/call_frequency"] > 0 and first["tools/malformed"] >= 1 and first["tools/unknown"] >= 1
    assert 0 < first["tools/max_turns_hit"] < 1 and 0 < first["tools/answered"] < 1
    never = [t for t in completions if len([m for m in t if m["role"] == "assistant"]) == 3]
    assert never and all(t[-1].get("tool_calls") for t in never)  # max_turns stopped the one that never answers
    errors = [m["content"] for t in completions for m in t if m["role"] == "tool" and "error" in m["content"]]
    assert any("abacus" in e for e in errors)  # an unknown tool's error is the model's next message
    solved = [t for t in completions if t[0].get("tool_calls") and not t[-1].get("tool_calls")
              and t[0]["tool_calls"][0]["function"]["name"] == "calculator"]
    assert solved and all(calculator(t[0]["tool_calls"][0]["function"]["arguments"]["expression"])
                          in t[-1]["content"] for t in solved)  # the result reached the model, which used it
    # the closing check answered through the tool loop too: its rows say how often each model called a tool
    assert {"tool_use", "turns"} <= set(manifest["results"]["table"][0])
    sample = json.loads((out / "before_after.jsonl").read_text().splitlines()[0])
    assert sample["transcript_trained"][0]["role"] == "assistant" and "transcript_base" in sample
    assert manifest["results"]["tools"]["max_turns"] == 3
    assert manifest["results"]["tools"]["counts"]["tools/calculator/calls"] > 0
    # evaluation during training answered through the same loop, from the engine: call, result, answer
    evals = [e for e in logged(out) if "eval/accuracy" in e]
    assert [e["step"] for e in evals] == [1, 2]
    assert all(e["eval/tool_use"] == 1.0 and e["eval/turns"] == 2.0 and e["eval/accuracy"] == 1.0 for e in evals)
    line = json.loads((out / "evals" / "step-2.jsonl").read_text().splitlines()[0])
    assert [m["role"] for m in line["transcript"]] == ["assistant", "tool", "assistant"]
    assert line["transcript"][1]["content"] == line["answer"]


@pytest.mark.slow
def test_tools_on_the_vllm_engine_train_through_trls_loop(tmp_path, monkeypatch):
    """The bundled model, rlft's real vLLM engine and the calculator: TRL's loop generates through engine.generate."""
    pytest.importorskip("vllm")
    from rlft.rollout.engine import VLLMEngine
    from tests.test_grpo import lora_b_all_nonzero

    def no_rollout_func(self, prompts, trainer):
        raise AssertionError("with tools TRL's loop must generate, not rollout_func")

    monkeypatch.setattr(VLLMEngine, "rollout_func", no_rollout_func)
    out = tmp_path / "tools"
    manifest = grpo.main([*TINY, "--output_dir", str(out), "--engine", "vllm", "--warmup_steps", "0",
                          "--eval_before_after", "false", "--tools", "[rlft.tools:calculator]", "--max_turns", "2",
                          "--max_completion_length", "48", "--vllm_max_model_len", "1024"])
    assert lora_b_all_nonzero(out)
    steps = [e for e in logged(out) if "loss" in e]
    assert [e["step"] for e in steps] == [1, 2]
    assert all({"tools/call_frequency", "tools/turns", "tools/answered"} <= set(e) for e in steps)
    assert manifest["results"]["tools"]["tools"] == ["calculator"] and manifest["results"]["tools"]["max_turns"] == 2
    rollout = manifest["results"]["rollout"]
    # the sync check's probe came from engine.generate's first rollout, and the check passed after step 1
    assert rollout["engine"] == "vllm" and rollout["sync_check"]["checks"] == 1
    assert rollout["sync_check"]["probe_tokens"] > 0


def test_transcripts_with_any_call_arguments_fit_trls_completions_table(tmp_path):
    """The model writes any JSON as arguments; TRL's log_completions parquet crashed a run on such a mix."""
    import pandas as pd
    import pyarrow as pa

    from rlft.training.grpo_trainer import parquet_safe

    def called(arguments):
        return [{"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "calculator", "arguments": arguments}}]},
            {"role": "tool", "name": "calculator", "content": "6"}, {"role": "assistant", "content": "6"}]

    rows = [called({"expression": "2*3"}), called("2*3"), called([1, 2]), called({"expression": 6}),
            [{"role": "assistant", "content": "6"}]]
    with pytest.raises(pa.ArrowInvalid):
        pd.DataFrame({"completion": rows}).to_parquet(tmp_path / "raw.parquet")
    pd.DataFrame({"completion": [parquet_safe(r) for r in rows]}).to_parquet(tmp_path / "safe.parquet")
    back = pd.read_parquet(tmp_path / "safe.parquet")["completion"]
    arguments = [t[0]["tool_calls"][0]["function"]["arguments"] for t in back[:4]]
    assert [json.loads(a) for a in arguments] == [{"expression": "2*3"}, "2*3", [1, 2], {"expression": 6}]
