"""Flush on SIGTERM for processes that use a ledger without the full runtime.

The runtime (``costspan.runtime._install_shutdown``) already does this for its own ``close()``;
this is the same pattern for one closer, used by the SIGTERM proof test and by embedders. It chains
to the previous handler, or re-raises the signal with the default action so the exit status
still says "terminated by SIGTERM". Safe from a signal handler because the caller's side of the
ledger takes no lock (see ``writer``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType


def install_sigterm_flush(close: Callable[[], None]) -> bool:
    """Run ``close`` on SIGTERM before the previous behaviour; False when not on the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return False
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(Exception):
            close()
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)
    return True
