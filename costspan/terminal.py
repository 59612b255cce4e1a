"""Values from data (user, project, model, budget member names, price keys) made safe to show.

Those names come from the applications being measured, from price files and from imported
maps: whoever chose them may try to reach the terminal of whoever reads a report. Every command
passes such a value through :func:`plain` before ``print`` and :func:`markup` before a ``rich``
console, so a name like ``[/bold]`` is shown as it is (no ``MarkupError``), ``[link=...]`` makes no
hyperlink, and escape sequences (``\\x1b[2J``, OSC 8 links), other control characters and
bidirectional overrides never reach the terminal: they are removed.
"""

from __future__ import annotations

import re

from rich.markup import escape

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""C0 and C1 control characters (ESC, BEL, CR, ...), DEL, and the bidi marks and overrides that
can make a terminal show text in another order than it is written."""


def plain(value: object) -> str:
    """``value`` as text without control characters, for ``print``."""
    return _UNSAFE.sub("", str(value))


def markup(value: object) -> str:
    """``value`` as text without control characters and with rich markup escaped, for ``rich``."""
    return escape(plain(value))
