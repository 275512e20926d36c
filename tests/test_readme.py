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


def _finder():
    import importlib.util
    spec = importlib.util.spec_from_file_location("python312", ROOT / "scripts" / "python312.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_python_finder_runs_a_new_enough_python():
    import subprocess
    import sys
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "python312.py"), "-c",
                          "import sys; print(sys.version_info >= (3, 12))"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_python_finder_skips_old_and_broken_interpreters(monkeypatch, tmp_path, capsys):
    finder = _finder()
    broken = tmp_path / "python3.12"          # a pyenv-style shim that refuses to run
    broken.write_text("#!/bin/sh\necho 'pyenv: python3.12: command not found' >&2\nexit 127\n")
    broken.chmod(0o755)
    monkeypatch.setattr(finder, "candidates", lambda: iter([[str(broken)]]))
    assert finder.find() is None
    assert finder.main(["-c", "pass"]) == 1
    err = capsys.readouterr().err
    assert "Python >= 3.12" in err and "BAYESIMG_PYTHON" in err


def test_ci_and_readme_use_the_finder():
    demo, tests = _readme_commands()
    assert demo.startswith("python3 scripts/python312.py -m venv .venv")
    assert tests.startswith("python3 scripts/python312.py -m venv .venv")


def test_licence_names_every_bundled_data_folder_and_package_is_typed():
    text = (ROOT / "LICENSE").read_text()
    assert "BSD 3-Clause" in text
    datasets = ROOT / "bayesimg" / "data" / "datasets"
    for folder in (p for p in datasets.iterdir() if p.is_dir()):
        assert f"bayesimg/data/datasets/{folder.name}/" in text, folder.name
        assert (folder / "SOURCE.md").exists(), folder.name
    assert (ROOT / "bayesimg" / "py.typed").exists()
