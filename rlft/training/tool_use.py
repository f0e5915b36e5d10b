"""What the policy did with its tools, per step: turns, answers, and the calls that went wrong.

TRL's tool loop logs ``tools/call_frequency`` and ``tools/failure_frequency``
(all failures together). From the finished transcripts (each completion's
messages: assistant turns and the ``tool`` results between them) this adds:

- ``tools/turns``: model turns per completion, on average;
- ``tools/answered``: the share of completions whose last turn is an answer
  (no tool call); ``tools/max_turns_hit`` the share cut off at ``max_turns``;
- ``tools/malformed``: turns that opened a ``<tool_call>`` the parser could
  not read (the model gets no result and the turn counts as its answer);
- ``tools/unknown``: calls of a tool that does not exist (the model gets an
  error message);

and, per tool, the wrapper's ``calls``, ``errors`` and ``timeouts`` since the
last log (:class:`rlft.tools.loading.ToolStats`).

Example:
    >>> transcript = [{"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "calc"}}]},
    ...               {"role": "tool", "name": "calc", "content": "4"},
    ...               {"role": "assistant", "content": "It is 4."}]
    >>> transcript_figures([transcript], tool_names={"calc"}, max_turns=4)
    {'tools/turns': 2.0, 'tools/answered': 1.0, 'tools/max_turns_hit': 0.0, 'tools/malformed': 0, 'tools/unknown': 0}
"""

from __future__ import annotations

from typing import Any

CALL_OPEN = "<tool_call>"


def transcript_figures(transcripts: list[Any], tool_names: set[str], max_turns: int) -> dict[str, float]:
    """The per-step figures above, over the completions of one generation batch."""
    turns = answered = hit = malformed = unknown = 0
    for messages in transcripts:
        if isinstance(messages, str):  # a plain-text completion: one turn, an answer
            messages = [{"role": "assistant", "content": messages}]
        own = [m for m in messages if m.get("role") == "assistant"]
        turns += len(own)
        for message in own:
            calls = message.get("tool_calls") or []
            unknown += sum((c.get("function") or c).get("name") not in tool_names for c in calls)
            if not calls and CALL_OPEN in str(message.get("content") or ""):
                malformed += 1
        last_calls = bool(own and own[-1].get("tool_calls"))
        answered += bool(own) and not last_calls
        hit += len(own) >= max_turns and last_calls
    n = max(len(transcripts), 1)
    return {"tools/turns": turns / n, "tools/answered": answered / n, "tools/max_turns_hit": hit / n,
            "tools/malformed": malformed, "tools/unknown": unknown}
