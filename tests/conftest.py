"""Test configuration shared by every test module.

Eight forced CPU devices are made available to every test, so that the
multi-device code (``pmap``, ``NamedSharding``, ``shard_map``) is tested on a
machine without accelerators. This must happen before JAX creates its backend,
which is why it lives here and not in a fixture.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)

from hypothesis import settings  # noqa: E402

# jit compilation makes the first example slow; deadlines would only be noise.
settings.register_profile("jtricks", deadline=None, max_examples=25, derandomize=True)
settings.load_profile("jtricks")
