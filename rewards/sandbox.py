"""Run untrusted, model-written Python in a sandboxed subprocess (Linux; no torch).

Per run: a fresh temporary cwd (deleted afterwards), a minimal environment,
``python -I -B`` in a new session; in the child before ``exec``: empty network,
mount and IPC namespaces (``/tmp`` & co. become the run's directory), a uid of
its own when the parent is root, ``no_new_privs`` and rlimits. A wall-clock
timeout kills the process group and every process of the run's uid. Output is
drained without deadlock and capped. No signals in the parent: any thread may
call; :func:`run_many` runs jobs in parallel. What this machine allows is probed
once into ``NETWORK_ISOLATION``, ``MOUNT_ISOLATION``, ``PRIVILEGE_DROP`` (``None``
before the first run). Guarantees and limits: ``rewards/SANDBOX.md``.

Example:
    >>> r = run_python("print(int(input()) * 2)", stdin="21")
    >>> r.status, r.stdout
    ('ok', '42\\n')
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import namedtuple
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

OUTPUT_LIMIT = 64 * 1024
UID_BASE = 2_000_000_000  # dedicated uids (no passwd entry): every process of one is ours
_SLOTS, _RANGES = 4096, 1024  # uids per locked range, ranges: all below 2**31
CHILD_PATH = "/usr/bin:/bin"
_GRACE = 0.1  # seconds to drain output after the main process exited
_SHARED_DIRS = ("/var/tmp", "/run/lock", "/dev/shm", "/tmp")  # /tmp last: it becomes cwd
_CLONE_NEWNS, _CLONE_NEWIPC, _CLONE_NEWNET = 0x00020000, 0x08000000, 0x40000000
_MS_BIND, _MS_REC, _MS_PRIVATE = 0x1000, 0x4000, 0x40000
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS = 1, 38

NETWORK_ISOLATION: bool | None = None
MOUNT_ISOLATION: bool | None = None
PRIVILEGE_DROP: bool | None = None


@dataclass(frozen=True)
class SandboxResult:
    """One run: ``status`` in ok/error/timeout; ``returncode`` < 0 for a signal (-9 after a
    timeout), ``None`` if it never started; capped, decoded output; wall ``duration`` (s)."""

    status: str
    returncode: int | None
    stdout: str
    stderr: str
    duration: float
    truncated: bool = False


@dataclass(frozen=True)
class Isolation:
    """What the sandbox enforces on this machine (see :func:`isolation`)."""

    network: bool
    mounts: bool
    drop_privileges: bool
    python: str


_Limits = namedtuple("_Limits", "timeout memory_mb max_procs file_size_mb max_files")


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _make_preexec(iso: Isolation, uid: int | None, limits: _Limits) -> Any:
    """The function run in the child between fork and exec; everything is prepared here."""
    libc, parent = ctypes.CDLL(None, use_errno=True), os.getpid()
    flags = _CLONE_NEWNET if iso.network else 0
    flags |= _CLONE_NEWNS | _CLONE_NEWIPC if iso.mounts else 0
    targets = [d.encode() for d in _SHARED_DIRS if os.path.isdir(d)] if iso.mounts else []
    nproc = limits.max_procs  # without a uid of its own, the parent's processes count too
    nproc += 0 if uid is not None else _live_count(os.getuid(), _scan_procs())
    cpu = int(limits.timeout) + 2
    wanted = [(resource.RLIMIT_CPU, cpu, cpu + 1), (resource.RLIMIT_NPROC, nproc, nproc),
              (resource.RLIMIT_FSIZE, limits.file_size_mb << 20, limits.file_size_mb << 20),
              (resource.RLIMIT_NOFILE, limits.max_files, limits.max_files),
              (resource.RLIMIT_CORE, 0, 0),  # address space last: the parent may be far above it
              (resource.RLIMIT_AS, limits.memory_mb << 20, limits.memory_mb << 20)]
    rlimits = []  # never above the parent's hard limits (raising them fails once unprivileged)
    for res, soft, hard in wanted:
        cap = resource.getrlimit(res)[1]
        hard = hard if cap == resource.RLIM_INFINITY else min(hard, cap)
        rlimits.append((res, (min(soft, hard), hard)))

    def preexec() -> None:
        if flags:
            _check(libc.unshare(flags), "unshare")
        if targets:
            _check(libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "mount private")
            for target in targets:  # "." is the run's directory: Popen chdir'ed before this
                _check(libc.mount(b".", target, None, _MS_BIND, None), "bind mount")
            if b"/tmp" in targets:
                os.chdir("/tmp")
        if uid is not None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        _check(libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")
        if os.getppid() != parent:  # the parent died before PDEATHSIG was armed
            os._exit(1)
        for res, value in rlimits:  # last, so no allocation happens under RLIMIT_AS
            resource.setrlimit(res, value)

    return preexec


def _scan_procs() -> dict[int, list[bool]]:
    """Each uid (real, effective or saved) with processes -> one ``is_zombie`` per process."""
    found: dict[int, list[bool]] = {}
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/status", "rb") as f:
                fields = dict(ln.split(b":", 1) for ln in f.read(4096).splitlines() if b":" in ln)
        except OSError:  # not a process, or it just ended
            continue
        zombie = fields.get(b"State", b"").strip().startswith(b"Z")
        for uid in set(fields.get(b"Uid", b"").split()[:3]):
            found.setdefault(int(uid), []).append(zombie)
    return found


def _live_count(uid: int, procs: dict[int, list[bool]]) -> int:
    return sum(1 for zombie in procs.get(uid, ()) if not zombie)


def _kill_uid(uid: int, attempts: int = 20) -> dict[int, list[bool]] | None:
    """SIGKILL every process of ``uid`` (``kill(-1)`` run as that uid, atomic against forks).

    Returns the last process scan once no live process of ``uid`` is left, else ``None``.
    """
    killer = shutil.which("kill", path=CHILD_PATH)
    argvs = [[killer, "-9", "-1"]] if killer else []
    if _ISOLATION is not None:  # fallback: an interpreter known to run as the sandbox uid
        argvs.append([_ISOLATION.python, "-I", "-S", "-c", "import os; os.kill(-1, 9)"])
    for attempt in range(attempts):
        procs = _scan_procs()
        if not _live_count(uid, procs) or not argvs:
            break
        try:
            subprocess.run(argvs[attempt % len(argvs)], check=False, user=uid, group=uid,
                           extra_groups=[], env={}, cwd="/", timeout=10,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError) as exc:
            log.debug("killer for uid %d failed: %s", uid, exc)
        time.sleep(0.005)
    else:
        procs = _scan_procs()
    return None if _live_count(uid, procs) else procs


class _UidPool:
    """Dedicated uids for concurrent runs, from a range this process holds (``flock``), so
    ranks never kill each other's runs. A uid is reused once it has no process at all:
    killed orphans stay zombies until init reaps them (~2 s here) and count against
    ``RLIMIT_NPROC``, so those uids cool down first.
    """

    def __init__(self) -> None:
        self._pid, self._lock = -1, threading.Lock()

    def _claim(self) -> None:  # (again) in a new process: ranges are per process
        self._pid, self._next, self._free, self._cooling = os.getpid(), 0, [], []
        lock_dir = "/run/lock" if os.path.isdir("/run/lock") else tempfile.gettempdir()
        for k in range(_RANGES):
            path = os.path.join(lock_dir, f"rlft-sandbox-{k}.lock")
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            except OSError:  # e.g. someone else's file in a sticky directory
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            self._fd, self.base = fd, UID_BASE + k * _SLOTS  # held until this process exits
            return
        raise RuntimeError("sandbox: every uid range is locked by another process")

    def acquire(self) -> int:
        while True:
            with self._lock:
                if self._pid != os.getpid():
                    self._claim()
                if not self._free and self._cooling:
                    procs = _scan_procs()
                    self._free = [u for u in self._cooling if u not in procs]
                    self._cooling = [u for u in self._cooling if u in procs]
                if self._free:
                    return self._free.pop()
                uid, self._next = self.base + self._next, min(self._next + 1, _SLOTS)
            if uid >= self.base + _SLOTS:
                time.sleep(0.05)  # every uid of the range is busy or cooling down
                continue
            procs = _kill_uid(uid)  # leftovers of an earlier process: skip the uid
            if procs is not None and uid not in procs:
                return uid

    def release(self, uid: int) -> None:
        procs = _kill_uid(uid)
        if procs is None:
            log.warning("sandbox uid %d still has live processes; retiring it", uid)
            return
        with self._lock:
            (self._cooling if uid in procs else self._free).append(uid)


_POOL = _UidPool()
_ISOLATION: Isolation | None = None
_ISOLATION_LOCK = threading.Lock()


def _exited(pid: int) -> bool:
    """Whether ``pid`` exited, without reaping it (its pid and process group stay reserved)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # Python or kernel too old: poll instead
        return None


class _Pump:
    """Feeds stdin and drains stdout/stderr through one selector; never blocks on a pipe."""

    def __init__(self, proc: subprocess.Popen, data: bytes, limit: int) -> None:
        self.proc, self.data, self.pos, self.limit, self.truncated = proc, data, 0, limit, False
        self.bufs = {proc.stdout: bytearray(), proc.stderr: bytearray()}
        self.sel = selectors.DefaultSelector()
        for stream in self.bufs:
            self.sel.register(stream, selectors.EVENT_READ)
        if data:
            os.set_blocking(proc.stdin.fileno(), False)
            self.sel.register(proc.stdin, selectors.EVENT_WRITE)
        else:
            proc.stdin.close()
        self.pidfd = _pidfd(proc.pid)
        if self.pidfd is not None:
            self.sel.register(self.pidfd, selectors.EVENT_READ)

    def reading(self) -> bool:
        return any(key.fileobj in self.bufs for key in self.sel.get_map().values())

    def step(self, wait: float) -> None:
        for key, _ in self.sel.select(max(wait, 0.0)):
            if key.fileobj == self.pidfd:
                self.sel.unregister(self.pidfd)  # the exit itself is seen by _exited()
            elif key.fileobj is self.proc.stdin:
                try:
                    self.pos += os.write(key.fd, self.data[self.pos:self.pos + 65536])
                except BlockingIOError:
                    continue
                except BrokenPipeError:
                    self.pos = len(self.data)
                if self.pos >= len(self.data):
                    self.sel.unregister(self.proc.stdin)
                    self.proc.stdin.close()
            else:
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    self.sel.unregister(key.fileobj)
                buf = self.bufs[key.fileobj]
                room = max(self.limit - len(buf), 0)
                self.truncated = self.truncated or len(chunk) > room
                buf += chunk[:room]  # past the cap: keep draining, discard

    def run(self, deadline: float) -> bool:
        """I/O until EOF after exit, ``_GRACE`` after exit, or the deadline; True on timeout."""
        exited_at = None
        try:
            while True:
                now = time.monotonic()
                if exited_at is None and _exited(self.proc.pid):
                    exited_at = now
                if exited_at is not None and not self.reading():
                    break
                end = deadline if exited_at is None else min(deadline, exited_at + _GRACE)
                if now >= end:
                    break
                poll = exited_at is None and self.pidfd is None
                self.step(min(end - now, 0.05) if poll else end - now)
        finally:
            self.sel.close()
            if self.pidfd is not None:
                os.close(self.pidfd)
        return exited_at is None

    def output(self, stream: Any) -> str:
        return bytes(self.bufs[stream]).decode("utf-8", "replace")


def _spawn(argv: list[str], workdir: str, home: str, preexec: Any) -> subprocess.Popen:
    env = {"PATH": CHILD_PATH, "LANG": "C.UTF-8", "HOME": home, "TMPDIR": home,
           "PYTHONDONTWRITEBYTECODE": "1"}
    # preexec only makes syscalls (no locks, imports or logging): safe beside threads.
    return subprocess.Popen(argv, cwd=workdir, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, close_fds=True,
                            preexec_fn=preexec)  # noqa: PLW1509


def _prepare(workdir: str, files: dict[str, str], uid: int | None) -> None:
    for name, text in files.items():
        with open(os.path.join(workdir, name), "w", encoding="utf-8") as f:
            f.write(text)
    if uid is not None:
        for name in [*files, "."]:
            os.chown(os.path.join(workdir, name), uid, uid)


def _execute(argv: list[str], files: dict[str, str], stdin: bytes, limits: _Limits,
             iso: Isolation, output_limit: int, probe: bool = False) -> SandboxResult:
    """Run ``argv`` in a fresh directory holding ``files``, under ``iso`` and ``limits``."""
    uid = _POOL.acquire() if iso.drop_privileges else None
    workdir, start = tempfile.mkdtemp(prefix="rlft_sbx_"), time.monotonic()
    try:
        _prepare(workdir, files, uid)
        home = "/tmp" if iso.mounts and os.path.isdir("/tmp") else workdir
        try:
            proc = _spawn(argv, workdir, home, _make_preexec(iso, uid, limits))
        except (OSError, subprocess.SubprocessError) as exc:
            log.log(logging.DEBUG if probe else logging.WARNING,
                    "sandbox could not start %s: %s", argv[0], exc)
            return SandboxResult("error", None, "", f"sandbox: could not start: {exc}",
                                 time.monotonic() - start)
        try:
            pump = _Pump(proc, stdin, output_limit)
            timed_out = pump.run(start + limits.timeout)
            duration = time.monotonic() - start
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # pgid == pid, not yet reaped
            proc.wait()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                stream.close()
        rc = proc.returncode
        status = "timeout" if timed_out or rc == -signal.SIGXCPU else "ok" if rc == 0 else "error"
        return SandboxResult(status, rc, pump.output(proc.stdout), pump.output(proc.stderr),
                             duration, pump.truncated)
    finally:
        if uid is not None:
            _POOL.release(uid)  # kills what is left of the uid (also setsid escapees)
        shutil.rmtree(workdir, ignore_errors=True)


def _probe(argv: list[str], iso: Isolation) -> bool:
    limits = _Limits(timeout=10.0, memory_mb=1024, max_procs=16, file_size_mb=1, max_files=64)
    return _execute(argv, {}, b"", limits, iso, 4096, probe=True).status == "ok"


def isolation() -> Isolation:
    """Probe (once, cached) what this machine allows, set the module flags, return it.

    The interpreter is the first of ``sys.executable`` (and its real path) and the
    system ``python3`` that runs as the sandbox uid (a venv under ``/root`` does not).

    Example:
        >>> from rewards import sandbox
        >>> sandbox.isolation().network == sandbox.NETWORK_ISOLATION
        True
    """
    global _ISOLATION, NETWORK_ISOLATION, MOUNT_ISOLATION, PRIVILEGE_DROP
    with _ISOLATION_LOCK:
        if _ISOLATION is not None:
            return _ISOLATION
        true = shutil.which("true", path=CHILD_PATH)
        true = [true] if true else [sys.executable, "-I", "-c", "pass"]
        net = _probe(true, Isolation(True, False, False, sys.executable))
        mounts = _probe(true, Isolation(net, True, False, sys.executable))
        iso = Isolation(net, mounts, False, sys.executable)
        names = [sys.executable, os.path.realpath(sys.executable),
                 getattr(sys, "_base_executable", ""), shutil.which("python3", path=CHILD_PATH)]
        for python in dict.fromkeys(n for n in names if n and os.path.isfile(n)):
            if os.geteuid() == 0 and _probe([python, "-I", "-c", "pass"],
                                            Isolation(net, mounts, True, python)):
                iso = Isolation(net, mounts, True, python)
                break
        checks = {"network isolation": net, "mount isolation": mounts,
                  "privilege drop (RLIMIT_NPROC, write protection)": iso.drop_privileges}
        for name in (name for name, ok in checks.items() if not ok):
            log.warning("sandbox: %s is unavailable on this machine", name)
        NETWORK_ISOLATION, MOUNT_ISOLATION, PRIVILEGE_DROP = net, mounts, iso.drop_privileges
        _ISOLATION = iso
        return iso


def run_python(code: str, stdin: str = "", timeout: float = 5.0, memory_mb: int = 1024, *,
               max_procs: int = 16, file_size_mb: int = 10, max_files: int = 256,
               output_limit: int = OUTPUT_LIMIT, python: str | None = None) -> SandboxResult:
    """Run ``code`` as ``main.py`` in a fresh sandbox with ``stdin``; never raises for bad code.

    ``timeout``: wall seconds for the whole run (CPU is capped at about ``timeout + 2``
    s per process); ``memory_mb``: address space per process; ``max_procs``: processes
    and threads of the run (enforced when privileges are dropped); ``file_size_mb``:
    largest file written; ``output_limit``: bytes kept of stdout and of stderr.

    Example:
        >>> run_python("while True: pass", timeout=0.5).status
        'timeout'
    """
    iso = isolation()
    argv = [python or iso.python, "-I", "-B", "main.py"]
    limits = _Limits(timeout, memory_mb, max_procs, file_size_mb, max_files)
    return _execute(argv, {"main.py": code}, stdin.encode("utf-8"), limits, iso, output_limit)


def run_many(jobs: Sequence[dict[str, Any] | str],
             max_workers: int | None = None) -> list[SandboxResult]:
    """Run jobs in parallel (threads, each waiting on a subprocess); results in input order.

    A job is a code string or a dict of :func:`run_python` keyword arguments;
    ``max_workers`` defaults to ``os.cpu_count()``.

    Example:
        >>> [r.stdout for r in run_many(["print(1)", {"code": "print(input())", "stdin": "2"}])]
        ['1\\n', '2\\n']
    """
    kwargs = [{"code": job} if isinstance(job, str) else dict(job) for job in jobs]
    workers = max(1, min(max_workers or os.cpu_count() or 1, len(kwargs)))
    isolation()  # probe once, before threads race for it
    if workers == 1:
        return [run_python(**kw) for kw in kwargs]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rlft-sandbox") as pool:
        return list(pool.map(lambda kw: run_python(**kw), kwargs))
