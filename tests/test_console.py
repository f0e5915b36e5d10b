"""What a run prints: rlft's progress and table on the console; checked third-party noise in run.log."""

from __future__ import annotations

import logging
import warnings

import pytest

from rlft.core import console, noise
from rlft.core.run_dir import RunArguments, check_output_dir, claim_output_dir
from tests.conftest import run_cmd

SFT_ONE_STEP = ["recipes/sft.yaml", "--num_train_samples", "8", "--num_test_samples", "2",
                "--per_device_train_batch_size", "4", "--max_steps", "1", "--logging_steps", "1",
                "--save_strategy", "no", "--eval_before_after", "false"]


@pytest.fixture(autouse=True)
def fresh_deepspeed_logger(monkeypatch):
    """DeepSpeed's logger as before DeepSpeed is imported: an earlier in-process run (tests/test_colocate.py)
    imports it, and its handler then writes to the stdout of that test's capture, which these tests never see."""
    logger = logging.getLogger("DeepSpeed")
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logger, "propagate", True)


def test_a_checked_notice_goes_to_the_run_log_and_not_to_the_console(tmp_path, capfd):
    console.configure(verbose=False)
    try:
        logging.getLogger("DeepSpeed").warning("Setting accelerator to CPU. If you have GPU ...")
        with warnings.catch_warnings():  # pytest records warnings itself: rlft's hook goes on top of its
            warnings.simplefilter("always")
            warnings.showwarning = noise._wrap_showwarning(warnings.showwarning)
            warnings.warn_explicit("You are using 'rollout_func', which is an experimental feature.",
                                   UserWarning, "trl.py", 1)
        console.open_run_log(tmp_path)  # kept in memory until the log opens, then written
        logging.getLogger("rlft.test").warning("rlft's own warning")
        logging.getLogger("some.library").warning("an unchecked warning")
        logging.getLogger("some.library").info("library chatter")
        path = console.claim_run_log()
    finally:
        console.close_run_log()
    shown = capfd.readouterr().err
    assert "Setting accelerator" not in shown and "rollout_func" not in shown and "library chatter" not in shown
    assert "rlft's own warning" in shown and "an unchecked warning" in shown
    log = path.read_text()
    for text in ("Setting accelerator to CPU", "'rollout_func', which is an experimental feature",
                 "rlft's own warning", "an unchecked warning", "library chatter"):
        assert text in log, text


def test_verbose_shows_checked_notices_too(tmp_path, capfd):
    console.configure(verbose=True)
    try:
        path = console.open_run_log(tmp_path, resume=True)
        logging.getLogger("DeepSpeed").warning("Setting accelerator to CPU.")
        logging.getLogger("some.library").info("library chatter")
    finally:
        console.close_run_log()
        console.configure(verbose=False)
    shown = capfd.readouterr()
    assert "Setting accelerator to CPU" in shown.out + shown.err and "library chatter" in shown.err
    assert "Setting accelerator to CPU" in path.read_text()


def test_the_engine_process_output_lands_in_the_run_log(tmp_path, capfd):
    import subprocess
    import sys

    console.configure(verbose=False)
    path = console.open_run_log(tmp_path, resume=True)
    try:
        with console.child_output_to_log():
            child = subprocess.Popen([sys.executable, "-c", ("import sys, time; time.sleep(0.5); "
                                      "print('engine stdout'); print('engine stderr', file=sys.stderr)")])
        print("after the block")  # this process's own output is back on the console
        child.wait(timeout=60)
    finally:
        console.close_run_log()
    shown = capfd.readouterr()
    assert "engine" not in shown.out + shown.err and "after the block" in shown.out
    assert "engine stdout" in path.read_text() and "engine stderr" in path.read_text()


def test_a_run_refused_before_it_claims_its_directory_leaves_nothing(tmp_path):
    new = tmp_path / "runs/new"
    console.open_run_log(new)
    logging.getLogger("rlft.test").warning("checking the data")
    console.close_run_log()  # refused: never claimed
    assert not (tmp_path / "runs").exists()

    old = tmp_path / "old"
    old.mkdir()
    (old / "run.log").write_text("the old run's log\n")
    console.open_run_log(old)  # --overwrite, then refused before the claim: the old log is kept
    console.close_run_log()
    assert [p.name for p in old.iterdir()] == ["run.log"] and "old run" in (old / "run.log").read_text()


def test_a_claimed_overwrite_replaces_the_old_run_and_keeps_this_runs_log(tmp_path):
    (tmp_path / "old.txt").write_text("an earlier run")
    (tmp_path / "run.log").write_text("the old run's log\n")
    console.open_run_log(tmp_path)
    try:
        assert check_output_dir(tmp_path, RunArguments(overwrite=True)) is None
        claim_output_dir(tmp_path, RunArguments(overwrite=True))
        logging.getLogger("rlft.test").warning("this run")
        console.claim_run_log()
    finally:
        console.close_run_log()
    assert [p.name for p in tmp_path.iterdir()] == ["run.log"]
    assert "this run" in (tmp_path / "run.log").read_text() and "old run" not in (tmp_path / "run.log").read_text()


def test_a_pending_log_left_by_a_killed_start_does_not_block_a_rerun(tmp_path):
    (tmp_path / console.PENDING_NAME).write_text("killed before the claim\n")
    assert check_output_dir(tmp_path, RunArguments()) is None


def test_noise_table_matches_only_the_checked_texts():
    assert noise.is_checked("TRL currently supports vLLM versions from 0.22.0 to 0.31.0")
    assert not noise.is_checked("CUDA out of memory")


@pytest.mark.slow
def test_a_default_run_prints_rlfts_own_lines_and_verbose_brings_the_trainer_output_back(tmp_path):
    quiet = run_cmd([".venv/bin/rlft", "sft", *SFT_ONE_STEP, "--output_dir", str(tmp_path / "quiet")])
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    shown = quiet.stdout + quiet.stderr
    assert "sft 1/1" in shown and "loss " in shown  # rlft's bar, with the loss
    for filtered in ("Setting accelerator to CPU", "{'loss'", "Loading weights", "'train_runtime'"):
        assert filtered not in shown, filtered
    log = (tmp_path / "quiet/run.log").read_text()
    assert "Setting accelerator to CPU" in log and "step 1: {'loss'" in log

    loud = run_cmd([".venv/bin/rlft", "sft", *SFT_ONE_STEP, "--output_dir", str(tmp_path / "loud"), "--verbose"])
    assert loud.returncode == 0, loud.stderr[-2000:]
    shown = loud.stdout + loud.stderr
    assert "Setting accelerator to CPU" in shown and "{'loss'" in shown and "Loading weights" in shown
