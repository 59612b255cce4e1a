"""Owner-only creation of costspan's state files (ledger, SQLite budget store).

They hold user ids and spend, so nobody else on the host may read them. SQLite creates a
missing database with the process umask (usually 0644), so the file is created here first,
empty and 0600, before SQLite opens it; SQLite then gives its ``-wal`` and ``-shm`` side files the
main file's mode. A directory created here is 0700. An existing file or directory keeps its mode:
it was chosen by whoever made it (a shared ``/var/lib/costspan``, say).
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def create_private(path: str | Path) -> Path:
    """Make sure ``path`` exists, creating it (and its directory) owner-only when missing."""
    target = Path(path).expanduser()
    target.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    # O_CREAT without O_EXCL: a file another process created meanwhile is left as it is.
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    return target
