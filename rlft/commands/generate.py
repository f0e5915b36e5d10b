"""``rlft generate`` and ``rlft chat``: try a trained model, one-shot or in the terminal.

    rlft generate runs/math --prompt "What is 12 + 30?"
    rlft generate runs/math --prompts prompts.jsonl --out answers.jsonl
    rlft chat runs/math                       # /reset, /system TEXT, /compare base, /quit

The model is any reference ``rlft eval`` accepts (a run directory, a
checkpoint, ``bundled:<name>``, a hub id, a local model); a run's chain of
adapters is merged into its base, loaded the way it was trained
(:func:`rlft.core.models.load_model`). Generation is greedy unless
``temperature`` is set, through the same code as every stage's closing check
(:func:`rlft.evaluation.generation.hf_completions`), so a run's greedy answers
here are the ones its ``before_after.jsonl`` shows for the same prompts (with
its ``eval_batch_size`` and ``eval_max_new_tokens``). A run's
``chat_template_kwargs`` (e.g. ``enable_thinking: false``) apply unless given.

A prompts file holds one JSON object per line with a ``prompt``: text, or
chat messages. Output: one ``{"prompt", "completion"}`` per line (``--out``,
else stdout), prompt-major with ``samples`` completions per prompt.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlft.core import models
from rlft.core.accelerator import generation_device
from rlft.core.errors import UserError, run_cli
from rlft.core.files import read_jsonl, write_atomic
from rlft.core.models import resolve_model
from rlft.core.recipe import load_recipe_file, parse_command
from rlft.core.runtime import setup_logging
from rlft.evaluation import generation

COMMANDS = "/reset (new conversation), /system TEXT (set the system prompt), /compare base (toggle the base " \
           "model's answer beside each reply), /quit"


@dataclass
class GenerateArguments:
    """How ``rlft generate`` / ``rlft chat`` answer."""

    prompt: str | None = field(default=None, metadata={"help": "One user message to answer."})
    prompts: str | None = field(default=None, metadata={"help": "JSONL file: one {prompt: text or messages} per line."})
    out: str | None = field(default=None, metadata={"help": "Write the answers here as JSONL (default: stdout)."})
    system: str | None = field(default=None, metadata={"help": "A system message before each prompt."})
    max_new_tokens: int = field(default=256, metadata={"help": "Longest answer, in tokens."})
    temperature: float = field(default=0.0, metadata={"help": "0: greedy (default); above 0: sample."})
    samples: int = field(default=1, metadata={"help": "Answers per prompt (sampling only)."})
    seed: int = field(default=0, metadata={"help": "Sampling seed."})
    batch_size: int = field(default=16, metadata={"help": "Prompts per generate call (a run's closing check: "
                                                          "its eval_batch_size)."})
    dtype: str = field(default="float32", metadata={"help": "Weights dtype (float32 reproduces the closing check)."})
    chat_template_kwargs: dict[str, Any] | None = field(
        default=None, metadata={"help": "apply_chat_template options; default: the run's own."})

    def __post_init__(self) -> None:
        for name in ("max_new_tokens", "samples", "batch_size"):
            if getattr(self, name) <= 0:
                raise UserError(f"{name} must be positive, got {getattr(self, name)}")
        if self.temperature < 0:
            raise UserError(f"temperature must be 0 (greedy) or more, got {self.temperature}")
        if self.samples > 1 and self.temperature == 0:
            raise UserError("samples > 1 needs temperature > 0 (greedy answers are all the same)")


def parse(argv: Sequence[str] | None, prog: str = "rlft generate") -> tuple[str, GenerateArguments]:
    """``MODEL [--key value ...]``: the model reference and the arguments."""
    parsed = parse_command(argv, GenerateArguments, prog, "MODEL")
    setup_logging("warning")  # the answers only: no loading bars, no info lines
    return parsed


def run_template_kwargs(name: str) -> dict[str, Any] | None:
    """The ``chat_template_kwargs`` a run directory (or one of its checkpoints) was trained with.

    Example:
        >>> run_template_kwargs("bundled:smollm2-135m-instruct") is None
        True
    """
    path = Path(name)
    for recipe in (path / "recipe.yaml", path.parent / "recipe.yaml"):
        if path.is_dir() and recipe.is_file():
            return load_recipe_file(recipe).get("chat_template_kwargs")
    return None


def read_prompts(path: str) -> list[Any]:
    """The ``prompt`` of every line of a JSONL file (one-line errors for a missing file or a bad line)."""
    prompts = [row["prompt"] for row in read_jsonl(path, "prompts file", "prompt")]
    bad = next((i for i, p in enumerate(prompts, 1) if not isinstance(p, (str, list))), None)
    if bad:
        raise UserError(f"{path}: prompt {bad} must be text or chat messages")
    return prompts


def as_messages(prompt: Any, system: str | None) -> list[dict[str, str]]:
    """A prompt as chat messages, with ``system`` first when given and the prompt has none.

    Example:
        >>> as_messages("Hi", "Be brief.")
        [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Hi'}]
    """
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    if system and not any(m.get("role") == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system})
    return messages


class Model:
    """A loaded model and tokenizer, answering chat messages (greedy unless sampling)."""

    def __init__(self, name: str, args: GenerateArguments) -> None:
        self.name, self.args = name, args
        self.tokenizer = models.load_tokenizer(name)
        self.model = models.load_model(name, args.dtype, device=generation_device())
        given = args.chat_template_kwargs
        self.template_kwargs = given if given is not None else run_template_kwargs(name)

    def answer(self, conversations: list[list[dict[str, str]]]) -> list[str]:
        a = self.args
        return generation.hf_completions(self.model, self.tokenizer, conversations,
                                         max_new_tokens=a.max_new_tokens, batch_size=a.batch_size,
                                         chat_template_kwargs=self.template_kwargs, samples=a.samples,
                                         temperature=a.temperature, seed=a.seed)

    def stream(self, messages: list[dict[str, str]], write: Any) -> str:
        """One reply to ``messages``, its text written as it is generated; returns it."""
        import torch
        from transformers import TextStreamer

        a = self.args
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                                  **(self.template_kwargs or {}))
        ids = self.tokenizer(text, return_tensors="pt", add_special_tokens=False).to(self.model.device)

        class Out(TextStreamer):
            def on_finalized_text(self, chunk: str, stream_end: bool = False) -> None:
                write(chunk + ("\n" if stream_end else ""))

        if a.temperature > 0:
            torch.manual_seed(a.seed)
        self.model.eval()
        with torch.inference_mode():
            out = self.model.generate(**ids, max_new_tokens=a.max_new_tokens, pad_token_id=self.tokenizer.pad_token_id,
                                      streamer=Out(self.tokenizer, skip_prompt=True, skip_special_tokens=True),
                                      **generation.generate_kwargs(a.temperature))
        return self.tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


def generate_main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """``rlft generate``: answer ``--prompt`` or every line of ``--prompts``; returns the written rows."""
    name, args = parse(argv, "rlft generate")
    if (args.prompt is None) == (args.prompts is None):
        raise UserError("give exactly one of --prompt TEXT or --prompts FILE.jsonl")
    prompts = [args.prompt] if args.prompt is not None else read_prompts(args.prompts)
    model = Model(name, args)
    texts = model.answer([as_messages(p, args.system) for p in prompts])
    rows = [{"prompt": prompts[i // args.samples], "completion": t} for i, t in enumerate(texts)]
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if args.out:
        write_atomic(args.out, lines)
    else:
        sys.stdout.write(lines)
    return rows


def chat_main(argv: Sequence[str] | None = None) -> int:
    """``rlft chat``: a conversation on stdin/stdout, each reply streamed; ``/quit`` or end of input stops."""
    name, args = parse(argv, "rlft chat")
    write = sys.stdout.write
    model, base = Model(name, args), None
    system, history, compare = args.system, [], False
    write(f"rlft chat: {name} ({'greedy' if args.temperature == 0 else f'temperature {args.temperature}'}). "
          f"{COMMANDS}\n")
    for line in _lines():
        text = line.strip()
        if not text:
            continue
        if text in ("/quit", "/exit"):
            break
        if text == "/reset":
            history = []
            write("(new conversation)\n")
        elif text.startswith("/system"):
            system, history = text[len("/system"):].strip() or None, []
            write(f"(system prompt {'set' if system else 'cleared'}; new conversation)\n")
        elif text == "/compare base":
            compare = not compare
            if compare and base is None:
                base = Model(resolve_model(name).base, args)
            write(f"(base model's answer {'shown' if compare else 'hidden'})\n")
        elif text.startswith("/"):
            write(f"unknown command {text.split()[0]}; {COMMANDS}\n")
        else:
            history.append({"role": "user", "content": text})
            messages = as_messages(history, system)
            write("model> ")
            reply = model.stream(messages, write)
            if compare:
                write("base>  ")
                base.stream(messages, write)
            history.append({"role": "assistant", "content": reply})
        sys.stdout.flush()
    return 0


def _lines():
    """The user's lines: with a ``you>`` prompt in a terminal, plain when stdin is a pipe."""
    interactive = sys.stdin.isatty()
    while True:
        try:
            line = input("you> ") if interactive else sys.stdin.readline()
        except EOFError:
            return
        if not interactive and not line:
            return
        yield line


if __name__ == "__main__":
    sys.exit(run_cli(generate_main))
