"""The README cannot lie: its Python example runs, and CI runs its test command."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_python_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert blocks, "README.md has no python example"
    for block in blocks:
        namespace: dict = {}
        exec(compile(block, "README.md", "exec"), namespace)
        # The example clips a gradient of norm sqrt(12) at 1.0 and says so.
        assert bool(namespace["state"][0].clipped)


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second():
    first_block = README.split("```")[1].strip().splitlines()
    commands = [line for line in first_block[1:] if line.strip()]
    assert len(commands) == 2
    assert commands[0].endswith("jtricks demo")
    assert "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "README.md" in ci and "pytest" in ci
