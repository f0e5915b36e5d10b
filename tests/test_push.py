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
    assert hub["adapter_config"]["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"  # not a path


def test_an_adapter_on_a_local_base_is_refused_unless_merged(tmp_path, hub):
    from rlft.core.errors import UserError

    run = tmp_path / "run"
    manifest = fake_run(run, "sft", str(tmp_path / "my-local-model"), TABLE)
    (run / "rlft_manifest.json").write_text(json.dumps({**manifest, "status": "complete"}))
    with pytest.raises(UserError, match="is not on the Hub, so the adapter alone would not load there; push --merged"):
        push.main([str(run), "--repo", "me/model"])
    assert "files" not in hub


@pytest.mark.slow
def test_a_chained_adapter_goes_up_merged_and_loads_as_the_model_rlft_evaluated(tmp_path, hub, monkeypatch):
    """DPO on an SFT run: the adapter alone on the Hub base would be another model; what goes up is the chain."""
    import torch
    from transformers import AutoModelForCausalLM

    from rlft import dpo, sft
    from rlft.core.models import load_model
    from tests.helpers import tiny_model_dir

    pairs = tmp_path / "prefs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": [{"role": "user", "content": f"What is {i} + 1?"}],
                                         "chosen": [{"role": "assistant", "content": f"{i + 1}"}],
                                         "rejected": [{"role": "assistant", "content": "no idea"}],
                                         "answer": str(i + 1)}) + "\n" for i in range(10)))

    small = ["--max_steps", "2", "--per_device_train_batch_size", "2", "--eval_before_after", "false",
             "--save_strategy", "no", "--report_to", "none", "--learning_rate", "0.05"]
    sft.main(["recipes/sft.yaml", "--model_name_or_path", str(tiny_model_dir()), *small, "--num_train_samples", "8",
              "--num_test_samples", "2", "--output_dir", str(tmp_path / "sft")])
    dpo.main(["recipes/dpo.yaml", "--model_name_or_path", str(tmp_path / "sft"), *small,
              "--dataset_name", str(pairs), "--max_length", "64", "--output_dir", str(tmp_path / "dpo")])
    captured = {}
    upload = push.upload
    monkeypatch.setattr(push, "upload", lambda folder, args: captured.update(
        model=AutoModelForCausalLM.from_pretrained(folder)) or upload(folder, args))
    push.main([str(tmp_path / "dpo"), "--repo", "me/model"])
    assert "model.safetensors" in hub["files"] and "adapter_config.json" not in hub["files"]
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    evaluated = load_model(str(tmp_path / "dpo"))
    assert torch.allclose(captured["model"](ids).logits, evaluated(ids).logits, atol=1e-5)


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
