"""The process lifecycle: what is written out on SIGTERM, and what is closed at exit.

costspan never decides whether or when the process stops. On SIGTERM it writes out what is
recorded, then hands the signal to the handler that was there before it (a server's, the
application's, or the default); it keeps recording until the process really ends, when ``atexit``
closes everything. An application that owns its signal handling turns the handler off
(``COSTSPAN_SIGTERM=false``) and calls ``costspan.flush()`` itself.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

from costspan.logs import log_once

SIGTERM_FLUSH_SECONDS = 10.0


class Lifecycle:
    """The closers and drainers of one runtime, run once each at the right moment."""

    def __init__(self, flush_metrics: Callable[[], None]) -> None:
        self._flush_metrics = flush_metrics
        self._closers: list[Callable[[], None]] = []
        self._drainers: list[Callable[[], object]] = []
        self._lock = threading.Lock()
        self._closed = False

    def add_closer(self, closer: Callable[[], None]) -> None:
        self._closers.append(closer)

    def add_drainer(self, drainer: Callable[[], object]) -> None:
        """``drainer()`` writes out what a sink or store holds, and keeps it written from then on."""
        self._drainers.append(drainer)

    def drain(self) -> None:
        """The process was asked to stop: write out everything recorded so far, and from now on
        write each call as soon as it is recorded, because the process may be killed as soon as the
        application has finished its own shutdown (a server that drains its requests, then re-raises
        SIGTERM with the default action). Recording goes on; ``close`` runs at exit as always."""
        for drainer in self._drainers:
            try:
                drainer()
            except Exception:
                log_once("drain")
        self._flush_metrics()

    def close(self) -> None:
        """Flush everything recorded and stop; safe to call more than once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._flush_metrics()
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception:
                log_once("close")


def install(close: Callable[[], None], drain: Callable[[], None], *, sigterm: bool) -> None:
    """``close`` at exit; with ``sigterm``, ``drain`` on SIGTERM before the previous handler runs.

    The handlers call through ``close``/``drain`` as given: the runtime passes functions that find
    the process's current runtime, so a runtime installed later is served by the same handler."""
    atexit.register(close)
    if not sigterm or threading.current_thread() is not threading.main_thread():
        return
    try:
        previous = signal.getsignal(signal.SIGTERM)
    except ValueError:
        return
    if getattr(previous, "_costspan", False):
        return

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        # On a thread, with a deadline: the signal may have interrupted this thread inside
        # costspan's own code, holding a lock the flush needs. Better to go on without the last
        # flush than to hang the shutdown.
        drainer = threading.Thread(target=drain, name="costspan-sigterm", daemon=True)
        drainer.start()
        drainer.join(SIGTERM_FLUSH_SECONDS)
        if callable(previous) and previous not in (signal.SIG_IGN, signal.SIG_DFL):
            previous(signum, frame)
        elif previous == signal.SIG_DFL or previous is None:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    setattr(on_sigterm, "_costspan", True)  # noqa: B010  # recognised if costspan is set up again
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGTERM, on_sigterm)
        # Checked once costspan's handler is in place, so a signal arriving meanwhile is seen by one or the other.
        if _stopping(previous):
            drain()


def _stopping(handler: object) -> bool:
    """Whether the server whose SIGTERM handler costspan found was already asked to stop.

    costspan set up on a request (lazily, after the server) may be set up after the signal: a
    uvicorn worker whose first requests are the ones it accepted in the moment between the signal
    and its loop noticing it. ``on_sigterm`` then never runs, yet the server serves those requests,
    restores the handler it found (the default, in a gunicorn worker) and raises SIGTERM again,
    which ends the process without ``atexit``: their calls would be lost with the batch not yet
    written. uvicorn's ``Server`` says so in ``should_exit``."""
    server = getattr(handler, "__self__", None)
    return getattr(server, "should_exit", False) is True
