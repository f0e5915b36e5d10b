"""Greedy answers with tools: the same loop as training's, for the closing check.

Each turn renders every unfinished conversation with the tools in its
system prompt, completes all of them in one generation call, reads the tool
calls back with TRL's parser for the tokenizer's template
(``parse_response``, as TRL's training loop does), runs each call (an
exception becomes ``{"error": ...}``, as in TRL) and appends the results as
``tool`` messages, until a turn has no call or ``max_turns`` turns are used.
The answer that is scored is the last turn's text.

Example (a scripted "model" that calls the tool once, then answers with its result):
    >>> from rlft.core.models import load_tokenizer
    >>> from rlft.tools import calculator
    >>> from rlft.tools.chat import enable_tool_calls
    >>> tok = enable_tool_calls(load_tokenizer("bundled:smollm2-135m-instruct"), "bundled")
    >>> def complete(texts):
    ...     return ['<tool_call>\\n{"name": "calculator", "arguments": {"expression": "12*3"}}\\n</tool_call>'
    ...             if "<tool_response>" not in t else "It is 36." for t in texts]
    >>> answers, transcripts = tool_answers(complete, tok, [[{"role": "user", "content": "12*3?"}]], [calculator], 3)
    >>> answers, [m["role"] for m in transcripts[0]]
    (['It is 36.'], ['assistant', 'tool', 'assistant'])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from trl.chat_template_utils import parse_response

from rlft.core.tool_setup import ToolSetup


def tool_answers(complete: Callable[[list[str]], list[str]], tokenizer: Any, prompts: Sequence[Any],
                 tools: list[Callable[..., Any]], max_turns: int, chat_template_kwargs: dict | None = None,
                 prompt_tools: Sequence[list[Callable[..., Any]]] | None = None,
                 ) -> tuple[list[str], list[list[dict[str, Any]]]]:
    """Each prompt's final answer and its transcript (the model's turns and the tool results).

    ``prompt_tools`` gives each prompt its own tools in place of ``tools``
    (an environment's methods, bound to that prompt's episode).
    """
    own = [list(t) for t in prompt_tools] if prompt_tools is not None else [tools] * len(prompts)
    kwargs = dict(chat_template_kwargs or {})
    transcripts: list[list[dict[str, Any]]] = [[] for _ in prompts]
    answers = [""] * len(prompts)
    running = list(range(len(prompts)))
    for turn in range(max_turns):
        texts = [tokenizer.apply_chat_template(list(prompts[i]) + transcripts[i], tools=own[i], tokenize=False,
                                               add_generation_prompt=True, **kwargs) for i in running]
        still = []
        for i, text, out in zip(running, texts, complete(texts), strict=True):
            prefix = tokenizer(text, add_special_tokens=False)["input_ids"]
            ids = tokenizer(out + (tokenizer.eos_token or ""), add_special_tokens=False)["input_ids"]
            message = parse_response(tokenizer, ids, prefix=prefix, tools=own[i])
            transcripts[i].append(message)
            answers[i] = out
            calls = message.get("tool_calls") or []
            if calls and turn < max_turns - 1:
                by_name = {t.__name__: t for t in own[i]}
                transcripts[i].extend(_run(call, by_name) for call in calls)
                still.append(i)
        running = still
        if not running:
            break
    return answers, transcripts


def start_episodes(prompts: Sequence[Any], rows: Sequence[dict[str, Any]], tools: list[Callable[..., Any]],
                   episode: Callable[[dict[str, Any]], tuple[Any, str | None, list]],
                   ) -> tuple[list[Any], list[Any], list[list[Callable[..., Any]]]]:
    """One environment episode per row: the prompts with each ``reset`` observation, the instances, their tools.

    ``episode(row)`` returns ``(environment, observation, its tools)``
    (:func:`rlft.tools.environments.episode`). The observation is appended to
    the last user message, as TRL does in training.

    Example:
        >>> class Echo:
        ...     def look(self) -> str:
        ...         '''Look around.'''
        ...         return "a door"
        >>> start = lambda row: (Echo(), f" (room {row['room']})", [Echo().look])
        >>> prompts, envs, tools = start_episodes([[{"role": "user", "content": "Where?"}]], [{"room": 3}], [], start)
        >>> prompts[0][-1]["content"], [t.__name__ for t in tools[0]]
        ('Where? (room 3)', ['look'])
    """
    out_prompts, envs, own = [], [], []
    for prompt, row in zip(prompts, rows, strict=True):
        env, observation, env_tools = episode(row)
        if observation is not None:
            prompt = list(prompt[:-1]) + [{**prompt[-1], "content": prompt[-1]["content"] + observation}]
        out_prompts.append(prompt)
        envs.append(env)
        own.append(list(tools) + list(env_tools))
    return out_prompts, envs, own


def answers_with_tools(complete: Callable[[list[str]], list[str]], tokenizer: Any, prompts: Sequence[Any],
                       columns: dict[str, list], tools: ToolSetup,
                       chat_template_kwargs: dict | None = None) -> tuple[list[str], list[list[dict]], dict]:
    """Greedy answers through the tool loop, for any evaluation (closing check, during training, ``rlft eval``).

    ``tools`` is the run's :class:`~rlft.core.tool_setup.ToolSetup`; with
    an environment, each prompt is played in a fresh episode
    started from its row (``columns`` are the rows' columns). Returns the
    answers, their transcripts and the columns to add for scoring
    (``{"environments": [...]}`` with an environment, for its reward; else ``{}``).

    Example (a scripted "model" that calls the calculator once):
        >>> from rlft.core.models import load_tokenizer
        >>> from rlft.tools import calculator
        >>> from rlft.tools.chat import enable_tool_calls
        >>> tok = enable_tool_calls(load_tokenizer("bundled:smollm2-135m-instruct"), "bundled")
        >>> def complete(texts):
        ...     return ['<tool_call>\\n{"name": "calculator", "arguments": {"expression": "2*3"}}\\n</tool_call>'
        ...             if "<tool_response>" not in t else "6" for t in texts]
        >>> out, transcripts, extra = answers_with_tools(complete, tok, [[{"role": "user", "content": "2*3?"}]],
        ...                                               {"answer": ["6"]}, ToolSetup([calculator], 3))
        >>> out, tool_use_figures(transcripts), extra
        (['6'], {'tool_use': 1.0, 'turns': 2.0}, {})
    """
    functions, max_turns, episode = tools.functions, tools.max_turns, tools.episode
    asked, own, extra = list(prompts), None, {}
    if episode is not None:  # a fresh episode per prompt
        rows = [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
        asked, extra["environments"], own = start_episodes(asked, rows, functions, episode)
    out, transcripts = tool_answers(complete, tokenizer, asked, functions, max_turns, chat_template_kwargs,
                                    prompt_tools=own)
    return out, transcripts, extra


def _run(call: dict[str, Any], by_name: dict[str, Callable[..., Any]]) -> dict[str, Any]:
    function = call.get("function", call)
    name = function.get("name", "unknown")
    try:
        if name not in by_name:
            raise ValueError(f"Tool {name} not found.")
        result: Any = by_name[name](**(function.get("arguments") or {}))
    except Exception as err:  # noqa: BLE001 - the model reads any tool failure as its result, as in training
        result = {"error": str(err)}
    return {"role": "tool", "name": name, "content": str(result)}


def tool_use_figures(transcripts: list[list[dict[str, Any]]]) -> dict[str, float]:
    """Share of answers that called a tool, and model turns per answer.

    Example:
        >>> tool_use_figures([[{"role": "assistant", "tool_calls": [{}]}, {"role": "tool"},
        ...                    {"role": "assistant"}], [{"role": "assistant"}]])
        {'tool_use': 0.5, 'turns': 1.5}
    """
    n = max(len(transcripts), 1)
    used = sum(any(m.get("tool_calls") for m in t) for t in transcripts)
    turns = sum(sum(m.get("role") == "assistant" for m in t) for t in transcripts)
    return {"tool_use": used / n, "turns": turns / n}
