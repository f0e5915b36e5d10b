"""The CUDA branches, on CPU: which vLLM path a launch gets, what is refused, and TRL's colocate mode wired in.

``rlft.core.accelerator.cuda_available`` is mocked to say CUDA. TRL's
``VLLMGeneration`` (which would start vLLM on the GPU) is replaced by
:class:`FakeColocate`: a copy of the policy in transformers that TRL syncs
(merged weights) and samples from exactly as it would call vLLM. The GRPO
run then goes through TRL's own ``use_vllm`` colocate code path, with rlft's
sync check, evaluation during training and manifest on top.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from rlft import grpo
from rlft.core.accelerator import HF, RLFT_ENGINE, TRL_COLOCATE, Launch, rollout_backend
from rlft.core.errors import UserError, run_cli
from tests.test_grpo import TINY, logged

GPU, GPUS = Launch(cuda=True, processes=1, zero3=False), Launch(cuda=True, processes=8, zero3=True)
CPU, CPUS = Launch(cuda=False, processes=1, zero3=False), Launch(cuda=False, processes=2, zero3=False)


@pytest.mark.parametrize(("launch", "engine", "sync", "backend"), [
    (CPU, "hf", "auto", HF), (CPUS, "hf", "auto", HF), (GPUS, "hf", "auto", HF),
    (CPU, "vllm", "auto", RLFT_ENGINE), (CPU, "vllm", "adapter", RLFT_ENGINE), (CPU, "vllm", "merged", RLFT_ENGINE),
    (GPU, "vllm", "auto", TRL_COLOCATE), (GPU, "vllm", "merged", TRL_COLOCATE), (GPUS, "vllm", "auto", TRL_COLOCATE),
    (GPU, "vllm", "adapter", RLFT_ENGINE),
])
def test_each_launch_gets_a_tested_rollout_path(launch, engine, sync, backend):
    assert rollout_backend(launch, engine, sync) == backend


@pytest.mark.parametrize(("launch", "sync", "four_bit", "says"), [
    (CPUS, "merged", False, "refused with 2 processes: launch one process, or use engine: hf"),
    (Launch(cuda=False, processes=1, zero3=True), "auto", False, "refused with ZeRO-3: use launch/zero2.yaml"),
    (Launch(cuda=True, processes=2, zero3=False), "adapter", False, "TRL's colocate mode runs one engine per rank"),
    (Launch(cuda=True, processes=1, zero3=True), "adapter", False, "TRL's colocate mode gathers ZeRO-3"),
    (GPU, "auto", True, "with load_in_4bit use vllm_sync: adapter"),
])
def test_untested_combinations_are_refused_with_what_to_use(launch, sync, four_bit, says):
    with pytest.raises(UserError, match=says):
        rollout_backend(launch, "vllm", sync, load_in_4bit=four_bit)


def test_several_processes_with_the_own_engine_stop_before_the_model_loads(tmp_path, capsys, monkeypatch):
    # as accelerate launch --num_processes 2 would set WORLD_SIZE (here without starting a process group)
    monkeypatch.setattr(Launch, "current", classmethod(lambda cls: CPUS))
    out = tmp_path / "run"
    code = run_cli(grpo.main, [*TINY, "--output_dir", str(out), "--engine", "vllm"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and lines[-1].startswith("error: ") and "refused with 2 processes" in lines[-1], lines
    assert not out.exists()


# -- TRL's colocate mode, with vLLM replaced by a transformers copy of the policy ----------------------------

CREATED: list = []


class FakeLLM:
    """The part of ``vllm.LLM`` rlft calls on TRL's engine: greedy text and prompt logprobs."""

    def __init__(self, owner) -> None:
        self.owner = owner
        self.llm_engine = SimpleNamespace(model_config=SimpleNamespace(dtype=torch.float32, max_model_len=1024))

    def generate(self, requests, params, use_tqdm=False):
        model, tok = self.owner.engine_model, self.owner.processing_class
        results = []
        for request in requests:
            ids = torch.tensor([request["prompt_token_ids"]])
            if params.prompt_logprobs is not None:
                lps = self.owner.logprobs(ids[0].tolist(), temperature=1.0)
                scores = [None] + [{t: SimpleNamespace(logprob=lp)} for t, lp in zip(ids[0, 1:].tolist(), lps)]
                results.append(SimpleNamespace(prompt_logprobs=scores, outputs=[]))
                continue
            with torch.no_grad():
                out = model.generate(ids, max_new_tokens=params.max_tokens, do_sample=False,
                                     pad_token_id=tok.pad_token_id)[0, ids.shape[1]:]
            text = tok.decode(out, skip_special_tokens=True)
            results.append(SimpleNamespace(outputs=[SimpleNamespace(text=text)], prompt_logprobs=None))
        return results


class FakeColocate:
    """TRL's ``VLLMGeneration`` in colocate mode, with a transformers model where vLLM's weights would be."""

    def __init__(self, model, accelerator, processing_class, **kwargs) -> None:
        from transformers import AutoModelForCausalLM

        self.model, self.processing_class, self.kwargs = model, processing_class, kwargs
        self.mode, self.tensor_parallel_size = kwargs["mode"], kwargs["tensor_parallel_size"]
        self.enable_sleep_mode = kwargs["enable_sleep_mode"]
        self.engine_model = AutoModelForCausalLM.from_config(model.config).eval()  # a plain model, as vLLM's
        self.load()
        self.llm, self.syncs, self.generated = FakeLLM(self), 0, 0
        CREATED.append(self)

    def load(self) -> None:
        from rlft.rollout.merged_weights import merged_state_dict

        result = self.engine_model.load_state_dict(merged_state_dict(self.model), strict=False)
        assert not result.unexpected_keys and set(result.missing_keys) <= {"lm_head.weight"}, result  # tied head
        self.engine_model.tie_weights()

    def sync_weights(self) -> None:  # TRL: merge the adapter, load the weights in place
        self.load()
        self.syncs += 1

    def logprobs(self, ids, temperature):
        with torch.no_grad():
            logits = self.engine_model(input_ids=torch.tensor([ids])).logits[0, :-1].float() / temperature
        return torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids[1:])[:, None])[:, 0].tolist()

    def generate(self, prompts, images=None, num_generations=1, profiler=None):
        """Sampled completions for every prompt in one left-padded batch, cut after the first EOS as vLLM stops."""
        tok, k = self.processing_class, self.kwargs
        width, pad = max(len(ids) for ids in prompts), tok.pad_token_id
        batch = torch.tensor([[pad] * (width - len(ids)) + list(ids) for ids in prompts])  # [B, T]
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts])  # [B, T]
        with torch.no_grad():
            out = self.engine_model.generate(batch, attention_mask=mask, do_sample=True, temperature=k["temperature"],
                                             top_k=0, top_p=1.0, max_new_tokens=k["max_completion_length"],
                                             pad_token_id=pad)[:, width:].tolist()  # [B, new]
        stops = self.engine_model.generation_config.eos_token_id
        stops = set(stops if isinstance(stops, list) else [stops])
        completion_ids = [row[:next((i + 1 for i, t in enumerate(row) if t in stops), len(row))] for row in out]
        prompt_ids = [list(ids) for ids in prompts]
        logprobs = [[[lp] for lp in self.logprobs(ids + out, k["temperature"])[len(ids) - 1:]]
                    for ids, out in zip(prompt_ids, completion_ids, strict=True)]
        self.generated += len(prompts)
        return prompt_ids, completion_ids, logprobs, None


@pytest.fixture
def on_cuda(monkeypatch):
    """CUDA as rlft's decisions see it, and TRL's colocated vLLM replaced by :class:`FakeColocate`."""
    pytest.importorskip("vllm")  # rlft's wrapper builds vLLM's SamplingParams
    monkeypatch.setattr("rlft.core.accelerator.cuda_available", lambda: True)
    monkeypatch.setattr("trl.trainer.grpo_trainer.VLLMGeneration", FakeColocate)
    CREATED.clear()
    return CREATED


@pytest.mark.slow
def test_on_cuda_trl_colocate_generates_with_rlft_checks_on_top(on_cuda, tmp_path):
    out = tmp_path / "run"
    manifest = grpo.main([*TINY, "--output_dir", str(out), "--engine", "vllm", "--max_steps", "3",
                          "--eval_steps", "2"])
    [engine] = on_cuda
    # every rollout came from TRL's vLLM path: 3 steps x 2 micro-batches (math.yaml) x 8 completions
    assert engine.mode == "colocate" and engine.generated == 3 * 2 * 8
    assert engine.kwargs["max_model_length"] == 256  # rlft's vllm_max_model_len, under TRL's name
    rollout = manifest["results"]["rollout"]
    assert rollout["backend"] == "TRL colocate" and rollout["sync"] == "trl-colocate"
    # synced before the first rollout and after each step (the evaluations at steps 2 and 3 sync first, and
    # step 3's rollouts reuse the step-2 sync); rlft's sync check ran after each sync but the first: on-policy
    assert engine.syncs == 4 and rollout["sync_check"]["checks"] == 3
    assert rollout["sync_check"]["logprob_gap"] < 1e-3
    log = logged(out)
    assert [e["step"] for e in log if "sync/logprob_gap" in e] == [2, 3]
    evals = [e for e in log if "eval/accuracy" in e]
    assert [e["step"] for e in evals] == [2, 3]  # greedy evaluation answered by the colocated engine
    assert json.loads((out / "rlft_manifest.json").read_text())["results"]["rollout"] == rollout


@pytest.mark.slow
def test_on_cuda_a_stale_colocated_engine_is_caught(on_cuda, tmp_path, capsys, monkeypatch):
    # weights never reach the engine; the warmup's first step (learning rate 0) leaves the policy as it was
    monkeypatch.setattr(FakeColocate, "sync_weights", lambda self: None)
    out = tmp_path / "run"
    code = run_cli(grpo.main, [*TINY, "--output_dir", str(out), "--engine", "vllm", "--max_steps", "3"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3 and "sync check failed after the sync at step 2 (vllm_sync: trl-colocate" in err[-1], err


# -- when TRL's vLLM cannot start -------------------------------------------------------------------------------


def test_a_failure_inside_trls_vllm_start_is_one_line_naming_engine_hf():
    from rlft.rollout.colocate import with_engine_start

    def build():  # an error raised from TRL's vLLM start, as its traceback would show it
        code = compile("raise RuntimeError('CUDA out of memory.\\nTried to allocate 2 GiB')",
                       "/site-packages/trl/generation/vllm_generation.py", "exec")
        exec(code)  # noqa: S102 - a fixed line, compiled under TRL's file name

    with pytest.raises(UserError) as err:
        with_engine_start(build)
    message = str(err.value)
    assert "\n" not in message and message.startswith("engine: vllm (TRL's colocate mode) could not start: "
                                                      "RuntimeError: CUDA out of memory.")
    assert message.endswith("engine: hf generates with transformers")

    def elsewhere():
        raise ValueError("a bad dataset")

    with pytest.raises(ValueError, match="a bad dataset"):  # anything else is not dressed up as a vLLM problem
        with_engine_start(elsewhere)


@pytest.mark.parametrize("fallback", ["hf", "error"])
def test_on_cuda_without_vllm_installed_the_fallback_applies(fallback, monkeypatch):
    import importlib.util

    from rlft.rollout.engine import RolloutArguments
    from rlft.tools.loading import ToolArguments

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(Launch, "current", classmethod(lambda cls: GPU))
    stage, rollout = grpo.GRPO(), RolloutArguments(engine="vllm", rollout_fallback=fallback)
    args = SimpleNamespace(model=SimpleNamespace(load_in_4bit=False),
                           get={RolloutArguments: rollout, ToolArguments: ToolArguments()}.get)
    if fallback == "error":
        with pytest.raises(UserError, match="vllm is not installed"):
            stage.settle_config(args)
        return
    assert stage.settle_config(args) == {}  # no colocate settings: TRL generates itself
    assert stage.fallback == {"fallback_from": "vllm", "fallback_reason": "vllm is not installed (pip install "
                                                                          "'rlft[gpu]')"}
