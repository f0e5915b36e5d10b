"""The README's front door holds: the two commands first, every command parses, the reward example passes."""

from __future__ import annotations

import importlib
import re
import shlex

import pytest

from tests.conftest import REPO, run_cmd

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def readme_examples() -> dict[str, str]:
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"<!-- readme-example: (\S+) -->\n```python\n(.*?)```", text, re.DOTALL)
    return dict(blocks)


def shell_commands(path) -> list[str]:
    """Every command line in the file's ```bash blocks, comments dropped, backslash continuations joined."""
    blocks = re.findall(r"```bash\n(.*?)```", path.read_text(), re.DOTALL)
    blocks = [block.replace("\\\n", " ") for block in blocks]
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_custom_reward_example_passes_its_own_test(tmp_path):
    examples = readme_examples()
    assert set(examples) == {"my_rewards.py", "test_my_rewards.py"}
    for name, code in examples.items():
        (tmp_path / name).write_text(code)
    result = run_cmd(["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                      str(tmp_path / "test_my_rewards.py")], env={"PYTHONPATH": str(tmp_path)}, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "1 passed" in result.stdout


def test_the_two_commands_are_the_first_commands_shown():
    text = (REPO / "README.md").read_text()
    first_block = re.search(r"```(\w*)\n(.*?)```", text, re.DOTALL)
    assert first_block.group(1) == "bash"
    commands = [line.split("#")[0].strip() for line in first_block.group(2).splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
    assert text.index("## Quick start") < text.index("```bash")


def test_the_front_door_shows_the_current_result_and_links_the_docs():
    text = (REPO / "README.md").read_text()
    front = text.split("## Run a stage", 1)[0]
    interval = r"\[\d+\.\d, \d+\.\d\]"
    assert re.search(rf"^base\s+\d+\.\d%\s+{interval}\s+-\s.*\s200$", front, re.MULTILINE), \
        "the table `make demo` prints, as printed"
    assert re.search(rf"^trained\s+\d+\.\d%\s+{interval}\s+[+-]\d+\.\d \[[+-]\d+\.\d, [+-]\d+\.\d\].*\s200$", front,
                     re.MULTILINE)
    for link in re.findall(r"\]\((docs/[\w.]+\.md)", front):
        assert (REPO / link).is_file(), link
    assert {"docs/stages.md", "docs/rewards.md", "docs/evaluation.md", "docs/benchmarks.md",
            "docs/recipes.md", "docs/architecture.md"} <= set(re.findall(r"\]\((docs/[\w.]+\.md)", front))


def make_targets() -> set[str]:
    return set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.MULTILINE))


def module_and_args(command: str) -> tuple[str, list[str]] | None:
    """The rlft module a documented command runs and its arguments (``None``: not an rlft command)."""
    from rlft.stage import registry

    words = shlex.split(command)
    if words[:2] == ["accelerate", "launch"]:
        words = words[2:]
        while words and words[0].startswith("--"):  # launcher options: --config_file launch/zero2.yaml
            if words[0] == "--config_file":
                assert (REPO / words[1]).is_file(), f"{command}: no {words[1]}"
            words = words[2:]
        script = re.fullmatch(r"rlft/(\w+)\.py", words[0])
        assert script, f"{command}: accelerate launch runs an entry script rlft/<stage>.py"
        return f"rlft.{script.group(1)}", words[1:]
    if words[:2] == ["python", "-m"] and words[2].startswith("rlft."):
        return words[2], words[3:]
    if words[0] == "rlft":
        assert words[1] in registry.names(), f"{command}: `rlft {words[1]}` is not a command"
        return registry.get(words[1]).module, words[2:]
    return None


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_documented_command_parses(doc):
    from rlft.core.runtime import log_deferred_warnings

    commands = shell_commands(doc)
    for command in commands:
        if command.startswith("make "):
            assert command.split()[1] in make_targets(), f"{doc.name}: {command}: no such make target"
            continue
        found = module_and_args(command)
        if found is None:
            continue
        name, args = found
        module = importlib.import_module(name.partition(":")[0])
        if not hasattr(module, "parse"):  # argparse commands (merge, ab): the module and its main exist
            assert hasattr(module, name.partition(":")[2] or "main"), command
            continue
        try:
            module.parse(args)
        except SystemExit as done:  # --help
            assert done.code == 0, command
    log_deferred_warnings()  # parsing queues precision notes; later tests count their own
    assert commands or doc.name in ("architecture.md", "experiments.md", "recipes.md")
