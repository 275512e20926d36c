"""The README's two set-up commands: CI runs the test one verbatim; the demo one works."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "README must open with a ```bash block of the two set-up commands"
    lines = [ln.strip() for ln in block.group(1).strip().splitlines()]
    assert len(lines) == 2, lines
    first_code = text.index("```")
    assert text[:first_code].strip().startswith("# bayesimg"), "the commands come first"
    return lines


def test_readme_opens_with_two_commands():
    demo, tests = _readme_commands()
    assert demo.endswith("bayesimg demo")
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command():
    _, tests = _readme_commands()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in [ln.strip() for ln in ci], ".ci/run must run the README's test command"
