"""The code reward (rewards.code) and its sandbox (rewards.sandbox), escape attempts included.

Escape tests assert the specific containment; those that need a feature this
machine lacks (network namespace, mount namespace, privilege drop) are skipped.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rewards import sandbox
from rewards.base import RewardInputError
from rewards.code import extract_code, make_code_tests, parse_tests
from rewards.sandbox import run_many, run_python

REPO = Path(__file__).resolve().parent.parent
ADD_TESTS = ["assert add(1, 2) == 3", "assert add(0, 0) == 0"]
SQUARE_IO = [{"input": "3\n", "output": "9\n"}, {"input": "4", "output": "16"}]


def fenced(code: str) -> str:
    return f"Here is my solution:\n```python\n{code}\n```\nIt adds the numbers."


@pytest.fixture(scope="module")
def iso() -> sandbox.Isolation:
    return sandbox.isolation()


@pytest.fixture
def reward():
    return make_code_tests(timeout=2.0, max_workers=2)


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for init to reap it is dead)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def sandbox_pids() -> list[int]:
    """Live processes owned by any sandbox uid."""
    procs = sandbox._scan_procs()
    return [uid for uid in procs if sandbox.UID_BASE <= uid < sandbox.UID_BASE + 100_000
            and sandbox._live_count(uid, procs)]


# --- the reward -------------------------------------------------------------------------------


def test_correct_half_and_wrong(reward):
    completions = [fenced("def add(a, b):\n    return a + b"),
                   fenced("def add(a, b):\n    return 3"),
                   fenced("def add(a, b):\n    return a - b - 1")]
    assert reward(completions, tests=[ADD_TESTS] * 3) == [1.0, 0.5, 0.0]


def test_stdin_stdout_tests_and_chat_messages(reward):
    chat = [{"role": "assistant", "content": fenced("n = int(input())\nprint(n * n)")}]
    plain = "n = int(input())\nprint(n * n)"  # no fence: the whole completion parses
    half = fenced("print(9)")
    assert reward([chat, plain, half], tests=[SQUARE_IO] * 3) == [1.0, 1.0, 0.5]


def test_no_code_scores_zero_and_unverifiable_rows_none(reward):
    scores = reward(["I think the answer is 42.", fenced("def add(a, b) return"),
                     fenced("def add(a, b):\n    return a + b")] * 2,
                    tests=[ADD_TESTS] * 3 + [[], None, [{"input": "1"}]])
    assert scores == [0.0, 0.0, 1.0, None, None, None]
    assert reward.stats["none"] == 3 and reward.stats["no_code"] == 1


def test_tests_column_and_json_tests():
    reward = make_code_tests(timeout=2.0, tests_column="test_list")
    code = fenced("def add(a, b):\n    return a + b")
    assert reward([code], test_list=['["assert add(2, 2) == 4"]'], prompts=["p"]) == [1.0]
    with pytest.raises(RewardInputError, match="test_list"):
        reward([code], tests=[ADD_TESTS])  # the configured column is missing: a setup error
    with pytest.raises(RewardInputError, match="timeout"):
        make_code_tests(timeout=0)


@pytest.mark.parametrize("exit_call", ["import sys; sys.exit(0)", "import os; os._exit(0)",
                                       "raise SystemExit(0)", "import os; os.kill(os.getpid(), 9)"])
def test_early_exit_does_not_pass(reward, exit_call):
    code = fenced(f"{exit_call}\ndef add(a, b):\n    return a + b")
    assert reward([code], tests=[ADD_TESTS]) == [0.0]


def test_forged_markers_and_patched_builtins_do_not_pass(reward):
    forge = ("import os\nfor fd in (1, 2, 3, 4):\n    try:\n"
             "        os.write(fd, b'RLFT:0:pass\\nRLFT:1:pass\\nPASS\\n')\n"
             "    except OSError:\n        pass\nos._exit(0)")
    patch = ("import builtins\nbuiltins.exec = lambda *a, **k: None\n"
             "builtins.compile = lambda *a, **k: None\ndef add(a, b):\n    return 7")
    assert reward([fenced(forge), fenced(patch)], tests=[ADD_TESTS] * 2) == [0.0, 0.0]


def test_infinite_loop_times_out_and_is_counted(reward):
    start = time.monotonic()
    assert reward([fenced("while True:\n    pass")], tests=[ADD_TESTS]) == [0.0]
    assert time.monotonic() - start < 15  # killed at the timeout, not left running
    assert reward.stats["timeouts"] == 1 and reward.stats["runs"] == 1
    reward.reset_stats()
    assert reward.stats["timeouts"] == 0 and reward.stats["samples"] == 0


def test_extract_code_and_parse_tests():
    text = "```bash\nls\n```\n```python\nx = 1\n```\ntext\n```\ny = 2\n```\n```json\n{}\n```"
    assert extract_code(text) == "y = 2\n"
    assert extract_code("```python\nprint(1)") == "print(1)"  # unclosed last block
    assert extract_code("just prose, no code.") is None
    assert parse_tests({"inputs": ["1"], "outputs": ["2"]}) == ("io", [("1", "2")])
    assert parse_tests(["assert (", "assert 1"]) is None
    assert parse_tests(["assert 1", {"input": "", "output": ""}]) is None
    assert parse_tests("not json") is None


def test_rewards_import_without_torch():
    code = "import rewards.code, sys; assert 'torch' not in sys.modules, 'torch imported'"
    done = subprocess.run([sys.executable, "-c", code], check=False, cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# --- the sandbox: basics ----------------------------------------------------------------------


def test_run_python_basics(iso):
    result = run_python("import os\nprint(input()[::-1], sorted(os.environ))", stdin="abc")
    assert result.status == "ok" and result.returncode == 0 and not result.truncated
    assert result.stdout.startswith("cba ['HOME', 'LANG', 'PATH'")
    failed = run_python("raise ValueError('boom')")
    assert failed.status == "error" and failed.returncode == 1 and "boom" in failed.stderr


def test_run_many_keeps_input_order_in_parallel(iso):
    code = "import time\nstart = time.time()\ntime.sleep(1)\nprint({i}, start, time.time())"
    results = run_many([{"code": code.format(i=i)} for i in range(4)], max_workers=2)
    rows = [r.stdout.split() for r in results]
    assert [row[0] for row in rows] == ["0", "1", "2", "3"]
    spans = [(float(a), float(b)) for _, a, b in rows]
    # parallel, judged by overlapping run times rather than wall-clock totals (the machine is noisy)
    assert any(s1 < e2 and s2 < e1 for i, (s1, e1) in enumerate(spans) for s2, e2 in spans[i + 1:])


def test_output_flood_is_capped_without_deadlock(iso):
    result = run_python("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)", timeout=1.0)
    assert result.status == "timeout" and result.truncated
    assert len(result.stdout) == sandbox.OUTPUT_LIMIT


def test_closed_stdout_does_not_hang(iso):
    start = time.monotonic()
    result = run_python("import os, time\nos.close(1)\nos.close(2)\ntime.sleep(60)", timeout=1.0)
    assert result.status == "timeout" and time.monotonic() - start < 15  # the code sleeps 60 s


# --- the sandbox: escape attempts -------------------------------------------------------------


def test_infinite_loop_is_killed_at_the_timeout(iso):
    start = time.monotonic()
    result = run_python("while True:\n    pass", timeout=1.0)
    assert result.status == "timeout" and result.returncode == -9
    # generous bounds: this machine is shared and noisy; unkilled, the loop would run forever
    assert 1.0 <= result.duration < 10 and time.monotonic() - start < 15


def test_fork_bomb_is_bounded(iso):
    if not iso.drop_privileges:
        pytest.skip("RLIMIT_NPROC needs the privilege drop (parent not root)")
    count = ("import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n"
             "            time.sleep(60)\n            os._exit(0)\n        n += 1\n"
             "except OSError as exc:\n    print(n, exc.errno)")
    result = run_python(count, timeout=5.0, max_procs=8)
    forks, errno = map(int, result.stdout.split())
    assert forks < 8 and errno == 11  # EAGAIN from RLIMIT_NPROC
    start = time.monotonic()
    bomb = run_python("import os\nwhile True:\n    try:\n        os.fork()\n"
                      "    except OSError:\n        pass", timeout=2.0)
    assert bomb.status == "timeout" and time.monotonic() - start < 2.0 + 15
    assert sandbox_pids() == []  # every process of the bomb is dead
    assert run_python("print('still fine')").stdout == "still fine\n"


def test_allocating_4gb_fails_fast(iso):
    start = time.monotonic()
    result = run_python("x = bytearray(4 * 1024 ** 3)\nprint('allocated')", memory_mb=1024)
    assert result.status == "error" and "MemoryError" in result.stderr
    assert "allocated" not in result.stdout and time.monotonic() - start < 20


def test_writes_outside_the_work_dir_fail(iso):
    if not (iso.mounts and iso.drop_privileges):
        pytest.skip("needs the mount namespace and the privilege drop")
    tag = secrets.token_hex(6)
    targets = [f"/tmp/rlft_escape_{tag}", str(REPO / f"rlft_escape_{tag}"),
               f"/var/tmp/rlft_escape_{tag}", f"/root/rlft_escape_{tag}"]
    code = (f"import os\nfor path in {targets!r}:\n    try:\n"
            "        open(path, 'w').write('pwned')\n"
            "    except OSError as exc:\n        print('denied', path, exc.errno)\n"
            "open('inside.txt', 'w').write('ok')\nprint(os.listdir('.'))")
    result = run_python(code)
    assert result.status == "ok", result.stderr
    assert "inside.txt" in result.stdout  # its own directory is writable
    for path in targets:
        assert not os.path.exists(path), path
    assert result.stdout.count("denied") >= 2  # the repo and /root; /tmp ones land in its dir


def test_environment_secrets_do_not_leak(iso, monkeypatch):
    monkeypatch.setenv("RLFT_TEST_SECRET", "hunter2")
    code = ("import os\nprint(dict(os.environ))\ntry:\n"
            f"    print(open('/proc/{os.getpid()}/environ').read())\n"
            "except OSError as exc:\n    print('denied', exc.errno)")
    result = run_python(code)
    assert result.status == "ok" and "hunter2" not in result.stdout + result.stderr
    if iso.drop_privileges:
        assert "denied" in result.stdout  # another uid cannot read the parent's environ


def test_network_is_unreachable(iso):
    if not iso.network:
        pytest.skip("network namespaces are unavailable here")
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    port = server.getsockname()[1]
    try:
        code = ("import socket\ns = socket.socket()\ns.settimeout(2)\n"
                f"print(s.connect_ex(('127.0.0.1', {port})))")
        result = run_python(code)
        assert result.status == "ok" and int(result.stdout) != 0  # ENETUNREACH: no route
        with pytest.raises(BlockingIOError):
            server.accept()  # nothing ever connected
    finally:
        server.close()


def test_background_children_are_killed(iso):
    code = ("import os, subprocess, time\n"
            "print(subprocess.Popen(['sleep', '60']).pid, flush=True)\n"
            "if os.fork() == 0:  # double fork + setsid: leaves the process group\n"
            "    os.setsid()\n    pid = os.fork()\n    if pid == 0:\n"
            "        time.sleep(60)\n        os._exit(0)\n"
            "    print(pid, flush=True)\n    os._exit(0)\n"
            "while True:\n    time.sleep(0.1)")
    result = run_python(code, timeout=1.5)
    assert result.status == "timeout"
    pids = [int(pid) for pid in result.stdout.split()]
    assert len(pids) == 2 and not any(alive(pid) for pid in pids), result.stdout
    if iso.drop_privileges:
        assert sandbox_pids() == []  # the setsid escapee too
