"""Per-sample timeouts that work from any thread: a pool of worker processes.

math-verify and sympy can hang on hostile input (``\\boxed{9^{9^{9^{9^{9}}}}}``).
math-verify's own timeouts use ``signal.alarm``, which does nothing off the
main thread (TRL disables them there), and no signal interrupts a long C-level
computation. So every call that can hang goes to a pebble ``ProcessPool``:
pebble kills the worker that overruns its timeout and starts a fresh one,
and the caller gets :data:`TIMED_OUT` for that sample while the others
continue on the remaining workers.

Workers come from a ``forkserver`` (not ``fork``): the trainer process holds
threads (torch, tokenizers, vLLM) and forking it can deadlock on their locks.
The fork server is a fresh interpreter that preloads the verifier modules
(math-verify, sympy), so a worker killed on timeout is replaced in
milliseconds. Its preload list is set to those modules instead of
multiprocessing's default ``["__main__"]``: the server need not run the
user's script. (Each worker still re-imports ``__main__`` as
``__mp_main__``, as every spawn/forkserver child does; when ``__main__`` is
not a file, e.g. ``python - <<EOF``, that would fail, so such processes use
``fork`` instead.) The pool is created on first use and shared by all
rewards in the process. A script that trains at import time, outside
``if __name__ == "__main__":``, would run again in every worker; the workers
then fail to start and :func:`run_with_timeout` raises :class:`WorkersFailed`
saying so, instead of scoring every sample ``None``.

Example:
    >>> from rewards.timeouts import run_with_timeout
    >>> run_with_timeout(pow, [(2, 10), (3, 2)], timeout=5.0)
    [1024, 9]
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import Any

logger = logging.getLogger(__name__)


class _TimedOut:
    """Marker for a sample whose verification ran past its timeout."""

    def __repr__(self) -> str:
        return "TIMED_OUT"

    def __bool__(self) -> bool:
        return False


TIMED_OUT = _TimedOut()
FAILED = None  # the worker raised: treated like "cannot verify"


class WorkersFailed(RuntimeError):
    """The verification workers could not start or all died; nothing was scored."""


PRELOAD = ["rewards.verifiers", "math_verify", "sympy"]

_lock = threading.Lock()
_pool: Any = None
_pool_pid: int | None = None


def default_workers() -> int:
    """One worker per usable core (``RLFT_VERIFY_WORKERS`` overrides)."""
    env = os.environ.get("RLFT_VERIFY_WORKERS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _start_method() -> str:
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if main_file is not None and not os.path.isfile(main_file):
        return "fork"  # children could not re-import a __main__ that is not a file
    return "forkserver"


def get_pool():
    """The process-wide verification pool (created lazily; recreated after a fork)."""
    global _pool, _pool_pid
    with _lock:
        if _pool is None or _pool_pid != os.getpid() or not _pool.active:
            from pebble import ProcessPool

            context = multiprocessing.get_context(_start_method())
            if context.get_start_method() == "forkserver":
                context.set_forkserver_preload(PRELOAD)
            _pool = ProcessPool(max_workers=default_workers(), context=context)
            _pool_pid = os.getpid()
        return _pool


def shutdown() -> None:
    """Stop the pool's workers (registered at exit; safe to call twice)."""
    global _pool
    with _lock:
        if _pool is not None and _pool_pid == os.getpid():
            _pool.stop()
            _pool.join(timeout=5)
        _pool = None


atexit.register(shutdown)


def run_with_timeout(
    fn: Callable[..., Any], calls: Iterable[Sequence[Any]], timeout: float
) -> list[Any]:
    """``[fn(*args) for args in calls]`` in worker processes, each under ``timeout`` seconds.

    A call that overruns gives :data:`TIMED_OUT`; one that raises gives ``None``.
    ``fn`` must be importable (a module-level function). Results keep the input order.
    """
    calls = [tuple(args) for args in calls]
    if not calls:
        return []
    pool = get_pool()
    futures = [pool.schedule(fn, args=args, timeout=timeout) for args in calls]
    results: list[Any] = []
    for future, args in zip(futures, calls, strict=True):
        try:
            results.append(future.result())
        except BrokenProcessPool as err:
            raise WorkersFailed(_workers_failed_message(err)) from err
        except FutureTimeout:
            logger.debug("verification timed out after %.1fs: %r", timeout, _short(args))
            results.append(TIMED_OUT)
        except Exception as err:  # noqa: BLE001 - a verifier crash must not end training
            logger.debug("verification failed (%s): %r", err, _short(args))
            results.append(FAILED)
    return results


def _workers_failed_message(err: BaseException) -> str:
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    script = f" ({os.path.basename(main_file)})" if main_file else ""
    return (
        f"the reward verification workers could not start ({err}). Each worker re-imports the main "
        f"script{script}: if it trains at import time, move that code under "
        f"'if __name__ == \"__main__\":' (the worker's own error is printed above)"
    )


def in_worker_bootstrap() -> bool:
    """True while a spawn/forkserver child re-imports the parent's main script.

    This is the check multiprocessing itself makes before starting a process
    (``spawn._check_not_importing_main``); rlft makes it before loading a
    model or building a trainer, so a script without a main guard fails in
    the worker at once rather than after loading everything a second time.
    """
    import multiprocessing.process

    return bool(getattr(multiprocessing.process.current_process(), "_inheriting", False))


def refuse_in_worker_bootstrap(what: str) -> None:
    """Raise if a worker is re-importing a main script that builds ``what`` at import time.

    Example:
        >>> refuse_in_worker_bootstrap("a model")  # in the main process: nothing happens
    """
    if in_worker_bootstrap():
        raise RuntimeError(
            f"{what} is being built while a worker process re-imports the main script: "
            "put the training code under 'if __name__ == \"__main__\":'"
        )


def _short(args: Sequence[Any], limit: int = 120) -> str:
    text = repr(args)
    return text if len(text) <= limit else text[:limit] + "..."
