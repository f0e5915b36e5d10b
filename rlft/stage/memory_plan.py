"""A run's peak memory, estimated from the model's shape and the recipe before the model loads.

The estimate is a sum of parts, each one line of arithmetic a user can check:

- ``runtime``: the trainer process with torch, transformers and TRL imported;
- ``weights``: the policy (and a separate reference model where the stage keeps one);
- ``optimizer``: gradients and AdamW's two moments of every trained parameter (float32);
- ``activations``: what the backward pass keeps, per token and layer (all of it, or one
  layer's worth plus each layer's input under gradient checkpointing);
- ``logits``: the vocabulary-wide logits of a micro-batch, their log-softmax and gradient;
- ``engine``: vLLM's share of RAM on CPU (``vllm_gpu_memory_utilization`` of the machine's
  memory, which vLLM reserves whole) and its two processes; or the key/value cache of
  transformers' ``generate`` for the rollouts with ``engine: hf``.

The coefficients per token are measured, not derived: ``make bench-memory``
runs the bundled model over a grid and compares this estimate with the
measured peak (``bench/results/memory.json``), which it must never be below.

Example:
    >>> shape = ModelShape(params=134_515_008, layers=30, hidden=576, intermediate=1536, kv_dim=192,
    ...                    vocab=49152)
    >>> plan = estimate(shape, Workload(sequences=8, tokens=256), available=24 * GB)
    >>> plan.fits, [p.name for p in plan.parts]
    (True, ['runtime', 'weights', 'optimizer', 'activations', 'logits'])
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

GB = 2**30
MB = 2**20

# Fitted to the bundled model's measured peaks (make bench-memory, bench/results/memory.json): the trainer
# process after its imports; each vLLM process (engine core, worker; vLLM imported in the trainer too) beside
# the KV reservation; the bytes kept per token and layer for each unit of width (10 x hidden + 4 x intermediate
# + 4 x kv_dim); per vocabulary entry of each scored token, the logits and what the loss makes of them (TRL's
# GRPO: temperature-scaled copies, log-softmax, entropy, their gradients; SFT: the loss, entropy and accuracy;
# in bf16 the two keep about the same, 18 bytes, fitted to sft-b16-ckpt and tools-sft-b8).
RUNTIME_BYTES = 1000 * MB
ENGINE_PROCESS_BYTES = 700 * MB
ACTIVATION_BYTES = {"float32": 4.4, "bf16": 3.0}  # per unit of width, per token and layer, no checkpointing
CHECKPOINTED_BYTES = {"float32": 4.0, "bf16": 4.0}  # each layer's saved input (hidden wide) per token
# What attention keeps per score (heads x tokens x tokens per row and layer): CPU attention with a padding mask
# materializes its weights; they dominate at the tool recipes' ~450-token rows.
ATTENTION_BYTES = {"float32": 6.0, "bf16": 3.0}
LOGIT_BYTES = {("grpo", "float32"): 33.0, ("grpo", "bf16"): 18.0, ("other", "float32"): 34.0,
               ("other", "bf16"): 18.0}
MARGIN = 1.10  # the allocator's slack over the sum of the parts


@dataclass(frozen=True)
class ModelShape:
    """What the memory of a decoder-only transformer depends on, read from its ``config.json``."""

    params: int
    layers: int
    hidden: int
    intermediate: int
    kv_dim: int
    vocab: int
    embedding_params: int = 0  # input embeddings and (untied) output head: never quantized
    heads: int = 0  # attention heads (0: attention's own memory not counted)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ModelShape:
        """A Llama-style config's shape (the parameter count is computed from it).

        Example:
            >>> ModelShape.from_config({"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128,
            ...     "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100,
            ...     "tie_word_embeddings": True}).params
            80448
        """
        text = config.get("text_config") or config  # multimodal configs keep the language model's inside
        hidden, layers = text["hidden_size"], text["num_hidden_layers"]
        heads = text.get("num_attention_heads", 1)
        head_dim = text.get("head_dim") or hidden // heads
        kv_dim = text.get("num_key_value_heads", heads) * head_dim
        inter, vocab = text.get("intermediate_size", 4 * hidden), text["vocab_size"]
        per_layer = hidden * heads * head_dim * 2 + 2 * hidden * kv_dim + 3 * hidden * inter + 2 * hidden
        embeddings = vocab * hidden * (1 if text.get("tie_word_embeddings", True) else 2)
        return cls(params=layers * per_layer + embeddings + hidden, layers=layers, hidden=hidden,
                   intermediate=inter, kv_dim=kv_dim, vocab=vocab, embedding_params=embeddings, heads=heads)

    @classmethod
    def of_model_dir(cls, path: str | Path) -> ModelShape:
        return cls.from_config(json.loads((Path(path) / "config.json").read_text()))

    @property
    def width(self) -> int:
        """Units of width kept per token and layer for the backward pass."""
        return 10 * self.hidden + 4 * self.intermediate + 4 * self.kv_dim


@dataclass(frozen=True)
class Workload:
    """What one process holds at its peak: the micro-batch it trains on and what it keeps beside it."""

    sequences: int  # rows in a training micro-batch (DPO/ORPO: chosen and rejected count twice)
    tokens: int  # the longest row, in tokens
    logit_tokens: int | None = None  # per row, the tokens the loss reads logits at (GRPO: the completion); all
    loss: str = "other"  # "grpo": TRL's GRPO loss keeps more per logit than SFT's or DPO's
    accumulation: int = 1  # gradient_accumulation_steps (a smaller micro-batch takes more of them)
    per_example: int = 1  # sequences per micro-batch example (DPO and ORPO: chosen and rejected)
    precision: str = "float32"  # "bf16" under CPU autocast or on a GPU
    gradient_checkpointing: bool = False
    trained_params: int | None = None  # None: every parameter (full fine-tuning)
    reference_copy: bool = False  # a second, frozen copy of the weights (DPO without LoRA, GRPO beta > 0 likewise)
    weight_bytes: float = 4.0  # per parameter as loaded (0.5 + overhead for 4-bit)
    engine: str = "none"  # "vllm", "hf" or "none"
    engine_fraction: float = 0.0  # vllm_gpu_memory_utilization
    generation_sequences: int = 0  # rollouts generated at once with engine hf
    machine_bytes: int = 0  # the machine's total memory (vLLM reserves a share of it on CPU)


@dataclass(frozen=True)
class Part:
    name: str
    bytes: int
    why: str


@dataclass
class Plan:
    """The estimate, its parts and whether it fits in ``available`` bytes."""

    parts: list[Part]
    available: int
    workload: Workload = field(repr=False)
    shape: ModelShape = field(repr=False)

    @property
    def peak(self) -> int:
        return int(sum(p.bytes for p in self.parts) * MARGIN)

    @property
    def fits(self) -> bool:
        return self.peak <= self.available

    def line(self) -> str:
        """One line for the log: the peak, what is available, the largest parts.

        Example:
            >>> shape = ModelShape(params=10**8, layers=12, hidden=512, intermediate=2048, kv_dim=512, vocab=32000)
            >>> estimate(shape, Workload(sequences=4, tokens=128), available=8 * GB).line()[:40]
            'memory plan: 3.7 GB peak of 8.0 GB avail'
        """
        parts = ", ".join(f"{p.name} {gb(p.bytes)}" for p in sorted(self.parts, key=lambda p: -p.bytes))
        return f"memory plan: {gb(self.peak)} peak of {gb(self.available)} available ({parts})"

    def record(self) -> dict[str, Any]:
        """The manifest's ``memory_plan``: bytes per part, the peak and what was available."""
        return {"peak_bytes": self.peak, "available_bytes": self.available, "fits": self.fits,
                "parts": {p.name: p.bytes for p in self.parts}, "workload": asdict(self.workload)}


def gb(n: float) -> str:
    return f"{n / GB:.1f} GB"


def estimate(shape: ModelShape, work: Workload, available: int) -> Plan:
    """The plan of one training process (and the engine beside it) for ``work`` on a model of ``shape``."""
    tokens = work.sequences * work.tokens
    scored = work.sequences * (work.tokens if work.logit_tokens is None else work.logit_tokens)
    trained = shape.params if work.trained_params is None else work.trained_params
    weights = shape.params * work.weight_bytes * (2 if work.reference_copy else 1)
    # attention scores of one layer, for the whole micro-batch
    scores = work.sequences * shape.heads * work.tokens**2 * ATTENTION_BYTES[work.precision]
    if work.gradient_checkpointing:
        per_token = (shape.layers * shape.hidden * CHECKPOINTED_BYTES[work.precision]
                     + shape.width * ACTIVATION_BYTES[work.precision])
        kept = tokens * per_token + scores
        act_why = f"{tokens} tokens x (each layer's input + one layer recomputed)"
    else:
        kept = tokens * shape.layers * shape.width * ACTIVATION_BYTES[work.precision] + shape.layers * scores
        act_why = f"{tokens} tokens x {shape.layers} layers, attention over rows of {work.tokens}"
    parts = [
        Part("runtime", RUNTIME_BYTES, "python, torch, transformers and TRL"),
        Part("weights", int(weights), f"{shape.params / 1e6:.0f}M parameters"
             + (" and a reference copy" if work.reference_copy else "")),
        Part("optimizer", trained * 12, f"{trained / 1e6:.1f}M trained parameters x (gradient + 2 AdamW moments)"),
        Part("activations", int(kept), act_why),
        Part("logits", int(scored * shape.vocab * LOGIT_BYTES[work.loss, work.precision]), f"{scored} tokens x {shape.vocab}"),
    ]
    if work.engine == "vllm":
        reserved = int(work.engine_fraction * work.machine_bytes)
        parts.append(Part("engine", reserved + 2 * ENGINE_PROCESS_BYTES,
                          f"vLLM: {work.engine_fraction:g} of {gb(work.machine_bytes)} and its 2 processes"))
    elif work.engine == "hf" and work.generation_sequences:
        # the key/value cache, and the prompts' float32 logits transformers computes while it generates
        per_token = shape.layers * 2 * shape.kv_dim * 4 + 2 * shape.vocab * 4
        parts.append(Part("engine", int(work.generation_sequences * work.tokens * per_token),
                          f"transformers generate for {work.generation_sequences} rollouts"))
    return Plan(parts, available, work, shape)


def machine_memory() -> tuple[int, int]:
    """(total, available) bytes: the cgroup's limit where one is set, else ``/proc/meminfo``.

    Example:
        >>> total, available = machine_memory()
        >>> 0 < available <= total
        True
    """
    info = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":", 1)
            info[key] = int(value.split()[0]) * 1024
    total, available = info["MemTotal"], info.get("MemAvailable", info["MemFree"])
    limit = _cgroup_limit()
    if limit is not None and limit < total:
        used = _cgroup_usage() or 0
        return limit, max(0, min(available, limit - used))
    return total, available


def _cgroup_limit() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:
            return int(text)
    return None


def _cgroup_usage() -> int | None:
    for path in ("/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory/memory.usage_in_bytes"):
        try:
            return int(Path(path).read_text().strip())
        except (OSError, ValueError):
            continue
    return None


def cheaper(plan: Plan) -> str:
    """The first change that would make ``plan`` fit, in the recipe's words, or what to try when none would.

    Tried in order of what they cost in speed: a smaller micro-batch (the
    optimizer step kept by more accumulation), then gradient checkpointing
    with the micro-batch as it was and smaller, then a smaller engine share.

    Example:
        >>> shape = ModelShape(params=134_515_008, layers=30, hidden=576, intermediate=1536, kv_dim=192,
        ...                    vocab=49152)
        >>> cheaper(estimate(shape, Workload(sequences=32, tokens=512), available=8 * GB))
        'per_device_train_batch_size: 2 and gradient_accumulation_steps: 16 (6.8 GB) would fit'
    """
    work = plan.workload
    options = []
    examples = work.sequences // work.per_example
    for checkpointing in sorted({work.gradient_checkpointing, True}):
        divisor = 1
        while examples // divisor >= 1:
            if examples % divisor == 0 and (divisor, checkpointing) != (1, work.gradient_checkpointing):
                words = [(f"per_device_train_batch_size: {examples // divisor} and "
                          f"gradient_accumulation_steps: {work.accumulation * divisor}")] if divisor > 1 else []
                if checkpointing != work.gradient_checkpointing:
                    words.insert(0, "gradient_checkpointing: true")
                options.append((" and ".join(words), replace(work, sequences=examples // divisor * work.per_example,
                                                             gradient_checkpointing=checkpointing)))
            divisor *= 2
    if work.engine == "vllm" and work.engine_fraction > 0.1:
        options.append(("vllm_gpu_memory_utilization: 0.1", replace(work, engine_fraction=0.1)))
    for words, option in options:
        candidate = estimate(plan.shape, option, plan.available)
        if candidate.fits:
            return f"{words} ({gb(candidate.peak)}) would fit"
    return ("no micro-batch, gradient checkpointing or engine share would fit; shorten max_completion_length or "
            "max_length")


@dataclass(frozen=True)
class Choice:
    """What ``auto`` chose: a micro-batch (examples), its accumulation, checkpointing, and the plan they make."""

    examples: int
    accumulation: int
    checkpointing: bool
    plan: Plan


def candidates(plan: Plan, batch: bool, checkpointing: bool, divides: int = 0) -> list[Choice]:
    """Every setting ``auto`` may choose, fastest first, each with its plan (fitting or not).

    The optimizer step (micro-batch x accumulation, in examples) stays as it
    is. Without checkpointing comes first (recomputing the forward pass costs
    a fifth of a step or more, a smaller micro-batch on a CPU much less), then
    the largest micro-batch: the whole step, then each of its divisors down to
    one (only those dividing ``divides`` when it is set: GRPO's generation
    batch per process).

    Example:
        >>> shape = ModelShape(params=134_515_008, layers=30, hidden=576, intermediate=1536, kv_dim=192,
        ...                    vocab=49152)
        >>> plan = estimate(shape, Workload(sequences=8, tokens=512, accumulation=2), available=8 * GB)
        >>> [(c.examples, c.accumulation, c.checkpointing) for c in candidates(plan, True, True)][:5]
        [(16, 1, False), (8, 2, False), (4, 4, False), (2, 8, False), (1, 16, False)]
    """
    work = plan.workload
    examples = work.sequences // work.per_example
    step = examples * work.accumulation
    sizes = [size for size in range(step, 0, -1)
             if step % size == 0 and (not divides or divides % size == 0)] if batch else [examples]
    out = []
    for checkpoint in ([False, True] if checkpointing else [work.gradient_checkpointing]):
        for size in sizes:
            option = replace(work, sequences=size * work.per_example, accumulation=step // size,
                             gradient_checkpointing=checkpoint)
            out.append(Choice(size, step // size, checkpoint, estimate(plan.shape, option, plan.available)))
    return out


def env_available_override() -> int | None:
    """``RLFT_MEMORY_GB`` (tests, and machines shared with other jobs): the memory rlft may plan for."""
    value = os.environ.get("RLFT_MEMORY_GB")
    return int(float(value) * GB) if value else None
