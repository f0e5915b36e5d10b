"""Clean up after a trainer that dies without running its shutdown (SIGKILL, the OOM killer).

vLLM's engine-core process does not watch the process that started it
(vllm-project/vllm#55510, open; the fixes proposed upstream have not landed in
the pinned version), so a trainer killed with SIGKILL leaves ``VLLM::EngineCore``
and ``VLLM::Worker`` running with their memory (7.5 GB resident for the
bundled model on CPU, measured after an OOM kill here), and the engine's
scratch copy of the merged weights stays in ``/dev/shm`` (0.5 GB of RAM).
The next run then starts with that much less memory, and nothing says why.

:func:`start_reaper` starts a small watchdog process in a session of its own
(so Ctrl-C and a process-group kill do not take it down with the trainer). It
polls every second whether its parent is still the trainer; when the trainer
is gone, it stops the processes it was given (SIGTERM, which vLLM handles,
then SIGKILL after a grace period), with their descendants, and deletes the
paths. A clean shutdown calls :meth:`Reaper.stop` first and the watchdog
exits having done nothing. Processes are matched on pid *and* start time, so
a reused pid is never signalled.

Example:
    >>> import subprocess, tempfile
    >>> child = subprocess.Popen(["sleep", "60"])
    >>> reaper = start_reaper([child.pid], [tempfile.mkdtemp()])
    >>> reaper.stop()  # clean shutdown: nothing is killed
    >>> child.poll() is None
    True
    >>> child.kill(); _ = child.wait()
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence

import psutil

POLL_SECONDS = 1.0
GRACE_SECONDS = 5.0

# The watchdog's whole program: stdlib + psutil only (measured: 14 MB resident while it waits).
_WATCHDOG = r"""
import json, os, shutil, sys, time
import psutil
parent, poll, grace = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
spec = json.loads(sys.stdin.readline())
while os.getppid() == parent:
    time.sleep(poll)
procs = []
for pid, started in spec["procs"]:
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - started) < 0.01:
            procs += [proc, *proc.children(recursive=True)]
    except psutil.Error:
        pass
for proc in procs:
    try:
        proc.terminate()
    except psutil.Error:
        pass
_, alive = psutil.wait_procs(procs, timeout=grace)
for proc in alive:
    try:
        proc.kill()
    except psutil.Error:
        pass
for path in spec["paths"]:
    shutil.rmtree(path, ignore_errors=True)
"""


class Reaper:
    """Handle on a running watchdog; :meth:`stop` it on a clean shutdown."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process

    def stop(self) -> None:
        """End the watchdog without cleaning anything (the caller shut down properly)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def start_reaper(pids: Sequence[int], paths: Sequence[str | os.PathLike]) -> Reaper:
    """Watch this process; if it dies before :meth:`Reaper.stop`, stop ``pids`` and delete ``paths``."""
    procs = []
    for pid in pids:
        try:
            procs.append([pid, psutil.Process(pid).create_time()])
        except psutil.Error:
            continue
    spec = json.dumps({"procs": procs, "paths": [os.fspath(p) for p in paths]})
    process = subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(POLL_SECONDS), str(GRACE_SECONDS)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        text=True,
    )
    assert process.stdin is not None
    process.stdin.write(spec + "\n")
    process.stdin.close()
    return Reaper(process)


def new_children(before: set[int]) -> list[int]:
    """Pids of this process's direct children that are not in ``before``.

    Example:
        >>> before = {p.pid for p in psutil.Process().children()}
        >>> new_children(before)
        []
    """
    return [p.pid for p in psutil.Process().children() if p.pid not in before]
