"""The console the commands print tables to.

In a terminal, rich fits tables to its width. Piped or captured (CI logs, ``| less``), rich
assumes 80 columns and folds every cell; a fixed, wider page keeps rows on one line instead.
Emoji codes are off: a model named ``:skull:`` is data, shown as written (see
:mod:`costspan.terminal` for the markup and control characters).
"""

from __future__ import annotations

from rich.console import Console

PIPED_WIDTH = 132


def table_console(*, highlight: bool = True) -> Console:
    console = Console(highlight=highlight, emoji=False)
    if not console.is_terminal:
        console = Console(width=PIPED_WIDTH, highlight=highlight, emoji=False)
    return console
