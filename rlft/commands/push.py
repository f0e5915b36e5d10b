"""``rlft push``: publish a finished run on the Hugging Face Hub, its model card first.

    rlft push runs/math --repo you/smollm2-math            # the adapter, the card, the run's record
    rlft push runs/math --repo you/smollm2-math --merged   # the merged model instead (plain transformers)

Uploads through ``huggingface_hub`` (``HfApi.create_repo`` and
``upload_folder``; log in first with ``hf auth login`` or set ``HF_TOKEN``).
What goes up: the adapter (or the merged weights), the tokenizer, the model
card (``README.md``, written now if the run has none), ``recipe.yaml``, the
manifest, the closing check's ``before_after.jsonl`` and ``log_history.jsonl``.
Never the checkpoints, the TensorBoard logs or the optimizer state. Without
a network, or without a login, it stops with one line and uploads nothing.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlft.commands.merge import merge
from rlft.core.errors import UserError, one_line, run_cli
from rlft.core.recipe import parse_command

#: the files of a run that are published (globs, relative to the run directory)
PUBLISHED = ["adapter_model.safetensors", "adapter_config.json", "model*.safetensors", "config.json",
             "generation_config.json", "tokenizer*", "special_tokens_map.json", "chat_template.jinja",
             "README.md", "recipe.yaml", "rlft_manifest.json", "rlft_merged.json", "before_after.jsonl",
             "log_history.jsonl"]


@dataclass
class PushArguments:
    repo: str = field(default="", metadata={"help": "The Hub repository, user/name (created if missing)."})
    merged: bool = field(default=False, metadata={"help": "Upload the merged model instead of the adapter."})
    private: bool = field(default=False, metadata={"help": "Create the repository private."})
    message: str = field(default="Upload with rlft push", metadata={"help": "The commit message."})


def parse(argv: Sequence[str] | None) -> tuple[Path, PushArguments]:
    run, args = parse_command(argv, PushArguments, "rlft push", "RUN_DIR")
    if args.repo.count("/") != 1 or not all(args.repo.split("/")):
        raise UserError(f"--repo must be user/name, got {args.repo!r}")
    return Path(run), args


def finished_manifest(run_dir: Path) -> dict[str, Any]:
    """The run's manifest, refusing a run that did not finish (nothing half-trained is published)."""
    path = run_dir / "rlft_manifest.json"
    if not path.is_file():
        raise UserError(f"{run_dir} is not an rlft run (no rlft_manifest.json)")
    manifest = json.loads(path.read_text())
    if manifest.get("status") != "complete":
        raise UserError(f"{run_dir} did not finish (status: {manifest.get('status')}); finish it with --resume first")
    return manifest


def chained(run_dir: Path, manifest: dict[str, Any]) -> str | None:
    """The earlier run an adapter was trained on (merged into its base), or ``None`` for a first stage."""
    from rlft.stage.model_card import chain_of

    steps = chain_of(run_dir, manifest)
    return steps[-2][1] if len(steps) > 2 and (run_dir / "adapter_config.json").is_file() else None


def staged_folder(run_dir: Path, manifest: dict[str, Any], merged: bool, scratch: Path) -> Path:
    """The folder to upload: the adapter with its base named by its Hub id, or the merged model, with the run's
    card and record beside it.

    What loads from the Hub must be the model rlft evaluated. An adapter
    trained on an earlier run (SFT, then DPO on it) only means that model on
    top of the earlier run's merged weights, which are not on the Hub: it is
    pushed merged (:func:`chained`). A first-stage adapter goes up as it is,
    its ``adapter_config.json`` naming the base's Hub id (not the local
    directory it was trained from); one whose base is not on the Hub is
    refused unless merged.
    """
    from rlft.stage.model_card import write_model_card

    if not (run_dir / "README.md").is_file():
        write_model_card(run_dir, manifest)
    if not merged:
        return adapter_folder(run_dir, manifest, scratch / "adapter")

    out = scratch / "merged"
    merge(str(run_dir), out)
    for name in ("recipe.yaml", "rlft_manifest.json", "before_after.jsonl", "log_history.jsonl"):
        if (run_dir / name).is_file():
            shutil.copy(run_dir / name, out / name)
    write_model_card(run_dir, manifest, target=out, merged=True)
    return out


def adapter_folder(run_dir: Path, manifest: dict[str, Any], out: Path) -> Path:
    """The run's published files with ``adapter_config.json``'s base set to the Hub id the card names."""
    from rlft.stage.model_card import chain_of, hub_base

    shutil.copytree(run_dir, out, ignore=shutil.ignore_patterns("checkpoint-*", ".partial-*", "runs", "evals"))
    config = out / "adapter_config.json"
    if config.is_file():
        base = chain_of(run_dir, manifest)[0][1]
        hub_id, _ = hub_base(base)
        if hub_id is None:
            raise UserError(f"the adapter's base {base} is not on the Hub, so the adapter alone would not load "
                            "there; push --merged (the model rlft evaluated, as one plain model)")
        values = json.loads(config.read_text())
        config.write_text(json.dumps({**values, "base_model_name_or_path": hub_id}, indent=2) + "\n")
    return out


def upload(folder: Path, args: PushArguments) -> str:
    """Create the repository and upload ``folder``'s published files; returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        api.create_repo(args.repo, private=args.private, exist_ok=True, repo_type="model")
        info = api.upload_folder(folder_path=str(folder), repo_id=args.repo, repo_type="model",
                                 allow_patterns=PUBLISHED, commit_message=args.message)
    except Exception as err:  # noqa: BLE001 - network, login or permission: one line, nothing else
        raise UserError(f"cannot upload to {args.repo}: {type(err).__name__}: {one_line(str(err))[:200]} "
                        "(check the network and your login: hf auth login, or HF_TOKEN)") from None
    return str(getattr(info, "commit_url", info))


def main(argv: Sequence[str] | None = None) -> str:
    """Publish the run; returns the commit URL."""
    run_dir, args = parse(argv)
    manifest = finished_manifest(run_dir)
    earlier = chained(run_dir, manifest)
    if earlier and not args.merged:
        print(f"{run_dir} is an adapter trained on {earlier} (merged): pushing it merged, so the Hub model is the "
              "one rlft evaluated", file=sys.stderr)
        args.merged = True
    with tempfile.TemporaryDirectory(prefix="rlft-push-") as scratch:
        url = upload(staged_folder(run_dir, manifest, args.merged, Path(scratch)), args)
    print(f"pushed {run_dir} to {args.repo}: {url}")
    return url


if __name__ == "__main__":
    sys.exit(run_cli(main))
