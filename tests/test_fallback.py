"""An engine that cannot start: the run says so everywhere, or stops with one line when asked to."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rlft import grpo
from rlft.core.errors import UserError
from rlft.evaluation.closing import closing_text
from rlft.rollout import engine as rollout


@pytest.fixture
def broken_vllm(monkeypatch):
    def cannot_start(self, *args, **kwargs):
        raise OSError("no space left on /dev/shm")

    monkeypatch.setattr(rollout.VLLMEngine, "__init__", cannot_start)


def args_for(fallback: str) -> SimpleNamespace:
    model = SimpleNamespace(use_peft=True, use_dora=False, chat_template_kwargs=None)
    return SimpleNamespace(train=SimpleNamespace(), model=model), rollout.RolloutArguments(
        engine="vllm", rollout_fallback=fallback)


def test_a_fallback_is_recorded_and_printed(broken_vllm, caplog):
    stage = grpo.GRPO()
    args, rollout_args = args_for("hf")
    assert stage.start_engine(rollout_args, args, tokenizer=None, model=None) is None
    results = stage.results(trainer=None)
    assert results["rollout"] == {"engine": "hf", "fallback_from": "vllm",
                                  "fallback_reason": "OSError: no space left on /dev/shm"}
    assert "vLLM engine unavailable" in caplog.text
    text = closing_text({"results": results}, "runs/math")
    assert "rollouts: hf engine (fell back from vllm: OSError: no space left on /dev/shm)" in text


def test_rollout_fallback_error_is_a_one_line_refusal(broken_vllm):
    stage = grpo.GRPO()
    args, rollout_args = args_for("error")
    with pytest.raises(UserError) as err:
        stage.start_engine(rollout_args, args, tokenizer=None, model=None)
    message = str(err.value)
    assert "\n" not in message and "no space left" in message and "rollout_fallback: hf" in message


def test_engine_that_started_is_named_with_its_sync():
    text = closing_text({"results": {"rollout": {"engine": "vllm", "sync": "merged"}}}, "runs/math")
    assert text.splitlines()[0] == "rollouts: vllm engine, merged sync"
