"""pytest configuration for the whole checkout: the test suite (``tests/``) and the
docstring examples of the package (``jtricks/``, collected with ``--doctest-modules``,
see ``pyproject.toml``).

Eight forced CPU devices are made available to every test and every docstring
example, so that the multi-device code (``pmap``, ``NamedSharding``,
``shard_map``) is tested on a machine without accelerators. This must happen
before JAX creates its backend, which is why it lives at the top of the first
conftest pytest loads and not in a fixture.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The CLI's persistent compilation cache stays off in tests (no writes to ~/.cache, and
# every test compiles what it runs); tests/test_cli_cache.py turns it on in a subprocess.
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
