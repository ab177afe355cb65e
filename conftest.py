"""pytest configuration for the whole checkout: the test suite (``tests/``) and the
docstring examples of the package (``jtricks/``, collected with ``--doctest-modules``,
see ``pyproject.toml``).

Eight forced CPU devices are made available to every test and every docstring
example, so that the multi-device code (``pmap``, ``NamedSharding``,
``shard_map``) is tested on a machine without accelerators. This must happen
before JAX creates its backend, which is why it lives at the top of the first
conftest pytest loads and not in a fixture.
"""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The tests' programs run for milliseconds and compile for seconds: XLA compiles them at
# optimisation level 1 (about 30% less CPU for the compile-bound tests). Level 1 gives
# the numbers of the default level (tests/test_train_compiles.py checks initial
# parameters bit for bit; level 0 would not: it leaves multiply-adds uncontracted). The
# flag travels to every subprocess a test starts. A level set in XLA_FLAGS is kept.
if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_backend_optimization_level=1").strip()
# XLA:CPU's fusion emitters are off too: the tests' small programs then compile in less
# CPU (whole suite, -n 2: 1122 user CPU-s at load 7-10 without them, 1344 idle with them;
# tests/test_sweep.py alone 63.7 -> 45.9 CPU-s), and every test passes either way.
if "--xla_cpu_use_fusion_emitters" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] += " --xla_cpu_use_fusion_emitters=false"
# One persistent compilation cache for the whole test run, in a fresh temporary folder:
# a program another test (or another xdist worker, or a subprocess) already compiled is
# loaded instead (the CLI tests run the same small configurations again and again). It
# starts empty, so every program is compiled once per run; the process that made the
# folder removes it at exit.
if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="jtricks-tests-xla-")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
# The CLI's own cache folder stays off in tests (no writes to ~/.cache);
# tests/test_cli_cache.py turns it on in a subprocess.
os.environ["JTRICKS_COMPILE_CACHE"] = "off"

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import pytest  # noqa: E402

import jtricks  # noqa: E402

# Every docstring example of jtricks/ runs as a doctest (tests/test_package.py checks that
# none drops out of collection).
collect_ignore = ["jtricks/__main__.py"]


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    """The names every docstring example may use without importing them."""
    doctest_namespace.update(jax=jax, jnp=jnp, np=np, optax=optax, jtricks=jtricks)
