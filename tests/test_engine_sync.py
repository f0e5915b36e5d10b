"""The policy vLLM samples is the one being trained: DoRA and QLoRA through merged weights, and the sync check.

Fast tests: the DoRA/adapter refusal, the tolerance and the check's arithmetic
on stand-ins. Slow tests: GRPO runs on the bundled model that share one vLLM
engine (starting one is most of a short run's time on 2 cores).
"""

from __future__ import annotations

import json

import pytest
import torch

from rlft import grpo
from rlft.core.errors import run_cli
from tests.test_grpo import PROMPTS, TINY, TINY_MODEL, engine_greedy, hf_greedy, logged, strip_eos

# -- refused before anything loads ---------------------------------------------------------------


def test_dora_with_adapter_sync_is_refused_before_the_model_loads(tmp_path, capsys):
    out = tmp_path / "run"
    code = run_cli(grpo.main, [*TINY, "--output_dir", str(out), "--engine", "vllm", "--vllm_sync", "adapter",
                               "--use_dora", "true"])
    lines = capsys.readouterr().err.strip().splitlines()  # progress bars may come first; the error is the last
    assert code == 2 and sum(line.startswith("error:") for line in lines) == 1, lines
    assert "vllm_sync: merged" in lines[-1] and "DoRA" in lines[-1], lines
    assert not out.exists()


def test_auto_sync_with_dora_is_merged_even_on_cuda(monkeypatch):
    from rlft.rollout.engine import resolve_sync

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_sync("auto", use_peft=True, use_dora=False) == "adapter"
    assert resolve_sync("auto", use_peft=True, use_dora=True) == "merged"
    assert resolve_sync("merged", use_peft=True, use_dora=True) == "merged"


# -- the sync check on stand-ins -----------------------------------------------------------------


def test_tolerance_follows_the_lower_precision():
    from rlft.rollout.engine import SYNC_TOLERANCE, sync_tolerance

    assert sync_tolerance("auto", "float32", trainer_bf16=False) == SYNC_TOLERANCE["float32"]
    assert sync_tolerance("auto", "bfloat16", trainer_bf16=False) == SYNC_TOLERANCE["bfloat16"]
    assert sync_tolerance("auto", "float32", trainer_bf16=True) == SYNC_TOLERANCE["bfloat16"]
    assert sync_tolerance("auto", "auto", trainer_bf16=False) == SYNC_TOLERANCE["bfloat16"]  # GPU: vLLM's own
    assert SYNC_TOLERANCE["float32"] < SYNC_TOLERANCE["bfloat16"]


def test_each_tolerance_sits_where_the_measured_gaps_put_it_and_the_run_says_what_it_catches():
    """``make bench-canary``: per engine dtype, a synced engine's largest gap and a step-behind engine's smallest."""
    import json

    from rlft.rollout.sync_check import SYNC_TOLERANCE, catches, sync_check_summary
    from tests.conftest import REPO

    measured = json.loads((REPO / "bench" / "results" / "canary.json").read_text())["dtypes"]
    f32 = measured["float32"]["summary"]["gap to the float32 trainer"]
    assert f32["synced_max"] < SYNC_TOLERANCE["float32"] < f32["behind_min"]  # one step behind is caught
    bf16 = measured["bfloat16"]["summary"]
    assert all(s["separation"] < 2 for s in bf16.values())  # no bf16 statistic told one step from rounding
    assert bf16["gap to the float32 trainer"]["synced_max"] < SYNC_TOLERANCE["bfloat16"]  # healthy syncs pass
    engine = type("E", (), {"sync_check": True, "sync_tolerance": SYNC_TOLERANCE["bfloat16"], "probe": [1, 2],
                            "sync_checks": []})()
    assert "far behind, not one step" in sync_check_summary(engine)["catches"]
    assert catches(SYNC_TOLERANCE["float32"]) == "an engine one step behind"


class ProbeEngine:
    """Scores the probe with a model of its own: the trainer's (a good sync) or another (a broken one)."""

    sync, dtype, sync_tolerance = "merged", "float32", 1e-3

    def __init__(self, model) -> None:
        self.model, self.probe, self.checks = model, [3, 1, 4, 1, 5, 9, 2, 6], []

    def probe_logprobs(self):
        from rlft.training.sync_canary import model_logprobs

        return model_logprobs(self.model, self.probe).tolist()

    def record_sync_check(self, gap, gap_max, seconds):
        self.checks.append(gap)


def tiny_lora():
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=16, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1)
    return get_peft_model(LlamaForCausalLM(config), LoraConfig(r=4, target_modules="all-linear", lora_dropout=0.5,
                                                               init_lora_weights=False))


def test_a_synced_engine_passes_and_logs_its_gap():
    from rlft.training.sync_canary import SyncCanary

    model = tiny_lora().train()  # dropout on: the check must score in eval mode, or the sides disagree
    canary = SyncCanary(ProbeEngine(model))
    canary.check(model, step=1)
    canary.check(model, step=2)
    logs = canary.pop_logs()
    assert logs["sync/logprob_gap"] == 0.0 and logs["sync/logprob_gap_max"] == 0.0
    assert canary.pop_logs() == {}, "each check is logged once"
    assert model.training, "the check puts the model back in training mode"


def test_a_stale_engine_stops_with_the_strategy_and_the_gap():
    from rlft.training.sync_canary import SyncCanary, SyncDrift

    stale = tiny_lora().eval()
    trained = tiny_lora()
    with torch.no_grad():
        for name, param in trained.named_parameters():
            if "lora_B" in name:
                param.add_(0.5)
    engine = ProbeEngine(stale)
    with pytest.raises(SyncDrift, match=r"step 3 \(vllm_sync: merged, engine float32\).* by [0-9.e-]+ nats/token"):
        SyncCanary(engine).check(trained, step=3)
    assert engine.checks and engine.checks[0] > engine.sync_tolerance  # recorded for the manifest before stopping


# -- GRPO with the vLLM engine on the tiny model -------------------------------------------------

GREEDY_TOKENS = 16  # greedy comparisons after training: test_grpo's 4 prompts, short completions


@pytest.fixture(scope="module")
def shared_engine():
    """Every run in this module gets the same vLLM engine, set back to the run's settings and start weights.

    The first run starts it through rlft's own ``make_engine``; a later run
    reuses it as a fresh engine would begin: the run's config and tolerance,
    the starting model's weights, no probe and no counters.
    """
    from rlft.rollout import engine as rollout

    real_make, real_close = rollout.make_engine, rollout.VLLMEngine.close
    held: dict = {}

    def make_engine(args, cfg, model_args, tokenizer, start_model=None):
        engine = held.get("engine")
        if engine is None:
            engine = held["engine"] = real_make(args, cfg, model_args, tokenizer, start_model)
            assert engine is not None, "the vLLM engine did not start"
            return engine
        sync = rollout.resolve_sync(args.vllm_sync, model_args.use_peft, model_args.use_dora)
        assert sync == engine.sync, "the shared engine serves one sync strategy"
        engine.cfg, engine.sync_check = cfg, args.sync_check
        engine.sync_tolerance = rollout.sync_tolerance(args.sync_check_tolerance, engine.dtype, cfg.bf16)
        engine.sync_weights(start_model)  # the base weights, as a new engine starts from
        engine.probe, engine.sync_seconds, engine.sync_checks = None, [], []
        return engine

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rollout, "make_engine", make_engine)
        patch.setattr(rollout.VLLMEngine, "close", lambda self: None)  # the runs' own close: kept open
        yield held
    if "engine" in held:
        real_close(held["engine"])


def vllm_run(out, *extra):
    # no warmup: the recipe's first step has learning rate 0, and every step here must move the weights;
    # one prompt of 4 completions per step (test_grpo's 2): length_reward spreads every group, the step is half
    return [*TINY, "--output_dir", str(out), "--engine", "vllm", "--vllm_sync", "merged", "--vllm_dtype", "float32",
            "--bf16", "false", "--eval_before_after", "false", "--warmup_steps", "0",
            "--per_device_train_batch_size", "4", *extra]


@pytest.mark.slow
def test_qlora_grpo_samples_the_trained_policy(shared_engine, tmp_path, bundled_tokenizer):
    """A 4-bit base: the engine starts from its dequantized weights and follows base + adapter exactly.

    First in this module, so the shared engine starts from the quantized model (rlft's own start path).
    """
    from peft import PeftModel

    from rlft.core.loading import LoadOptions
    from rlft.core.models import load_model
    from rlft.training.sync_canary import logprob_gap, model_logprobs

    out = tmp_path / "qlora"
    manifest = grpo.main(vllm_run(out, "--load_in_4bit", "true", "--use_bnb_nested_quant", "true"))
    engine = shared_engine["engine"]
    assert manifest["load_options"]["quantization"]["bits"] == 4
    rollout = manifest["results"]["rollout"]
    assert rollout["engine"] == "vllm" and rollout["sync"] == "merged" and rollout["syncs"] == 1
    [step2] = [e for e in logged(out) if e.get("step") == 2 and "loss" in e]
    assert step2["sync/logprob_gap"] <= rollout["sync_check"]["tolerance"], step2

    # the trained adapter on the 4-bit base, served by the engine and by HF+peft
    options = LoadOptions(quantization={"bits": 4, "quant_type": "nf4", "double_quant": True})
    policy = PeftModel.from_pretrained(load_model(str(TINY_MODEL), "float32", options=options),
                                       str(out)).eval()
    engine.sync_weights(policy)
    with torch.no_grad():
        expected = hf_greedy(policy, bundled_tokenizer, engine, max_tokens=GREEDY_TOKENS)
    got = engine_greedy(engine, max_tokens=GREEDY_TOKENS)
    assert [strip_eos(g, bundled_tokenizer) for g in got] == [strip_eos(e, bundled_tokenizer) for e in expected]
    for prompt, completion in zip(PROMPTS, got, strict=True):
        engine.probe = engine.encode(prompt) + completion
        gap, gap_max = logprob_gap(engine.probe_logprobs(), model_logprobs(policy, engine.probe))
        assert gap < 1e-4 and gap_max < 1e-3, (gap, gap_max)


@pytest.mark.slow
def test_dora_grpo_samples_the_trained_policy(shared_engine, tmp_path, bundled_tokenizer):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from rlft.training.sync_canary import logprob_gap, model_logprobs

    out = tmp_path / "dora"
    manifest = grpo.main(vllm_run(out, "--use_dora", "true"))
    engine = shared_engine["engine"]
    rollout = manifest["results"]["rollout"]
    assert rollout["engine"] == "vllm" and rollout["sync"] == "merged" and rollout["syncs"] == 1
    check = rollout["sync_check"]
    [step2] = [e for e in logged(out) if e.get("step") == 2 and "loss" in e]
    assert check["checks"] == 1 and step2["sync/logprob_gap"] <= check["tolerance"], (step2, check)
    assert step2["sync/logprob_gap"] == pytest.approx(check["logprob_gap"])

    # the trained DoRA adapter (two optimizer steps), served by the engine and by HF+peft
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["use_dora"] is True
    base = AutoModelForCausalLM.from_pretrained(TINY_MODEL, dtype=torch.float32)
    policy = PeftModel.from_pretrained(base, str(out)).eval()
    magnitudes = [p for n, p in policy.named_parameters() if "lora_magnitude_vector" in n]
    assert magnitudes, "no DoRA magnitude vector was trained"
    engine.sync_weights(policy)
    with torch.no_grad():
        expected = hf_greedy(policy, bundled_tokenizer, engine, max_tokens=GREEDY_TOKENS)
    got = engine_greedy(engine, max_tokens=GREEDY_TOKENS)
    assert [strip_eos(g, bundled_tokenizer) for g in got] == [strip_eos(e, bundled_tokenizer) for e in expected]
    for prompt, completion in zip(PROMPTS, got, strict=True):  # per-token logprobs, float32 on both sides
        engine.probe = engine.encode(prompt) + completion
        gap, gap_max = logprob_gap(engine.probe_logprobs(), model_logprobs(policy, engine.probe))
        assert gap < 1e-4 and gap_max < 1e-3, (gap, gap_max)


@pytest.mark.slow
def test_a_skipped_sync_stops_the_run_with_a_checkpoint(shared_engine, tmp_path, capsys, monkeypatch):
    from rlft.core.run_dir import complete_checkpoints
    from rlft.rollout.engine import VLLMEngine

    skipped = []
    real_sync = VLLMEngine.sync_weights

    def sync_weights(self, model):
        # the trainer's first sync (after step 1; the policy is a peft model, the reset's start model is not)
        # silently does nothing: the engine keeps the base weights
        if hasattr(model, "peft_config") and not skipped:
            skipped.append(self.version)
            return
        real_sync(self, model)

    out = tmp_path / "stale"
    args = vllm_run(out, "--max_steps", "3")
    monkeypatch.setattr(VLLMEngine, "sync_weights", sync_weights)
    code = run_cli(grpo.main, args)
    err = capsys.readouterr().err
    assert skipped, "the sync was never skipped: this test proves nothing"
    # one error, on the last line (after the progress bar, which ends without a newline)
    assert code == 3 and err.count("error: ") == 1, err[-2000:]
    line = "error: " + err.split("error: ")[1]
    assert line.count("\n") == 1 and line.endswith("\n"), line
    assert line.startswith("error: sync check failed after the sync at step 1 (vllm_sync: merged, engine float32)")
    assert "nats/token" in line and "checkpoint-1" in line, line
    assert [p.name for p in complete_checkpoints(out)] == ["checkpoint-1"]
    manifest = json.loads((out / "rlft_manifest.json").read_text())
    assert manifest["status"] == "failed" and "sync check failed" in manifest["results"]["error"]

