"""`rlft push`: everything up to the upload, with the Hub client mocked (no network here)."""

from __future__ import annotations

import json

import pytest

from rlft.commands import push
from tests.conftest import run_cmd
from tests.test_model_card import TABLE, fake_run


def finished(tmp_path):
    run = tmp_path / "run"
    manifest = fake_run(run, "grpo", "bundled:smollm2-135m-instruct", TABLE)
    (run / "rlft_manifest.json").write_text(json.dumps({**manifest, "status": "complete"}))
    for name in ("adapter_model.safetensors", "tokenizer.json", "training_args.bin", "checkpoint-2/optimizer.pt",
                 "runs/events.out", "log_history.jsonl"):
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text("x")
    return run


def test_the_adapter_card_and_record_go_up_never_checkpoints(tmp_path, hub):
    run = finished(tmp_path)
    url = push.main([str(run), "--repo", "me/model", "--private", "true"])
    assert url == "https://huggingface.co/me/model/commit/1"
    assert hub["create"] == ("me/model", {"private": True, "exist_ok": True, "repo_type": "model"})
    assert hub["files"] == ["README.md", "adapter_config.json", "adapter_model.safetensors", "log_history.jsonl",
                            "recipe.yaml", "rlft_manifest.json", "tokenizer.json"]
    assert "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in hub["card"]  # written now: the run had none


def test_an_unfinished_run_or_a_bad_repo_is_refused(tmp_path, hub):
    from rlft.core.errors import UserError

    run = finished(tmp_path)
    with pytest.raises(UserError, match="--repo must be user/name"):
        push.main([str(run), "--repo", "model"])
    (run / "rlft_manifest.json").write_text(json.dumps({"status": "failed"}))
    with pytest.raises(UserError, match="did not finish"):
        push.main([str(run), "--repo", "me/model"])
    assert "files" not in hub


def test_without_the_hub_it_is_one_line(tmp_path):
    run = finished(tmp_path)
    proc = run_cmd(["rlft", "push", str(run), "--repo", "me/model"], timeout=120, env={"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: cannot upload to me/model") and "hf auth login" in proc.stderr
