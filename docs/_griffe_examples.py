"""A griffe extension for the API reference: jtricks' ``Example:`` sections are examples.

jtricks' docstrings (Google style) title their doctests ``Example:``; griffe reads
only ``Examples:`` as the section whose ``>>>`` lines are code (``Example:`` becomes
an admonition of plain text). This extension renames the title before griffe parses
the docstring, so the reference shows each example as highlighted code and output.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_TITLE = re.compile(r"^(\s*)Example:\s*$", re.M)


class ExampleSections(griffe.Extension):
    """Reads every ``Example:`` section as griffe's ``Examples:``."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _TITLE.sub(r"\1Examples:", obj.docstring.value)
