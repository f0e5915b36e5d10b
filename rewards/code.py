"""Code reward: run model-written Python against a row's tests in the sandbox (no torch).

``code_tests`` is a TRL-compatible batched reward, ``f(completions, tests=None,
**columns) -> list[float | None]``: the fraction of the row's tests that the
completion's code passes; ``None`` ("cannot verify") when the row has no or
malformed tests, ``0.0`` when the completion has no (parsable) code. The code
is the last ```python (or bare ```) fenced block, else the whole completion if
it parses. Model output is only ``ast.parse``d in this process, never run.

Tests per row: a list of assert statements (strings), or a list of
``{"input": stdin, "output": expected_stdout}`` dicts (``{"inputs": [...],
"outputs": [...]}`` and a JSON string of either are accepted too).

* stdin/stdout tests: one sandbox run per test; the output is compared here
  (trailing whitespace and blank edge lines ignored), so the code cannot fake it.
* assert tests: one sandbox run per sample of a harness that reads a random nonce
  (with the code and tests) from stdin, closes stdin, points the code's stdout at
  stderr, execs the code (``SystemExit`` and errors are caught), restores the
  builtins, then execs each assert and writes ``RLFT:<nonce>:<i>:pass|fail`` to
  the saved stdout. Only markers with the right nonce count, so ``sys.exit(0)``
  or ``os._exit(0)`` before the tests scores what was marked: 0.0.

  Not prevented (the code runs in the harness's process): introspection that
  finds the nonce or the test list (``sys._getframe``, ``gc``, ``/proc/self/mem``)
  and forges markers; objects whose ``__eq__`` always returns True; names in the
  code's module (e.g. its own ``sorted``) that shadow builtins the tests use;
  threads that race the tests. Use stdin/stdout tests where this matters.

Counters for logging: ``reward.stats``, a ``Counter`` (``samples``, ``none``,
``no_code``, ``syntax_errors``, ``runs``, ``timeouts``, ``errors``, ``early_exits``);
``reward.reset_stats()`` zeroes it. A missing tests column or a bad setting raises
:class:`rewards.base.RewardInputError`.

Example:
    >>> reward = make_code_tests(timeout=2.0)
    >>> done = "```python\\ndef add(a, b):\\n    return a + b\\n```"
    >>> reward([done, "no code here."], tests=[["assert add(1, 2) == 3"], []])
    [1.0, None]
"""

from __future__ import annotations

import ast
import json
import logging
import re
import secrets
import threading
import warnings
from collections import Counter
from typing import Any

from rewards.base import RewardInputError, get_column, positive
from rewards.sandbox import OUTPUT_LIMIT, SandboxResult, run_many
from rewards.verifiers import completion_text

log = logging.getLogger(__name__)

_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_PYTHON_TAGS = {"", "python", "python3", "py"}
_STATS = ("samples", "none", "no_code", "syntax_errors", "runs", "timeouts", "errors",
          "early_exits")

_HARNESS = r'''
import builtins, json, os, sys


def _rlft_run():
    payload = json.loads(sys.stdin.read())
    tag = ("RLFT:" + payload.pop("nonce") + ":").encode()
    code, tests = payload.pop("code"), payload.pop("tests")
    write, exit_, exec_, compile_, base_exc = os.write, os._exit, exec, compile, BaseException
    enum, str_ = enumerate, str
    out = os.dup(1)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(2, 1)  # the code's prints go to stderr; results to the saved stdout
    pristine, table = dict(builtins.__dict__), builtins.__dict__
    ns = {"__name__": "__main__", "__builtins__": builtins}
    try:
        exec_(compile_(code, "solution.py", "exec"), ns)
    except base_exc:
        pass
    for key in [*table]:
        if key not in pristine:
            del table[key]
    table.update(pristine)
    ns["__builtins__"] = builtins
    for i, test in enum(tests):
        try:
            exec_(compile_(test, "test_%d.py" % i, "exec"), ns)
            ok = b"pass"
        except base_exc:
            ok = b"fail"
        write(out, b"\n" + tag + str_(i).encode() + b":" + ok + b"\n")
    write(out, b"\n" + tag + b"done\n")
    exit_(0)


_rlft_run()
'''


def _parses(code: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ast.parse(code)
        except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
            return False
    return True


def extract_code(completion: Any) -> str | None:
    """The code of a completion (string or chat messages), or ``None`` if it has none.

    The last ```python / ```py / bare ``` block (an unclosed last block counts),
    else the whole text when it parses as Python.

    Example:
        >>> extract_code("Here:\\n```python\\nprint(1)\\n```\\nDone.")
        'print(1)\\n'
        >>> extract_code("The answer is 42.") is None
        True
    """
    text = completion_text(completion)
    blocks = [body for tag, body in _FENCE.findall(text) if tag.lower() in _PYTHON_TAGS]
    if blocks:
        return blocks[-1] if blocks[-1].strip() else None
    return text if text.strip() and "```" not in text and _parses(text) else None


def parse_tests(raw: Any) -> tuple[str, list] | None:
    """``("assert", [statement, ...])``, ``("io", [(stdin, expected), ...])`` or ``None``.

    Example:
        >>> parse_tests(["assert f(1) == 2"])
        ('assert', ['assert f(1) == 2'])
        >>> parse_tests([{"input": "3\\n", "output": "9"}]), parse_tests([]), parse_tests([1])
        (('io', [('3\\n', '9')]), None, None)
    """
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    if isinstance(raw, dict) and {"inputs", "outputs"} <= raw.keys():
        ins, outs = raw["inputs"], raw["outputs"]
        if not isinstance(ins, list) or not isinstance(outs, list) or len(ins) != len(outs):
            return None
        raw = [{"input": i, "output": o} for i, o in zip(ins, outs, strict=True)]
    if not isinstance(raw, (list, tuple)) or not raw:
        return None
    if all(isinstance(t, str) and t.strip() and _parses(t) for t in raw):
        return "assert", list(raw)
    if not all(isinstance(t, dict) for t in raw):
        return None
    cases = [(t.get("input") or "", t.get("output")) for t in raw]
    if all(isinstance(i, str) and isinstance(o, str) for i, o in cases):
        return "io", cases
    return None


def _normalize(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return "\n".join(lines).strip("\n")


def _harness_passes(result: SandboxResult, nonce: str, n_tests: int) -> tuple[int, bool]:
    """Tests marked passed (and not also failed) with ``nonce``, and whether ``done`` came."""
    passed, failed, done = set(), set(), False
    for index, verdict in re.findall(rf"RLFT:{nonce}:(?:(\d+):(pass|fail)|done)", result.stdout):
        if not index:
            done = True
        elif int(index) < n_tests:
            (passed if verdict == "pass" else failed).add(int(index))
    return len(passed - failed), done


class CodeTestsReward:
    """Callable reward (see module docstring); build it with :func:`make_code_tests`.

    Example:
        >>> reward = make_code_tests(timeout=2.0)
        >>> reward(["print(int(input()) + 1)"], tests=[[{"input": "1", "output": "2"}]])
        [1.0]
        >>> reward.stats["samples"]
        1
    """

    def __init__(self, timeout: float = 5.0, memory_mb: int = 1024,
                 max_workers: int | None = None, tests_column: str = "tests") -> None:
        self.__name__ = "code_tests"  # TRL logs rewards under their __name__
        self.timeout = positive(timeout, "timeout", "code_tests")
        self.memory_mb = int(positive(memory_mb, "memory_mb", "code_tests"))
        if max_workers is not None:
            max_workers = int(positive(max_workers, "max_workers", "code_tests"))
        if not isinstance(tests_column, str) or not tests_column:
            raise RewardInputError(f"reward 'code_tests': bad tests_column {tests_column!r}")
        self.max_workers, self.tests_column = max_workers, tests_column
        self._lock = threading.Lock()
        self.stats: Counter = Counter(dict.fromkeys(_STATS, 0))  # counters for training logs

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def reset_stats(self) -> None:
        """Zero the counters (e.g. after logging them)."""
        with self._lock:
            for key in [*_STATS, *self.stats]:
                self.stats[key] = 0

    def _count(self, **deltas: int) -> None:
        with self._lock:
            self.stats.update({key: int(value) for key, value in deltas.items()})

    def _jobs(self, index: int, code: str, kind: str, tests: list) -> list[tuple]:
        """``(sample index, run kwargs, check)`` per sandbox run of one sample."""
        base = {"timeout": self.timeout, "memory_mb": self.memory_mb}
        if kind == "io":
            return [(index, {**base, "code": code, "stdin": stdin,
                             "output_limit": max(OUTPUT_LIMIT, 2 * len(expected) + 1024)},
                     ("io", expected)) for stdin, expected in tests]
        nonce = secrets.token_hex(16)
        payload = json.dumps({"nonce": nonce, "code": code, "tests": tests})
        return [(index, {**base, "code": _HARNESS, "stdin": payload,
                         "output_limit": max(OUTPUT_LIMIT, 96 * len(tests) + 1024)},
                 ("assert", nonce))]

    def _passes(self, result: SandboxResult, check: tuple, n_tests: int) -> int:
        self._count(runs=1, timeouts=result.status == "timeout", errors=result.status == "error")
        if check[0] == "io":
            return int(result.status == "ok" and not result.truncated
                       and _normalize(result.stdout) == _normalize(check[1]))
        passed, done = _harness_passes(result, check[1], n_tests)
        self._count(early_exits=not done and result.status != "timeout")
        return passed

    def __call__(self, completions: list, tests: list | None = None,
                 **columns: Any) -> list[float | None]:
        rows = get_column({**columns, "tests": tests}, self.tests_column, "code_tests",
                          len(completions))
        scores: list[float | None] = [None] * len(completions)
        totals: dict[int, int] = {}
        jobs: list[tuple] = []
        for i, (completion, raw) in enumerate(zip(completions, rows, strict=True)):
            spec, code = parse_tests(raw), extract_code(completion)
            if spec is None:
                self._count(none=1)
            elif code is None or not _parses(code):
                self._count(no_code=code is None, syntax_errors=code is not None)
                scores[i] = 0.0
            else:
                totals[i] = len(spec[1])
                jobs += self._jobs(i, code, *spec)
        self._count(samples=len(completions))
        results = run_many([kwargs for _, kwargs, _ in jobs], max_workers=self.max_workers)
        passed = dict.fromkeys(totals, 0)
        for (i, _, check), result in zip(jobs, results, strict=True):
            passed[i] += self._passes(result, check, totals[i])
        for i, total in totals.items():
            scores[i] = passed[i] / total
        log.debug("code_tests: %d samples, %d sandbox runs, stats %s", len(scores), len(jobs),
                  dict(self.stats))
        return scores


def make_code_tests(timeout: float = 5.0, memory_mb: int = 1024, max_workers: int | None = None,
                    tests_column: str = "tests") -> CodeTestsReward:
    """A ``code_tests`` reward with recipe settings (``max_workers`` defaults to the CPUs).

    Example:
        >>> reward = make_code_tests(timeout=1.0, tests_column="test_list")
        >>> reward(["def f():\\n    return 1"], test_list=[["assert f() == 1"]])
        [1.0]
    """
    return CodeTestsReward(timeout, memory_mb, max_workers, tests_column)


code_tests = make_code_tests()
