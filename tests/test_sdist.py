"""The sdist ships the whole checkout: every tracked file is matched by MANIFEST.in.

Unpacked and installed, an sdist must collect and run its own tests (``conftest.py``,
``tests/_train_helpers.py``, ``examples/``, ``benchmarks/``, ``README.md``, the docs
sources ...). Building one takes tens of seconds, so this test runs setuptools' own
manifest engine (``FileList``, the code ``python -m build --sdist`` runs on
MANIFEST.in) over the checkout instead, in a fraction of a second.
"""

import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tracked_files():
    if shutil.which("git") is None or not os.path.exists(os.path.join(ROOT, ".git")):
        pytest.skip("not a git checkout (an unpacked sdist is what MANIFEST.in made)")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    return {f for f in out.stdout.decode().split("\0") if f and os.path.isfile(os.path.join(ROOT, f))}


def _manifest_files(monkeypatch):
    from setuptools.command.egg_info import FileList

    monkeypatch.chdir(ROOT)
    files = FileList()
    files.findall()
    with open("MANIFEST.in") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                files.process_template_line(line)
    return {f.replace(os.sep, "/") for f in files.files}


def test_every_tracked_file_is_in_the_sdist(monkeypatch):
    tracked = _tracked_files()
    shipped = _manifest_files(monkeypatch)
    missing = sorted(tracked - shipped)
    assert not missing, f"tracked files MANIFEST.in leaves out of the sdist: {missing}"
    # what the tests need to collect and run, named so that a wrong MANIFEST.in reads clearly
    for needed in ("conftest.py", "tests/_train_helpers.py", "pyproject.toml", "README.md",
                   "examples/chain_with_optax.py", "docs/USAGE.md", "jtricks/py.typed"):
        assert needed in shipped, needed
    assert not [f for f in shipped if f.endswith((".pyc", ".pyo"))]
