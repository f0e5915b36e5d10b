"""The README's custom-reward example and its test run as written."""

from __future__ import annotations

import re

from tests.conftest import REPO, run_cmd


def readme_examples() -> dict[str, str]:
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"<!-- readme-example: (\S+) -->\n```python\n(.*?)```", text, re.DOTALL)
    return dict(blocks)


def test_custom_reward_example_passes_its_own_test(tmp_path):
    examples = readme_examples()
    assert set(examples) == {"my_rewards.py", "test_my_rewards.py"}
    for name, code in examples.items():
        (tmp_path / name).write_text(code)
    result = run_cmd(["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                      str(tmp_path / "test_my_rewards.py")], env={"PYTHONPATH": str(tmp_path)}, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "1 passed" in result.stdout


def test_readme_quick_start_is_two_commands():
    text = (REPO / "README.md").read_text()
    quick = text.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^(make \w+)", quick, re.MULTILINE)
    assert commands == ["make demo", "make test"]
