"""A chat template that renders tools and tool calls, and the parser that reads calls back out of a completion.

TRL's tool loop renders the tools into the prompt (``apply_chat_template(...,
tools=...)``), parses each completion with the tokenizer's response template
(``parse_response``) and appends every result as a ``tool`` message. So the
tokenizer must do both:

- a template that renders tools (Qwen2.5, Qwen3, Llama 3.1, ...) gets TRL's
  parser for it (``add_response_schema``);
- the bundled SmolLM2, whose template knows only plain turns, gets TRL's
  Qwen2.5 template (ChatML, the same ``<|im_start|>`` tokens SmolLM2 uses)
  with SmolLM2's own default system prompt, and Qwen's Hermes-style parser:
  ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``. Without
  tools it renders every conversation exactly as SmolLM2's template does;
- any other template is refused in one line.

Example:
    >>> from rlft.core.models import load_tokenizer
    >>> tok = enable_tool_calls(load_tokenizer("bundled:smollm2-135m-instruct"), "bundled")
    >>> "<tool_call>" in tok.apply_chat_template([{"role": "user", "content": "hi"}], tools=[TOOL], tokenize=False)
    True
"""

from __future__ import annotations

from typing import Any

from trl.chat_template_utils import (
    add_response_schema,
    qwen2_5_chat_template,
    qwen3_template,
    supports_tool_calling,
)

from rlft.core.errors import UserError

SMOLLM_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
TOOL = {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object",
        "properties": {}}}}  # a stand-in tool for the docstring's example


def is_smollm_template(template: str | None) -> bool:
    """SmolLM2's plain ChatML template (it has no tool support of its own)."""
    return bool(template) and "<|im_start|>" in template and SMOLLM_SYSTEM in template and "tool" not in template


def smollm_tool_template() -> str:
    """TRL's Qwen2.5 template with SmolLM2's default system prompt in place of Qwen's."""
    assert QWEN_SYSTEM in qwen2_5_chat_template, "TRL's Qwen2.5 template changed; update rlft.tools.chat"
    return qwen2_5_chat_template.replace(QWEN_SYSTEM, SMOLLM_SYSTEM)


def enable_tool_calls(tokenizer: Any, model_name: str) -> Any:
    """``tokenizer`` able to render tools and parse tool calls (changed in place and returned), or a ``UserError``."""
    # SmolLM2's own template, or the tool template a run on it saved with its tokenizer (an SFT warm-start)
    if is_smollm_template(tokenizer.chat_template) or tokenizer.chat_template == smollm_tool_template():
        tokenizer.chat_template = smollm_tool_template()
        tokenizer.response_template = qwen3_template  # TRL's parser for Qwen2.5's Hermes-style calls
        return tokenizer
    if not supports_tool_calling(tokenizer):
        raise UserError(f"tools: the chat template of {model_name} cannot render tool calls and their results; "
                        "use a model whose template does (Qwen2.5, Qwen3, Llama 3.1, the bundled SmolLM2)")
    if getattr(tokenizer, "response_template", None) or getattr(tokenizer, "response_schema", None):
        return tokenizer
    try:
        return add_response_schema(tokenizer)
    except ValueError:
        raise UserError(f"tools: the chat template of {model_name} renders tool calls but TRL has no parser "
                        "for them; set the tokenizer's response_template (transformers' response parsing)") from None
