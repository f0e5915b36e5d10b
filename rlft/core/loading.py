"""How a model is loaded: revision, attention kernel, remote code and 4/8-bit quantization (QLoRA).

:class:`LoadOptions` gathers the recipe's loading keys (TRL's ``ModelConfig``
fields ``model_revision``, ``attn_implementation``, ``load_in_4bit``,
``load_in_8bit``, ``bnb_4bit_quant_type``, ``use_bnb_nested_quant``,
``bnb_4bit_quant_storage``; the stage config's ``trust_remote_code``) and
turns them into ``from_pretrained`` arguments. A run records them in its
manifest, so loading the run later (``rlft eval``, ``rlft merge``, the next
stage) loads its base the way it was trained.

QLoRA adapters are trained against the *dequantized* 4-bit weights, not the
original ones. Merging one into the original base weights gives a different
model (the quantization error is not in it), so :func:`dequantized_base`
builds the float base the adapter saw: each quantized linear layer's weight
through peft's ``dequantize_module_weight`` (bitsandbytes' own
dequantization). transformers' ``model.dequantize()`` is not used: on the
bundled model (4-bit nf4, double quantization, CPU) its greedy text was
garbage where the 4-bit model and this copy both answered "2 + 3 is 4."
(logits identical to the 4-bit model's, max difference 0.0).

Every quantized model rlft loads computes each forward the way it trains
(:func:`keep_training_numerics`): on CPU, bitsandbytes otherwise switches a
forward without gradients to a bf16 kernel that repacks the weights in place.

Example:
    >>> LoadOptions(revision="v2", attn_implementation="sdpa").from_pretrained_kwargs()
    {'revision': 'v2', 'attn_implementation': 'sdpa'}
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from rlft.core.accelerator import generation_device
from rlft.core.errors import UserError

logger = logging.getLogger(__name__)


@dataclass
class LoadOptions:
    """``from_pretrained`` settings a run was (or is to be) loaded with."""

    revision: str | None = None
    attn_implementation: str | None = None
    trust_remote_code: bool = False
    quantization: dict[str, Any] = field(default_factory=dict)  # {} or {"bits": 4|8, ...}

    @classmethod
    def from_args(cls, model_args: Any, train_args: Any = None) -> LoadOptions:
        """The recipe's loading keys (``ModelArguments`` and the stage config's ``trust_remote_code``).

        Example:
            >>> from rlft.core.arguments import ModelArguments
            >>> LoadOptions.from_args(ModelArguments(load_in_4bit=True)).quantization["bits"]
            4
        """
        if model_args.load_in_4bit and model_args.load_in_8bit:
            raise UserError("load_in_4bit and load_in_8bit are both set; choose one")
        quantization: dict[str, Any] = {}
        if model_args.load_in_4bit:
            quantization = {"bits": 4, "quant_type": model_args.bnb_4bit_quant_type,
                            "double_quant": bool(model_args.use_bnb_nested_quant),
                            "storage": model_args.bnb_4bit_quant_storage}
        elif model_args.load_in_8bit:
            quantization = {"bits": 8}
        if quantization and not model_args.use_peft:
            raise UserError("load_in_4bit/load_in_8bit train a LoRA adapter on a frozen quantized base: "
                            "set use_peft: true (quantized weights cannot be trained directly)")
        revision = model_args.model_revision if model_args.model_revision not in (None, "main") else None
        return cls(revision=revision, attn_implementation=model_args.attn_implementation,
                   trust_remote_code=bool(getattr(train_args, "trust_remote_code", False)), quantization=quantization)

    @classmethod
    def from_record(cls, record: dict[str, Any] | None) -> LoadOptions:
        """Options as a manifest recorded them (``{}``/``None``: the defaults).

        Example:
            >>> LoadOptions.from_record({"quantization": {"bits": 8}}).quantization
            {'bits': 8}
        """
        return cls(**{k: v for k, v in (record or {}).items() if k in cls.__dataclass_fields__})

    def record(self) -> dict[str, Any]:
        """What the manifest stores (only what differs from the defaults).

        Example:
            >>> LoadOptions(revision="abc").record()
            {'revision': 'abc'}
        """
        default = LoadOptions()
        return {k: v for k, v in asdict(self).items() if v != getattr(default, k)}

    def from_pretrained_kwargs(self, dtype: Any = None, quantized: bool = True) -> dict[str, Any]:
        """Keyword arguments for ``AutoModelForCausalLM.from_pretrained`` (``quantized=False``: without it)."""
        kwargs: dict[str, Any] = {}
        if self.revision:
            kwargs["revision"] = self.revision
        if self.attn_implementation:
            kwargs["attn_implementation"] = self.attn_implementation
        if self.trust_remote_code:
            kwargs["trust_remote_code"] = True
        if quantized and self.quantization:
            kwargs["quantization_config"] = bnb_config(self.quantization, dtype)
            kwargs["device_map"] = {"": generation_device()}
        return kwargs


def bnb_config(quantization: dict[str, Any], dtype: Any = None) -> Any:
    """bitsandbytes' config for ``quantization`` (4-bit: its quant type, double quantization, compute dtype)."""
    import torch
    from transformers import BitsAndBytesConfig

    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise UserError("load_in_4bit/load_in_8bit need bitsandbytes: pip install bitsandbytes") from None
    if quantization["bits"] == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    compute = dtype if isinstance(dtype, torch.dtype) else torch.float32
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quantization.get("quant_type") or "nf4",
                              bnb_4bit_use_double_quant=bool(quantization.get("double_quant")),
                              bnb_4bit_compute_dtype=compute,
                              bnb_4bit_quant_storage=quantization.get("storage") or torch.uint8)


def is_quantized(model: Any) -> bool:
    """True for a model loaded in 4 or 8 bits (bitsandbytes).

    Example:
        >>> import torch
        >>> is_quantized(torch.nn.Linear(2, 2))
        False
    """
    return bool(getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False))


def keep_training_numerics(model: Any) -> int:
    """Make a 4-bit model's forwards without gradients compute what its training forward does; the layers changed.

    On a CPU with AVX512-bf16, bitsandbytes' ``Linear4bit`` runs a forward
    in eval mode without gradients through a bf16 inference kernel, after
    repacking its weights in place into that kernel's layout; from then on
    every forward, training ones included, takes that kernel. Measured on the
    bundled model (nf4, double quantization, float32 compute): logits 1.01
    away from the training forward's, and dequantizing a repacked layer (what
    a merged vLLM sync and ``rlft merge`` need) off by 5.8 on the first
    attention projection and by up to 9.3 across layers. The
    module's public ``support_avx512bf16_for_cpu`` switch turns that path
    off, so the closing check, the sync check and the engine all see the
    policy that was trained (gap 0.0, and the forward was faster here:
    0.15 s vs 0.37 s on 12 tokens). CUDA never takes that path.

    Example:
        >>> import torch
        >>> keep_training_numerics(torch.nn.Linear(2, 2))
        0
    """
    changed = 0
    for module in model.modules():
        if getattr(module, "support_avx512bf16_for_cpu", False):
            module.support_avx512bf16_for_cpu = False
            changed += 1
    return changed


def float_weight(layer: Any) -> Any:
    """A linear layer's weight as a float tensor: dequantized (bitsandbytes, through peft) when it is quantized.

    Example:
        >>> import torch
        >>> layer = torch.nn.Linear(2, 3)
        >>> float_weight(layer) is layer.weight
        True
    """
    weight = getattr(layer, "weight", None)
    if hasattr(weight, "quant_state") or type(layer).__name__ == "Linear8bitLt":
        from peft.utils.integrations import dequantize_module_weight

        return dequantize_module_weight(layer)
    return weight


def dequantized_base(base: str, options: LoadOptions, dtype: Any = None) -> Any:
    """The float model a QLoRA adapter was trained against: ``base`` quantized, then dequantized exactly.

    Loads the base twice (quantized, and in ``dtype``) and copies each
    quantized linear layer's dequantized weight (peft's
    ``dequantize_module_weight``) into the float copy.
    """
    import torch
    from transformers import AutoModelForCausalLM

    quantized = AutoModelForCausalLM.from_pretrained(base, dtype=dtype or "auto",
                                                     **options.from_pretrained_kwargs(dtype))
    keep_training_numerics(quantized)
    plain = AutoModelForCausalLM.from_pretrained(base, dtype=dtype or "auto",
                                                 **options.from_pretrained_kwargs(dtype, quantized=False))
    layers = dict(quantized.named_modules())
    copied = 0
    with torch.no_grad():
        for name, module in plain.named_modules():
            source = layers.get(name)
            if source is None or not isinstance(module, torch.nn.Linear):
                continue
            weight = float_weight(source)
            if weight is not source.weight:  # it was quantized
                module.weight.copy_(weight.to(module.weight.dtype))
                copied += 1
    logger.info("dequantized %d quantized linear layers of %s (%d-bit)", copied, base, options.quantization["bits"])
    del quantized
    return plain
