"""The CLI's persistent compilation cache (``jtricks.cli.enable_compile_cache``)."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAM = ("import jax, jax.numpy as jnp\n"
           "from jtricks.cli import enable_compile_cache\n"
           "print(enable_compile_cache())\n"
           "print(float(jax.jit(lambda x: jnp.sin(x) * 3)(1.0)))\n")


def _run(cache):
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu", JTRICKS_COMPILE_CACHE=cache)
    return subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True,
                          text=True, timeout=120, check=True).stdout.split()


def test_a_second_process_finds_the_first_ones_programs(tmp_path):
    cache = tmp_path / "xla"
    first = _run(str(cache))
    assert first[0] == str(cache)
    entries = set(os.listdir(cache))
    assert entries, "the first run cached nothing"
    second = _run(str(cache))
    assert second == first  # same answer, and nothing new to compile
    assert set(os.listdir(cache)) == entries


def test_off_and_unwritable_folders_leave_it_off(tmp_path):
    assert _run("off")[0] == "None"
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert _run(str(blocker / "xla"))[0] == "None"  # a file where the folder should be


def test_default_folder_follows_xdg(monkeypatch):
    from jtricks.cli import compile_cache_dir

    monkeypatch.delenv("JTRICKS_COMPILE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/somewhere")
    assert compile_cache_dir() == "/somewhere/jtricks/xla"
    monkeypatch.setenv("JTRICKS_COMPILE_CACHE", "0")
    assert compile_cache_dir() is None
