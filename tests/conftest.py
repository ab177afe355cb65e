"""Test configuration of the test suite.

The eight forced CPU devices and the names of the docstring examples are set
up in the checkout's ``conftest.py`` (one level up), which pytest loads first,
so they hold for the tests and the doctests alike.
"""

from hypothesis import settings

# jit compilation makes the first example slow; deadlines would only be noise.
settings.register_profile("jtricks", deadline=None, max_examples=25, derandomize=True)
settings.load_profile("jtricks")
