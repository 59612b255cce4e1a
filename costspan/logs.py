"""One log record per kind of internal fault, for the whole process.

costspan runs inside every LLM call of the application: a fault of ours that repeats on every call
must not flood the application's log, and must not hide either. So each place logs its first
fault (with the traceback) and stays quiet after; the application is never affected.
"""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger("costspan")
_logged: set[str] = set()
_lock = threading.Lock()

INTERNAL_ERROR = "costspan: internal error in %s; the application is unaffected"


def log_once(where: str, message: str = INTERNAL_ERROR, *args: object, traceback: bool = True) -> None:
    """Log ``message`` (by default: an internal error in ``where``) the first time ``where`` faults."""
    with _lock:
        if where in _logged:
            return
        _logged.add(where)
    fields = (where,) if message == INTERNAL_ERROR else args
    if traceback:
        logger.exception(message, *fields)
    else:
        logger.error(message, *fields)
