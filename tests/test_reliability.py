"""Reliability: protected run directories, bad input, failing rewards, NaN guards, kills and resumes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from rlft import grpo, sft
from rlft.core.errors import UserError, run_cli
from rlft.core.run_dir import RunArguments, check_output_dir, complete_checkpoints
from rlft.stage.training_guards import TrainingHalted
from tests.conftest import REPO, run_cmd
from tests.helpers import tiny_model_dir, write_pairs

TINY_MODEL = ["--model_name_or_path", str(tiny_model_dir())]  # mechanics: a 2-layer random Llama
SFT_TINY = ["recipes/sft.yaml", *TINY_MODEL, "--num_train_samples", "48", "--num_test_samples", "4",
            "--per_device_train_batch_size", "4", "--max_length", "128", "--logging_steps", "1",
            "--eval_before_after", "false", "--learning_rate", "1e-3", "--warmup_steps", "0",
            "--save_total_limit", "10"]
GRPO_TINY = ["recipes/math.yaml", *TINY_MODEL, "--per_device_train_batch_size", "8", "--num_generations", "4",
             "--max_completion_length", "12", "--num_train_samples", "32", "--num_test_samples", "4",
             "--eval_before_after", "false", "--report_to", "none", "--log_completions", "false",
             "--engine", "hf", "--reward_funcs", "[accuracy, tests.helpers:length_reward]",
             "--reward_weights", "[1.0, 1.0]"]


def steps_logged(out: Path) -> list[int]:
    rows = [json.loads(line) for line in (out / "log_history.jsonl").read_text().splitlines()]
    return [r["step"] for r in rows if "loss" in r]


def adapter(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(path / "adapter_model.safetensors")


def manifest(out: Path) -> dict:
    return json.loads((out / "rlft_manifest.json").read_text())


def snapshot(path: Path) -> dict[str, float]:
    return {str(p.relative_to(path)): p.stat().st_mtime for p in path.rglob("*")} if path.exists() else {}


# -- the run directory ------------------------------------------------------------------------------


def test_occupied_output_dir_is_refused_unless_resume_or_overwrite(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match=r"already holds 1 file\(s\).*--resume.*--overwrite"):
        check_output_dir(out, RunArguments())
    assert check_output_dir(out, RunArguments(overwrite=True)) is None
    with pytest.raises(UserError, match="nothing to resume"):
        check_output_dir(out, RunArguments(resume=True))
    with pytest.raises(UserError, match="exclude each other"):
        RunArguments(resume=True, overwrite=True)
    (out / "rlft_manifest.json").write_text(json.dumps({"status": "complete"}))
    with pytest.raises(UserError, match="a finished run"):
        check_output_dir(out, RunArguments())


def test_resume_picks_the_newest_complete_checkpoint(tmp_path):
    for name, complete in (("checkpoint-2", True), ("checkpoint-10", True), ("checkpoint-12", False),
                           (".partial-checkpoint-14", True)):
        (tmp_path / name).mkdir()
        if complete:
            (tmp_path / name / "trainer_state.json").write_text("{}")
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-10"]
    assert check_output_dir(tmp_path, RunArguments(resume=True)).endswith("checkpoint-10")


# -- bad input: one line on stderr, exit 2, nothing written -------------------------------------------


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def _no_template_model(tmp_path: Path, bundled_dir: Path) -> str:
    target = tmp_path / "no-template"
    target.mkdir()
    for item in bundled_dir.iterdir():
        if item.name == "chat_template.jinja":
            continue
        if item.name == "tokenizer_config.json":
            config = json.loads(item.read_text())
            config.pop("chat_template", None)
            (target / item.name).write_text(json.dumps(config))
        else:
            (target / item.name).symlink_to(item)
    return str(target)


BAD_INPUTS = {
    "unknown key": (["--no_such_key", "1"], "unknown recipe key 'no_such_key'"),
    "wrong type": (["--max_steps", "abc"], "max_steps"),
    "missing yaml": (lambda t, b: ["MISSING"], "recipe file not found"),
    "invalid yaml": (lambda t, b: ["YAML", _write(t / "bad.yaml", "max_steps: [1,\n")], "cannot parse recipe"),
    "missing dataset file": (["--dataset_name", "/nonexistent/train.jsonl"], "dataset file not found"),
    "column a reward needs": (lambda t, b: ["--dataset_name", _write(t / "d.jsonl", '{"prompt": "1+1?"}\n' * 4)],
                              "needs a dataset column 'answer'; the rows have: prompt"),
    "unknown reward": (["--reward_funcs", "[no_such_reward]"], "no_such_reward"),
    "unimportable dotted path": (["--reward_funcs", "[nosuchpkg.rewards:score]"], "nosuchpkg"),
    "wrong number of values": (["--reward_funcs", "[tests.helpers:wrong_count_reward]"],
                               "must return one value per completion"),
    "num_generations not dividing the batch": (["--per_device_train_batch_size", "6", "--gradient_accumulation_steps",
                                                "1", "--num_generations", "4"], "divisible"),
    "model path not found": (["--model_name_or_path", "./no/such/model"], "model path not found"),
    "LoRA target the model lacks": (["--lora_target_modules", "[qkv_proj]"], "no module named 'qkv_proj'"),
    "zero steps": (["--max_steps", "0"], "max_steps must be positive"),
    "zero completion length": (["--max_completion_length", "0"], "max_completion_length must be positive"),
    "zero batch": (["--per_device_train_batch_size", "0"], "per_device_train_batch_size"),
    "one generation": (["--num_generations", "1", "--per_device_train_batch_size", "4"],
                       "at least 2 generations per prompt"),
    "chat data without a chat template": (lambda t, b: ["--model_name_or_path", _no_template_model(t, b)],
                                          "no chat template"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=lambda c: c.replace(" ", "-"))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, tmp_path, bundled_dir, capsys):
    extra, expected = BAD_INPUTS[case]
    extra = extra(tmp_path, bundled_dir) if callable(extra) else extra
    out = tmp_path / "run"
    recipe = "recipes/math.yaml"
    if extra[0] == "MISSING":
        recipe, extra = "recipes/missing.yaml", extra[1:]
    elif extra[0] == "YAML":
        recipe, extra = extra[1], extra[2:]
    code = run_cli(grpo.main, [recipe, "--max_steps", "2", *extra, "--output_dir", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()  # loading progress bars may come first; the error is one line, the last
    assert lines[-1].startswith("error: ") and sum(ln.startswith("error:") for ln in lines) == 1, err
    assert "Traceback" not in err and expected in lines[-1], err
    assert not out.exists(), "a rejected run must not write anything"


def test_rerun_into_a_finished_run_is_refused_from_the_command_line(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "rlft_manifest.json").write_text(json.dumps({"status": "complete"}))
    before = snapshot(out)
    result = run_cmd(["rlft", "sft", "recipes/sft.yaml", "--output_dir", str(out)])
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "already holds a finished run" in result.stderr and "--overwrite" in result.stderr
    assert snapshot(out) == before


# -- failing rewards and non-finite numbers (tiny model) ------------------------------------------------


@pytest.mark.slow
def test_reward_raising_mid_run_stops_with_the_sample_and_a_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    args = [*GRPO_TINY, "--reward_funcs", "[accuracy, tests.helpers:fails_after_first_step]",
            "--max_steps", "3", "--save_strategy", "no", "--output_dir", str(out)]
    code = run_cli(grpo.main, args)
    err = capsys.readouterr().err
    assert code == TrainingHalted.exit_code, err
    assert "reward 'fails_after_first_step' raised IndexError" in err and "on sample 0: prompt" in err, err
    assert "checkpoint-1" in err and "on_reward_error: skip" in err
    assert [p.name for p in complete_checkpoints(out)] == ["checkpoint-1"]
    assert manifest(out)["status"] == "failed"

    skipped = tmp_path / "skip"
    result = grpo.main([*args[:-1], str(skipped), "--on_reward_error", "skip"])
    errors = [e.get("rewards/fails_after_first_step/errors", 0) for e in
              map(json.loads, (skipped / "log_history.jsonl").read_text().splitlines())]
    assert result["status"] == "complete" and sum(errors) >= 8  # the samples of steps 2 and 3 were skipped


@pytest.mark.slow
def test_nan_reward_stops_the_run(tmp_path, capsys):
    code = run_cli(grpo.main, [*GRPO_TINY, "--reward_funcs", "[tests.helpers:nan_reward]", "--reward_weights",
                               "[1.0]", "--max_steps", "2", "--save_strategy", "no",
                               "--output_dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 3 and "returned nan (not a finite number" in err, err


@pytest.mark.slow
def test_nan_loss_stops_with_a_finite_checkpoint(tmp_path, monkeypatch, capsys):
    from trl import SFTTrainer

    original = SFTTrainer.compute_loss

    def poisoned(self, model, inputs, *args, **kwargs):
        loss = original(self, model, inputs, *args, **kwargs)
        if self.state.global_step == 2:  # the third step
            loss = loss * float("nan")
        return loss

    monkeypatch.setattr(SFTTrainer, "compute_loss", poisoned)
    out = tmp_path / "run"
    code = run_cli(sft.main, [*SFT_TINY, "--max_steps", "5", "--save_steps", "1", "--output_dir", str(out)])
    err = capsys.readouterr().err
    assert code == 3 and "non-finite gradients at step 3" in err and "checkpoint-3" in err, err
    assert [p.name for p in complete_checkpoints(out)] == ["checkpoint-1", "checkpoint-2", "checkpoint-3"]
    last, before = adapter(out / "checkpoint-3"), adapter(out / "checkpoint-2")
    assert all(torch.isfinite(t).all() for t in last.values())
    assert all(torch.equal(last[k], before[k]) for k in last), "the poisoned update must not be applied"
    assert manifest(out)["status"] == "halted"


# -- kills ------------------------------------------------------------------------------------------------


def _start(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    return subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _kill_after(proc: subprocess.Popen, ready: Path, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if proc.poll() is not None:
            pytest.fail(f"run ended before {ready.name} appeared: {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{ready} did not appear")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_sft_killed_then_resumed_matches_an_uninterrupted_run(tmp_path):
    common = [*SFT_TINY, "--max_steps", "8", "--save_steps", "2"]
    whole = tmp_path / "whole"
    assert run_cmd([sys.executable, "-m", "rlft.sft", *common, "--output_dir", str(whole)]).returncode == 0

    killed = tmp_path / "killed"
    proc = _start(["-m", "rlft.sft", *common, "--output_dir", str(killed)])
    _kill_after(proc, killed / "checkpoint-2")
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "adapter_model.safetensors").exists(), "killed before the end"

    again = run_cmd([sys.executable, "-m", "rlft.sft", *common, "--output_dir", str(killed)])
    assert again.returncode == 2 and "--resume" in again.stderr, "a killed run is protected too"
    changed = run_cmd([sys.executable, "-m", "rlft.sft", *common, "--output_dir", str(killed), "--resume",
                       "--learning_rate", "0.5", "--logging_steps", "3"])
    [line] = changed.stderr.strip().splitlines()
    assert changed.returncode == 2 and line.startswith("error: --resume with a changed recipe: learning_rate ("), line
    assert "logging_steps" not in line  # what a run logs may change
    resumed = run_cmd([sys.executable, "-m", "rlft.sft", *common, "--output_dir", str(killed), "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert steps_logged(killed) == list(range(1, 9)), "each step logged exactly once"
    assert manifest(killed)["results"]["resumed_from"].endswith("checkpoint-2")
    a, b = adapter(whole), adapter(killed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from uninterrupted"


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["dpo", "orpo"])
def test_a_preference_run_killed_then_resumed_is_bit_for_bit_the_uninterrupted_one(stage, tmp_path):
    common = [f"recipes/{stage}.yaml", *TINY_MODEL, "--dataset_name", str(write_pairs(tmp_path / "pairs.jsonl")),
              "--max_steps", "6", "--save_steps", "2", "--save_total_limit", "10", "--per_device_train_batch_size",
              "2", "--max_length", "64", "--logging_steps", "1", "--eval_before_after", "false", "--bf16", "false",
              "--learning_rate", "1e-3", "--warmup_steps", "0", "--report_to", "none"]
    whole = tmp_path / "whole"
    done = run_cmd([sys.executable, "-m", f"rlft.{stage}", *common, "--output_dir", str(whole)])
    assert done.returncode == 0, done.stderr[-2000:]

    killed = tmp_path / "killed"
    proc = _start(["-m", f"rlft.{stage}", *common, "--output_dir", str(killed)])
    _kill_after(proc, killed / "checkpoint-2")
    assert proc.returncode == -signal.SIGKILL and not (killed / "adapter_model.safetensors").exists()
    resumed = run_cmd([sys.executable, "-m", f"rlft.{stage}", *common, "--output_dir", str(killed), "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert steps_logged(killed) == list(range(1, 7)), "each step logged exactly once"
    assert manifest(killed)["results"]["resumed_from"].endswith("checkpoint-2")
    a, b = adapter(whole), adapter(killed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ"


@pytest.mark.slow
def test_kill_during_a_save_keeps_the_previous_checkpoint_and_resume_ignores_the_partial(tmp_path):
    out = tmp_path / "run"
    common = [*SFT_TINY, "--max_steps", "6", "--save_steps", "2", "--output_dir", str(out)]
    # SIGKILL this process in the middle of writing checkpoint-4 (after the weights, before the RNG state)
    script = (
        "import os, signal, sys\n"
        "from transformers import Trainer\n"
        "from rlft import sft\n"
        "save = Trainer._save_rng_state\n"
        "def dying(self, output_dir):\n"
        "    if self.state.global_step == 4:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    save(self, output_dir)\n"
        "Trainer._save_rng_state = dying\n"
        f"sft.main({common!r})\n"
    )
    killed = run_cmd([sys.executable, "-c", script])
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (out / ".partial-checkpoint-4").is_dir() and not (out / "checkpoint-4").exists()
    assert [p.name for p in complete_checkpoints(out)] == ["checkpoint-2"]
    assert (out / "checkpoint-2" / "adapter_model.safetensors").exists()

    resumed = run_cmd([sys.executable, "-m", "rlft.sft", *common, "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert not list(out.glob(".partial-*"))
    assert steps_logged(out) == list(range(1, 7))


@pytest.mark.slow
def test_a_vllm_grpo_run_killed_then_resumed_samples_what_the_uninterrupted_run_sampled(tmp_path):
    """vLLM's generator starts over with the process: the engine seeds each step's requests instead."""
    common = [*GRPO_TINY, "--engine", "vllm", "--vllm_gpu_memory_utilization", "0.15", "--vllm_max_model_len", "256",
              "--max_steps", "3", "--save_steps", "1"]
    whole = tmp_path / "whole"
    done = run_cmd([sys.executable, "-m", "rlft.grpo", *common, "--output_dir", str(whole)])
    assert done.returncode == 0, done.stderr[-2000:]

    out = tmp_path / "run"
    proc = _start(["-m", "rlft.grpo", *common, "--output_dir", str(out)])
    _kill_after(proc, out / "checkpoint-1")
    assert manifest(out)["status"] == "running", "the manifest is there from the start"
    resumed = run_cmd([sys.executable, "-m", "rlft.grpo", *common, "--output_dir", str(out), "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert steps_logged(out) == [1, 2, 3]
    assert manifest(out)["status"] == "complete"

    def rollouts(run: Path) -> list[tuple[int, float]]:  # each step's mean completion length, to the character
        rows = [json.loads(line) for line in (run / "log_history.jsonl").read_text().splitlines()]
        return [(r["step"], r["rewards/length_reward/mean"]) for r in rows if "rewards/length_reward/mean" in r]

    assert rollouts(out) == rollouts(whole), "the resumed run sampled other completions than the uninterrupted one"
    a, b = adapter(whole), adapter(out)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a), "resumed weights differ from uninterrupted"
    import yaml

    recorded = yaml.safe_load((out / "recipe.yaml").read_text())
    assert "resume" not in recorded and "overwrite" not in recorded, "they are not part of the recipe"


def test_overwrite_replaces_a_finished_run_only_after_checks_pass(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "rlft_manifest.json").write_text(json.dumps({"status": "complete"}))
    code = run_cli(grpo.main, ["recipes/math.yaml", "--output_dir", str(out), "--overwrite",
                               "--reward_funcs", "[no_such_reward]"])
    assert code == 2 and (out / "rlft_manifest.json").exists(), "bad input must not cost the old run"
    shutil.rmtree(out)


# -- security ------------------------------------------------------------------------------------------------


def test_hostile_completions_are_parsed_never_executed(tmp_path):
    import rewards

    marker = tmp_path / "pwned"
    payloads = [f"__import__('os').system('touch {marker}')", f"exec(\"open('{marker}','w')\")",
                f"eval(\"__import__('os').system('touch {marker}')\")", "().__class__.__base__.__subclasses__()"]
    completions = [wrap.format(p) for p in payloads
                   for wrap in ("\\boxed{{{}}}", "The answer is {}", "#### {}", "x = {}", "{}")]
    accuracy = rewards.resolve("accuracy")
    scores = accuracy(completions, answer=["31415926"] * len(completions))
    assert scores == [0.0] * len(completions)
    assert not marker.exists(), "a completion was executed"


def test_guard_warns_on_a_dead_reward_signal_and_a_runaway_kl(caplog):
    from types import SimpleNamespace

    from rlft.stage.training_guards import TrainingGuard

    guard = TrainingGuard(zero_spread_steps=3, kl_warn=1.0)
    control = SimpleNamespace(should_training_stop=False, should_save=False)
    with caplog.at_level("WARNING", logger="rlft.stage.training_guards"):
        for step, spread in enumerate([1.0, 1.0, 0.5, 1.0, 1.0], start=1):  # the streak breaks at step 3
            guard.on_log(None, SimpleNamespace(global_step=step), control, logs={"frac_reward_zero_std": spread})
        assert "no learning signal" not in caplog.text
        guard.on_log(None, SimpleNamespace(global_step=6), control, logs={"frac_reward_zero_std": 1.0})
        assert caplog.text.count("no learning signal: for 3 steps") == 1
        guard.on_log(None, SimpleNamespace(global_step=7), control, logs={"kl": 0.2})
        assert "running away" not in caplog.text
        guard.on_log(None, SimpleNamespace(global_step=8), control, logs={"kl": 3.5})
        assert "KL to the reference reached 3.5 at step 8" in caplog.text
    assert not control.should_training_stop, "warnings, not stops"
    guard.on_log(None, SimpleNamespace(global_step=9), control, logs={"loss": float("inf")})
    assert control.should_training_stop and control.should_save and "non-finite loss" in guard.halted


def test_reaper_stops_the_engine_processes_and_scratch_of_a_sigkilled_trainer(tmp_path):
    """SIGKILL (the OOM killer) runs no shutdown: the watchdog must stop what the trainer started."""
    import psutil

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    script = tmp_path / "trainer.py"
    script.write_text(
        "import subprocess, sys, time\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from rlft.rollout.reaper import start_reaper\n"
        f"engine = subprocess.Popen(['sleep', '600']); open({str(scratch / 'model.safetensors')!r}, 'w').close()\n"
        f"start_reaper([engine.pid], [{str(scratch)!r}])\n"
        "print(engine.pid, flush=True); time.sleep(600)\n"
    )
    trainer = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    engine = psutil.Process(int(trainer.stdout.readline()))
    assert engine.is_running() and scratch.exists()
    trainer.kill()
    trainer.wait()
    _, alive = psutil.wait_procs([engine], timeout=30)
    assert not alive, "the engine process outlived its SIGKILLed trainer"
    deadline = time.monotonic() + 10
    while scratch.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not scratch.exists(), "the scratch files outlived the trainer"

def test_reward_workers_that_cannot_start_stop_the_run_even_when_skipping():
    """Skipping is for a bad sample; with the verification pool down nothing could be scored, so it stops."""
    from rewards.timeouts import WorkersFailed
    from rlft.stage.training_guards import RewardFailure, guard_rewards

    def pool_down(completions, **kw):
        raise WorkersFailed("the reward verification workers could not start")

    def bad_sample(completions, **kw):
        return [1.0 / len(c) for c in completions]

    [pool_down_guarded, bad_sample_guarded] = guard_rewards([pool_down, bad_sample], on_error="skip")
    with pytest.raises(RewardFailure, match="reward 'pool_down': the reward verification workers could not start"):
        pool_down_guarded(["4", "5"])
    assert bad_sample_guarded(["ab", ""]) == [0.5, None]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_killed_vllm_grpo_run_leaves_no_engine_process_or_scratch(sig, tmp_path):
    """SIGTERM runs rlft's shutdown; SIGKILL (the OOM killer) runs nothing, and the reaper cleans up."""
    import psutil

    from rlft.rollout.vllm_runtime import scratch_dir

    scratch_root = Path(scratch_dir() or tempfile.gettempdir())
    out = tmp_path / "killed"
    proc = _start(["-m", "rlft.grpo", *GRPO_TINY, "--engine", "vllm", "--max_steps", "50",
                   "--save_strategy", "steps", "--save_steps", "1", "--vllm_gpu_memory_utilization", "0.15",
                   "--vllm_max_model_len", "256", "--output_dir", str(out)])
    deadline = time.monotonic() + 600
    while not (out / "checkpoint-1").exists():  # the engine is up and a step has run
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert time.monotonic() < deadline, "no checkpoint-1 after 10 minutes"
        time.sleep(0.1)
    children = [p for p in psutil.Process(proc.pid).children(recursive=True) if p.name().startswith("VLLM")]
    assert children, "the vLLM engine runs in child processes"
    # the run's own scratch (named by its pid): other runs on the machine may come and go meanwhile
    assert list(scratch_root.glob(f"rlft-vllm-{proc.pid}-*")), "the engine keeps its scratch weights there"
    proc.send_signal(sig)
    if sig == signal.SIGTERM:
        assert proc.wait(timeout=120) == 128 + signal.SIGTERM
        assert "terminated" in proc.stderr.read()
    else:
        assert proc.wait(timeout=30) == -signal.SIGKILL
    _, alive = psutil.wait_procs(children, timeout=60)
    assert not alive, f"left running after {sig.name}: {[p.name() for p in alive]}"
    deadline = time.monotonic() + 30
    while list(scratch_root.glob(f"rlft-vllm-{proc.pid}-*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not list(scratch_root.glob(f"rlft-vllm-{proc.pid}-*")), f"scratch weights left after {sig.name}"
