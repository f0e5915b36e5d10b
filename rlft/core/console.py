"""What a run prints, and its log file: rlft's own lines on the console, everything in ``run.log``.

A training run shows rlft's progress bar, its own info lines, the closing
table and the warnings that matter. Into ``<output_dir>/run.log`` go all of
that and what rlft keeps off the console: the checked third-party notices
(:mod:`rlft.core.noise`), the vLLM engine process's output (its start-up
logs, weight-loading bars and native warnings), TRL's per-step completion
tables (``log_completions``) and the trainer's raw metric dicts.
``--verbose`` prints them on the console as well, as the libraries would.

Example:
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> _ = open_run_log(folder)
    >>> logging.getLogger("rlft.demo").warning("kept in the log")
    >>> path = claim_run_log()
    >>> close_run_log()
    >>> "kept in the log" in path.read_text()
    True
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from rlft.core import noise

LOG_NAME = "run.log"
PENDING_NAME = ".run.log.new"  # until the run claims its directory
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_OWN = ("rlft", "rewards")
_BUFFER_LIMIT = 10_000  # diverted records kept until a run log opens (a run has a few dozen)


class _State:
    verbose = False
    handler: logging.FileHandler | None = None
    pending = False  # writing PENDING_NAME, not yet claimed
    created: Path | None = None  # the topmost directory open_run_log made
    buffer: ClassVar[list[logging.LogRecord]] = []


def _keep(record: logging.LogRecord) -> None:
    if _State.handler is not None:
        _State.handler.handle(record)
    elif len(_State.buffer) < _BUFFER_LIMIT:
        _State.buffer.append(record)


class ConsoleFilter(logging.Filter):
    """The console shows rlft's records and other libraries' warnings; ``verbose`` shows all that reaches it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _State.verbose or record.name.split(".")[0] in _OWN:
            return True
        return record.levelno >= logging.WARNING


class _Stderr(logging.StreamHandler):
    """Writes to the ``sys.stderr`` of the moment (tests and tools swap it), not the one at setup."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure(verbose: bool = False) -> None:
    """Console handler on the root logger (stderr), library records routed through it; idempotent.

    The root logger is set to INFO so the run log also gets what TRL, vLLM
    and accelerate log at INFO; the console shows those only when ``verbose``.
    """
    _State.verbose = verbose
    noise.set_sink(_keep, verbose)
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    if not any(getattr(h, "rlft_console", False) for h in root.handlers):
        handler = _Stderr(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
        handler.addFilter(ConsoleFilter())
        handler.rlft_console = True
        root.addHandler(handler)
    if not verbose:
        import datasets
        import transformers

        transformers.utils.logging.disable_progress_bar()  # "Loading weights" on every model load
        datasets.disable_progress_bars()  # "Map", "Tokenizing train dataset": each stage's data preparation


def open_run_log(output_dir: str | Path, resume: bool = False) -> Path:
    """Start this run's log in ``output_dir``: every log record from now on, and the diverted ones kept so far.

    A resumed run appends to ``run.log``. A new run writes ``.run.log.new``
    until :func:`claim_run_log` (the directory is the run's: every check
    passed) renames it to ``run.log``; a run refused before that leaves
    nothing behind (:func:`close_run_log`), not even the directory, and an
    ``--overwrite`` refused before that keeps the old run's log.
    """
    close_run_log()
    folder = Path(output_dir)
    created = next((p for p in [*reversed(folder.parents), folder] if not p.exists()), None)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (LOG_NAME if resume else PENDING_NAME)
    if not resume:
        path.write_text("")
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")  # O_APPEND: the engine process writes too
    handler.setFormatter(logging.Formatter(FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    _State.handler, _State.pending, _State.created = handler, not resume, created
    logging.getLogger().addHandler(handler)
    for record in _State.buffer:
        handler.handle(record)
    _State.buffer.clear()
    return path


def claim_run_log() -> Path | None:
    """The run owns its directory now: ``.run.log.new`` becomes ``run.log`` (open handles keep writing to it)."""
    if _State.handler is None:
        return None
    path = Path(_State.handler.baseFilename)
    if _State.pending:
        final = path.with_name(LOG_NAME)
        os.replace(path, final)
        _State.handler.baseFilename = str(final)
        _State.pending = False
    return Path(_State.handler.baseFilename)


def close_run_log() -> None:
    """Stop writing the run log; an unclaimed one is removed, with the directories it created."""
    handler, _State.handler = _State.handler, None
    if handler is None:
        return
    logging.getLogger().removeHandler(handler)
    handler.close()
    if _State.pending:
        Path(handler.baseFilename).unlink(missing_ok=True)
        created = _State.created
        if created is not None and created.is_dir() and not any(p.is_file() for p in created.rglob("*")):
            shutil.rmtree(created, ignore_errors=True)
    _State.pending, _State.created = False, None


def quiet() -> bool:
    """True when third-party output goes to the run log (a log is open and not ``--verbose``)."""
    return _State.handler is not None and not _State.verbose


@contextlib.contextmanager
def child_output_to_log() -> Iterator[None]:
    """Processes started inside this block write their stdout and stderr into the run log, for their lifetime.

    vLLM's engine core is a separate process whose start-up logs, weight-loading
    bars (after every merged sync) and native warnings would otherwise land on
    the console; it inherits file descriptors 1 and 2 when it starts, so they
    point at the log while it starts and are restored for this process after.
    Output of this process inside the block goes to the log too.
    """
    if not quiet():
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    log_fd = _State.handler.stream.fileno()
    try:
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


@contextlib.contextmanager
def stdout_to_log() -> Iterator[None]:
    """What this process prints inside the block goes to the run log (TRL's completion tables), when quiet."""
    if not quiet():
        yield
        return
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        text = buffer.getvalue()
        if text:
            _State.handler.acquire()
            try:
                _State.handler.stream.write(text if text.endswith("\n") else text + "\n")
                _State.handler.flush()
            finally:
                _State.handler.release()
