"""GRPO mechanics on a tiny random Llama: each engine and sync strategy trains; vLLM matches HF+peft."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch

from rlft import grpo
from tests.helpers import tiny_model_dir

pytestmark = pytest.mark.slow

TINY_MODEL = tiny_model_dir()  # a 2-layer random Llama: these tests check mechanics, not what a model says
TINY = ["recipes/math.yaml", "--model_name_or_path", str(TINY_MODEL), "--max_steps", "2", "--per_device_train_batch_size", "8", "--num_generations", "4",
        "--max_completion_length", "16", "--num_train_samples", "32", "--num_test_samples", "4",
        "--eval_samples", "4", "--eval_max_new_tokens", "8", "--save_strategy", "no", "--report_to", "none",
        "--log_completions", "false", "--learning_rate", "1e-3", "--vllm_gpu_memory_utilization", "0.15",
        "--vllm_max_model_len", "256", "--reward_funcs", "[accuracy, tests.helpers:length_reward]",
        "--reward_weights", "[1.0, 1.0]"]


def lora_b_all_nonzero(out) -> bool:
    from safetensors.torch import load_file

    weights = load_file(out / "adapter_model.safetensors")
    lora_b = [t for k, t in weights.items() if "lora_B" in k]
    return bool(lora_b) and all(torch.count_nonzero(t) > 0 for t in lora_b)


def tensorboard_tags(out) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: set[str] = set()
    for events in out.rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    return tags


def logged(out) -> list[dict]:
    return [json.loads(line) for line in (out / "log_history.jsonl").read_text().splitlines()]


# Third-party output rlft keeps off the console (it goes to run.log): checked notices, the vLLM engine
# process, TRL's completion tables and the trainer's metric dicts.
FILTERED = ("Setting accelerator to CPU", "which is an experimental feature", "TRL currently supports vLLM",
            "Triton is installed", "Loading safetensors checkpoint shards", "NUMA binding", "reduce_op",
            "Step 1", "{'loss'", "Loading weights")


def run_quietly(args, out):
    from tests.conftest import REPO, run_cmd

    run = run_cmd([".venv/bin/rlft", "grpo", *args], env={"PYTHONPATH": str(REPO)})  # tests.helpers rewards
    assert run.returncode == 0, run.stderr[-3000:]
    shown = run.stdout + run.stderr
    assert not [text for text in FILTERED if text in shown], shown
    assert "grpo 2/2" in shown and "reward " in shown and "trained " in shown  # rlft's bar, then the table
    log = (out / "run.log").read_text()
    for text in ("Setting accelerator to CPU", "Loading safetensors checkpoint shards", "Step 1", "step 1: {'loss'"):
        assert text in log, text
    return json.loads((out / "rlft_manifest.json").read_text())


@pytest.mark.parametrize(
    "engine", [["hf"], ["vllm", "merged"], ["vllm", "adapter"]], ids=["hf", "vllm-merged", "vllm-adapter"]
)
def test_two_steps_train_and_log_rewards(engine, tmp_path):
    out = tmp_path / "run"
    args = [*TINY, "--output_dir", str(out), "--engine", engine[0]]
    if len(engine) > 1:
        args += ["--vllm_sync", engine[1]]
    if engine == ["vllm", "merged"]:  # a rerun over an old run: --overwrite must not break TRL's completion logs
        out.mkdir()
        (out / "old.txt").write_text("from an earlier run")
        args += ["--overwrite", "--log_completions", "true"]
    if engine == ["hf"]:
        args += ["--report_to", "tensorboard"]  # the recipe's default logger: local event files
    if engine == ["vllm", "merged"]:  # as a user runs it, in a fresh process: what the console shows
        manifest = run_quietly(args, out)
    else:
        manifest = grpo.main(args)
    steps = [e for e in logged(out) if "rewards/accuracy/mean" in e]
    assert [e["step"] for e in steps] == [1, 2]
    assert all("rewards/accuracy/none" in e for e in steps)
    assert lora_b_all_nonzero(out), "the adapter must move"
    rollout = manifest["results"]["rollout"]
    assert rollout["engine"] == engine[0], "the vLLM engine must not have fallen back to hf"
    if engine == ["hf"]:
        assert tensorboard_tags(out) >= {"train/rewards/accuracy/mean", "train/frac_reward_zero_std", "train/loss"}
    if engine[0] == "vllm":
        assert rollout["sync"] == engine[1] and rollout["syncs"] == 1  # after step 1; step 2 is the last
        assert all("sampling/importance_sampling_ratio/mean" in e for e in steps)  # TRL's IS correction ran
        check = rollout["sync_check"]  # the sync after step 1 was checked, and passed
        assert check["checks"] == 1 and steps[1]["sync/logprob_gap"] <= check["tolerance"], (steps[1], check)
    if engine == ["vllm", "merged"]:
        assert not (out / "old.txt").exists() and len(list((out / "completions").glob("*.parquet"))) == 2


def test_hf_engine_trains_exactly_like_stock_trl(tmp_path):
    """rlft's trainer layers (zero-advantage skipping, reward guards, atomic checkpoints) change no number.

    Same recipe and seed through ``rlft grpo --engine hf`` and through plain TRL
    ``GRPOTrainer`` (tests/bench/stock_trl_grpo.py): TRL's generation draws the same samples,
    so every step's loss and gradient norm and the final adapter must agree.
    """
    from safetensors.torch import load_file

    from tests.bench.stock_trl_grpo import stock_trainer

    args = [*TINY, "--max_steps", "3", "--engine", "hf", "--eval_before_after", "false"]
    grpo.main([*args, "--output_dir", str(tmp_path / "rlft")])
    stock = stock_trainer([*args, "--output_dir", str(tmp_path / "stock")])
    stock.train()
    stock.save_model(str(tmp_path / "stock"))

    def per_step(history):
        rows = [e for e in history if "rewards/accuracy/mean" in e]
        return [e["step"] for e in rows], [v for e in rows for v in (e["loss"], e["grad_norm"])]

    (steps, ours), (_, theirs) = per_step(logged(tmp_path / "rlft")), per_step(stock.state.log_history)
    assert steps == [1, 2, 3] and any(ours[1::2]), "no step had a gradient: this test would prove nothing"
    assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-7)
    mine, reference = (load_file(tmp_path / side / "adapter_model.safetensors") for side in ("rlft", "stock"))
    assert mine.keys() == reference.keys()
    for key, tensor in mine.items():
        torch.testing.assert_close(tensor, reference[key], rtol=1e-5, atol=1e-7, msg=key)


def test_enable_thinking_off_reaches_the_rollout_prompts(thinking_tokenizer, tmp_path):
    """The recipe's chat_template_kwargs reach GRPOConfig, so TRL's generation renders prompts with them."""
    from rlft.core import data
    from rlft.core.models import load_model
    from rlft.stage.skeleton import StageArgs
    from tests.conftest import THINKING_OFF

    stage = grpo.GRPO()
    args = StageArgs(*stage.parse([*TINY, "--output_dir", str(tmp_path), "--engine", "hf",
                                   "--chat_template_kwargs", "{enable_thinking: false}"]))
    assert args.train.chat_template_kwargs == args.model.chat_template_kwargs == {"enable_thinking": False}
    splits = data.load_splits(args.data, seed=args.train.seed)
    stage.check_data(args, splits)
    trainer = stage.build_trainer(args, splits, thinking_tokenizer, load_model(args.model.model_name_or_path))
    prompts = [row["prompt"] for row in splits["train"].select(range(2))]
    prompt_ids, _images, _fields = trainer._tokenize_prompts(prompts)  # what TRL's generation encodes
    texts = thinking_tokenizer.batch_decode(prompt_ids)
    assert all(text.startswith(f"{THINKING_OFF}\n<|im_start|>system") for text in texts), texts


def test_full_fine_tuning_updates_every_trained_weight(tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "full"
    manifest = grpo.main([*TINY, "--output_dir", str(out), "--engine", "hf", "--use_peft", "false",
                          "--max_steps", "1", "--learning_rate", "1e-5", "--warmup_steps", "0", "--bf16", "false"])
    assert manifest["results"]["table"][0]["model"] == "base"
    before = load_file(TINY_MODEL / "model.safetensors")
    after = load_file(out / "model.safetensors")
    moved = [k for k in after if k in before and not torch.equal(after[k], before[k])]
    assert len(moved) > len(after) // 2, f"one full-fine-tuning step moved only {len(moved)}/{len(after)} tensors"
    log = [json.loads(line) for line in (out / "log_history.jsonl").read_text().splitlines()]
    step = next(e for e in log if "loss" in e)
    assert step["grad_norm"] > 0 and math.isfinite(step["loss"])


# -- vLLM against HF+peft on the same adapter (float32, where the two agree exactly) --------------


@pytest.fixture(scope="module")
def policy():
    """The tiny model with a LoRA adapter whose B matrices are small but non-zero (a trained-like policy)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(TINY_MODEL, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.mul_(0.05)
    return model.eval()


PROMPTS = [[{"role": "user", "content": q}] for q in
           ("What is 12 + 30?", "What is the capital of France?", "Name three colors.", "What is 7 times 8?")]


TEMPERATURE = 0.8  # the math recipe's: the engine must apply it when sampling, the trainer when scoring


def make_engine(sync, tokenizer):
    from rlft.rollout.engine import RolloutArguments, VLLMEngine

    cfg = SimpleNamespace(seed=0, per_device_train_batch_size=8, steps_per_generation=1, bf16=False,
                          vllm_gpu_memory_utilization=0.15, temperature=TEMPERATURE,
                          top_p=1.0, top_k=0, min_p=None, max_completion_length=24, repetition_penalty=1.0,
                          generation_kwargs=None)
    model_args = SimpleNamespace(model_name_or_path=str(TINY_MODEL), chat_template_kwargs=None,
                                 lora_r=8, use_peft=True)
    args = RolloutArguments(engine="vllm", vllm_sync=sync, vllm_dtype="float32", vllm_max_model_len=256)
    return VLLMEngine(args, cfg, model_args, tokenizer, sync)


def hf_greedy(model, tokenizer, engine, max_tokens=24):
    outs = []
    for prompt in PROMPTS:
        ids = torch.tensor([engine.encode(prompt)])
        gen = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
        outs.append(gen[0, ids.shape[1]:].tolist())
    return outs


def engine_greedy(engine, max_tokens=24):
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
    results = engine.llm.generate([TokensPrompt(prompt_token_ids=engine.encode(p)) for p in PROMPTS], params,
                                  lora_request=engine.lora_request, use_tqdm=False)
    return [list(r.outputs[0].token_ids) for r in results]


def strip_eos(ids, tokenizer):
    return [t for t in ids if t != tokenizer.eos_token_id]


@pytest.mark.parametrize("sync", ["merged", "adapter"])
def test_synced_engine_matches_hf_peft_greedy(sync, policy, bundled_tokenizer):
    engine = make_engine(sync, bundled_tokenizer)
    try:
        before = engine_greedy(engine)
        engine.sync_weights(policy)
        after = engine_greedy(engine)
        with torch.no_grad():
            expected = hf_greedy(policy, bundled_tokenizer, engine)
            with policy.disable_adapter():
                base_expected = hf_greedy(policy, bundled_tokenizer, engine)
        assert [strip_eos(a, bundled_tokenizer) for a in before] == [strip_eos(a, bundled_tokenizer) for a in base_expected]
        assert [strip_eos(a, bundled_tokenizer) for a in after] == [strip_eos(a, bundled_tokenizer) for a in expected]
        assert after != before, "the adapter must change some greedy output, or this test proves nothing"
        if sync == "merged":
            logprob_agreement(engine, policy, bundled_tokenizer)
        # a second optimizer step: the merged sync now rewrites its weights file in place
        negate_lora_b(policy)
        try:
            engine.sync_weights(policy)
            again = engine_greedy(engine)
            with torch.no_grad():
                expected_again = hf_greedy(policy, bundled_tokenizer, engine)
        finally:
            negate_lora_b(policy)
        assert [strip_eos(a, bundled_tokenizer) for a in again] == [strip_eos(a, bundled_tokenizer) for a in expected_again]
        assert again != after, "the second sync must reach the engine"
    finally:
        engine.close()


def negate_lora_b(model):
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.neg_()


def logprob_agreement(engine, policy, tokenizer, group=8):
    """The engine's samples against the trainer's forward pass on the same sequences, at TEMPERATURE.

    1. Each sampled token's logprob, as the engine reports it, equals the trainer's.
    2. The engine samples from that distribution: for x_t drawn from p_t, log p_t(x_t) + H(p_t)
       has mean 0 given the prefix, so over all tokens sum(d) / sqrt(sum(d^2)) is ~N(0, 1)
       (a martingale CLT). A sampler at another temperature, or with a hidden top-k, shifts it.
    """
    trainer = SimpleNamespace(num_generations=group, num_generations_eval=group,
                              model=SimpleNamespace(training=True))
    prompts = [p for p in PROMPTS for _ in range(group)]
    out = engine.rollout_func(prompts, trainer)
    assert len(out["completion_ids"]) == len(prompts)
    diffs, d = [], []
    with torch.no_grad():
        for p_ids, c_ids, lps in zip(out["prompt_ids"], out["completion_ids"], out["logprobs"], strict=True):
            ids = torch.tensor([p_ids + c_ids])
            logits = policy(ids).logits[0, len(p_ids) - 1:-1].float() / TEMPERATURE  # [T_c, V]
            logp = torch.log_softmax(logits, -1)
            ref = logp.gather(-1, torch.tensor(c_ids)[:, None])[:, 0]
            diffs.append((ref - torch.tensor(lps)).abs())
            d.append(ref - (logp.exp() * logp).sum(-1))  # log p(x_t) + H_t
    diff = torch.cat(diffs)
    # stated tolerance (float32 on both sides): mean < 1e-3, max < 2e-2 nats per token
    assert diff.mean() < 1e-3 and diff.max() < 2e-2, (diff.mean().item(), diff.max().item())
    d = torch.cat(d).double()
    z = (d.sum() / d.square().sum().sqrt()).item()
    assert abs(z) < 4.5, f"engine samples are not drawn from its reported distribution (z = {z:.1f}, {d.numel()} tokens)"


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--reward_funcs", "[accuracy]", "--reward_weights", "[1.0]"], "needs a dataset column 'answer'"),
        (["--reward_funcs", "[accuracy]", "--reward_weights", "[1.0, 2.0]"], "reward_weights has 2 values for 1"),
        (["--reward_funcs", "[tests.helpers:broken_reward]", "--reward_weights", "[1.0]"],
         "failed on the first training row: ZeroDivisionError"),
    ],
)
def test_reward_problems_fail_before_training(extra, needle, tmp_path):
    from rlft.core.errors import UserError

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"What is {i}?", "gold": str(i)}) + "\n" for i in range(10)))
    with pytest.raises(UserError, match=needle):
        grpo.main(["recipes/math.yaml", "--dataset_name", str(data), "--output_dir", str(tmp_path / "o"), *extra])
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_the_reference_of_full_fine_tuning_from_a_run_is_the_starting_model_not_the_raw_base(tmp_path):
    """beta > 0 without LoRA: TRL would load its reference from config._name_or_path, the raw base."""
    import torch

    from rlft import sft
    from rlft.core.models import load_model
    from rlft.grpo import GRPO
    from rlft.stage.skeleton import StageArgs

    start = tmp_path / "sft"
    sft.main(["recipes/sft.yaml", "--model_name_or_path", str(TINY_MODEL), "--max_steps", "2", "--learning_rate",
              "0.05", "--num_train_samples", "8", "--num_test_samples", "2", "--eval_before_after", "false",
              "--save_strategy", "no", "--report_to", "none", "--output_dir", str(start)])
    stage = GRPO()
    args = stage.settle(StageArgs(*stage.parse([*TINY[:1], "--model_name_or_path", str(start), *TINY[3:],
                                                "--use_peft", "false", "--beta", "0.04", "--engine", "hf",
                                                "--output_dir", str(tmp_path / "grpo")])))
    splits, tokenizer, options = stage.prepare(args)
    trainer = stage.build_trainer(args, splits, tokenizer, load_model(str(start), args.model.dtype, options=options))
    reference = dict(trainer.ref_model.named_parameters())
    merged, raw = dict(load_model(str(start)).named_parameters()), dict(load_model(str(TINY_MODEL)).named_parameters())
    name = "model.layers.0.self_attn.q_proj.weight"  # LoRA trained it: merged differs from raw
    assert not torch.equal(merged[name], raw[name])
    assert all(torch.equal(reference[k].to(merged[k].dtype), merged[k]) for k in merged)
