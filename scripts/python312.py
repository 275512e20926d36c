"""Run the newest Python >= 3.12 found on this machine with the given arguments.

    python3 scripts/python312.py -m venv .venv

bayesimg needs Python >= 3.12 (ArviZ 1.x, JAX >= 0.11.1), but ``python3`` is often older
(e.g. a pyenv default of 3.11 while 3.12 is installed beside it).  This script runs under
any Python 3 and looks, in order, at: $BAYESIMG_PYTHON; the Python running it;
python3.N / python3 / python on PATH (pyenv shims that refuse are skipped); every pyenv
version; uv-managed Pythons; the Windows ``py`` launcher; common install folders.  It
then runs the first one >= 3.12 (newest first among versioned names) with the arguments,
or says clearly that none exists and how to get one.  Kept compatible with Python 3.6+.
"""

import glob
import os
import shutil
import subprocess
import sys

MIN = (3, 12)
MINORS = range(20, MIN[1] - 1, -1)  # 3.20 ... 3.12, newest first


def version_of(command):
    """(major, minor) of the interpreter run by ``command`` (a list), or None."""
    try:
        out = subprocess.run(command + ["-c", "import sys; print('%d %d' % sys.version_info[:2])"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=30,
                             universal_newlines=True)  # noqa: UP021 - runs on 3.6
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    try:
        major, minor = (int(x) for x in out.stdout.split())
    except ValueError:
        return None
    return major, minor


def candidates():
    env = os.environ.get("BAYESIMG_PYTHON")
    if env:
        yield [env]
    yield [sys.executable]
    for name in [f"python3.{m}" for m in MINORS] + ["python3", "python"]:
        path = shutil.which(name)
        if path:
            yield [path]
    roots = [os.environ.get("PYENV_ROOT", ""), os.path.expanduser("~/.pyenv")]
    for root in filter(None, roots):
        found = glob.glob(os.path.join(root, "versions", "3.*", "bin", "python3"))
        found += glob.glob(os.path.join(root, "versions", "3.*", "python.exe"))
        for path in sorted(found, key=_version_key, reverse=True):
            yield [path]
    for pattern in ("~/.local/share/uv/python/cpython-3.*/bin/python3",
                    "~/AppData/Roaming/uv/python/cpython-3.*/python.exe"):
        for path in sorted(glob.glob(os.path.expanduser(pattern)), key=_version_key,
                           reverse=True):
            yield [path]
    launcher = shutil.which("py")
    if launcher:
        for m in MINORS:
            yield [launcher, f"-3.{m}"]
    for folder in ("/usr/local/bin", "/opt/homebrew/bin", "/usr/bin", "/opt/local/bin"):
        for m in MINORS:
            path = os.path.join(folder, f"python3.{m}")
            if os.access(path, os.X_OK):
                yield [path]


def _version_key(path):
    digits = []
    for part in path.replace("\\", "/").split("/"):
        if part[:1].isdigit() or part.startswith("cpython-"):
            for piece in part.replace("cpython-", "").split("-")[0].split("."):
                digits.append(int(piece) if piece.isdigit() else 0)
            break
    return digits


def find():
    seen = set()
    for command in candidates():
        key = tuple(command)
        if key in seen:
            continue
        seen.add(key)
        version = version_of(command)
        if version is not None and version >= MIN:
            return command
    return None


def main(argv):
    command = find()
    if command is None:
        sys.stderr.write(
            "bayesimg needs Python >= {}.{} and none was found (looked at $BAYESIMG_PYTHON, "
            "python3.N/python3/python on PATH, pyenv versions, uv Pythons, the py launcher "
            "and /usr/local/bin, /opt/homebrew/bin, /usr/bin).\nInstall one (e.g. "
            "'pyenv install 3.12', 'uv python install 3.12', your system's python3.12 package "
            "or python.org), or point BAYESIMG_PYTHON at it.\n".format(*MIN))
        return 1
    if argv[:1] == ["--print"]:
        print(" ".join(command))
        return 0
    return subprocess.call(command + argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
