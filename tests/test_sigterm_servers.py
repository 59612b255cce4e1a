"""SIGTERM under real servers, with requests in flight: every call that completed is in the ledger
and in the budget, and SIGTERM does to the application exactly what it did without costspan.

uvicorn and gunicorn install their own SIGTERM handlers; uvicorn's drains the requests in flight,
then restores the handler it found and raises SIGTERM again. costspan may be set up before the
server (instrumented at import, or by the launcher's hook) or after it (on the first request):
both orders are driven here, as are gunicorn's uvicorn workers and its sync workers, and a
process that ignores SIGTERM. The stand-in answers each LLM call after 0.3 s, so calls are in
flight when the signal arrives.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from costspan.standin import ProviderServer, Scenario
from costspan.standin._core import fake_id
from tests.test_budget_stores import free_port

ROOT = Path(__file__).resolve().parents[1]
BUDGET = "budgets:\n  - {name: daily, limit_usd: 1000, window: day}\n"
CLIENTS = 6


def server_env(tmp_path: Path, standin: ProviderServer, **extra: str) -> dict[str, str]:
    config = tmp_path / "costspan.yaml"
    config.write_text(BUDGET)
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "STANDIN_URL": standin.base_url,
        "COSTSPAN_CONFIG": str(config),
        "COSTSPAN_STORE": f"sqlite:///{tmp_path / 'costspan.db'}",
        "COSTSPAN_ENDPOINTS": f"{standin.base_url}/v1=openai",
        "OTEL_SERVICE_NAME": "drill",
        "COSTSPAN_LEDGER": "on",
        **extra,
    }


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited early: {process.stderr.read().decode() if process.stderr else ''}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    raise AssertionError("the server did not answer")


class Load:
    """Clients calling the server in a loop until it stops answering; counts completed requests."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.completed = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(CLIENTS)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=10) as answer:
                    answer.read()
                    ok = answer.status == 200
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                ok = False
                time.sleep(0.05)
            if ok:
                with self._lock:
                    self.completed += 1

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)


def books(tmp_path: Path) -> tuple[int, int, int]:
    """(ledger rows, their cost in nano-dollars, the budget's spend in nano-dollars)."""
    ledger = sqlite3.connect(tmp_path / "costspan-ledger.db")
    try:
        rows, cost = ledger.execute("SELECT count(*), coalesce(sum(cost_nanos), 0) FROM calls").fetchone()
    except sqlite3.OperationalError:  # no table: not one row was ever written
        rows, cost = 0, 0
    ledger.close()
    store = sqlite3.connect(tmp_path / "costspan.db")
    (spend,) = store.execute("SELECT coalesce(sum(value), 0) FROM budget_counters WHERE key LIKE 'budget|%'").fetchone()
    store.close()
    return int(rows), int(cost), int(spend)


def drill_report(rows: int, standin: ProviderServer, tmp_path: Path, process: subprocess.Popen[bytes]) -> str:
    """What each LLM call the stand-in received became: answered by the stand-in, seen completed by
    the application (after costspan accounted it), against the ledger's rows."""
    answered = set(standin.answered)
    log = tmp_path / "calls.log"
    completed = dict(reversed(line.split()) for line in log.read_text().splitlines()) if log.exists() else {}
    lines = [f"ledger rows {rows}, stand-in requests {standin.request_count}, answered {len(answered)}, "
             f"completed in the application {len(completed)}"]
    for number in range(1, standin.request_count + 1):
        response_id = fake_id("chatcmpl-", number, "chat", length=29)
        if number not in answered or response_id not in completed:
            lines.append(f"  request {number} ({response_id}): answered={number in answered} "
                         f"completed in pid {completed.get(response_id)}")
    stderr = process.stderr.read().decode() if process.stderr else ""
    return "\n".join([*lines, stderr])


SERVERS = {
    "uvicorn": [sys.executable, "-m", "uvicorn", "tests.apps.llm_server:app", "--port", "{port}"],
    "uvicorn-launcher": [
        str(Path(sys.executable).with_name("opentelemetry-instrument")), "--traces_exporter", "none",
        "--metrics_exporter", "none", sys.executable, "-m", "uvicorn", "tests.apps.llm_server:app", "--port", "{port}",
    ],
    "gunicorn-uvicorn-workers": [
        sys.executable, "-m", "gunicorn", "-w", "2", "-k", "uvicorn_worker.UvicornWorker", "-b", "127.0.0.1:{port}",
        "tests.apps.llm_server:app",
    ],
    "gunicorn-sync-workers": [
        sys.executable, "-m", "gunicorn", "-w", "2", "--threads", "4", "-b", "127.0.0.1:{port}",
        "tests.apps.llm_server:wsgi_app",
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize("lazy", [False, True], ids=["costspan-first", "server-first"])
@pytest.mark.parametrize("server", list(SERVERS))
def test_sigterm_under_a_real_server_keeps_every_completed_call(
    server: str, lazy: bool, provider_server: ProviderServer, tmp_path: Path
) -> None:
    provider_server.set_default(Scenario(delay=0.3))
    port = free_port()
    command = [part.format(port=port) for part in SERVERS[server]]
    env = server_env(tmp_path, provider_server, COSTSPAN_LAZY="1" if lazy else "0",
                     DRILL_CALLS_LOG=str(tmp_path / "calls.log"))
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_listening(port, process)
        load = Load(port)
        time.sleep(2.0)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        load.stop()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    calls = provider_server.request_count
    rows, cost, spend = books(tmp_path)
    assert load.completed > 10
    assert rows == calls, drill_report(rows, provider_server, tmp_path, process)
    assert rows >= load.completed + 1  # the readiness probe's call, and every request answered
    assert cost > 0 and spend == cost  # the budget holds exactly what the ledger holds


LATE = """
import signal, sys
import openai, uvicorn
server = uvicorn.Server(uvicorn.Config("tests.apps.llm_server:app"))
found = signal.signal(signal.SIGTERM, server.handle_exit)  # what uvicorn does as it starts serving
signal.raise_signal(signal.SIGTERM)  # the worker is stopped before costspan is set up
assert server.should_exit
from costspan.instrumentation.openai import OpenAIInstrumentor
OpenAIInstrumentor().instrument()  # on the first request, one the server accepted as the signal came
client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="k", max_retries=0)
for _ in range(int(sys.argv[2])):
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
signal.signal(signal.SIGTERM, found)  # uvicorn, done serving: the handler it found, and the signal again
signal.raise_signal(signal.SIGTERM)
"""


@pytest.mark.slow
def test_costspan_set_up_after_the_server_got_sigterm_still_writes_each_call(
    provider_server: ProviderServer, tmp_path: Path
) -> None:
    """A gunicorn uvicorn worker that had no request yet when SIGTERM came serves the ones it
    accepted meanwhile: costspan, set up on the first of them, never sees the signal, and the
    worker then dies of SIGTERM's default action, past atexit. Each call is written all the same."""
    calls = 3
    process = subprocess.run(
        [sys.executable, "-c", LATE, provider_server.base_url, str(calls)],
        cwd=ROOT, env=server_env(tmp_path, provider_server), capture_output=True, text=True, timeout=60,
    )
    assert process.returncode == -signal.SIGTERM, process.stderr
    rows, cost, spend = books(tmp_path)
    assert rows == calls == provider_server.request_count and spend == cost > 0


IGNORING = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # this application ignores SIGTERM, before costspan
import openai
from costspan.instrumentation.openai import OpenAIInstrumentor
OpenAIInstrumentor().instrument()
client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="k", max_retries=0)
for i in range(int(sys.argv[2])):
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    print(i, flush=True)
"""


@pytest.mark.slow
def test_an_application_that_ignores_sigterm_keeps_running_and_recording(
    provider_server: ProviderServer, tmp_path: Path
) -> None:
    calls = 60
    process = subprocess.Popen(
        [sys.executable, "-c", IGNORING, provider_server.base_url, str(calls)],
        env=server_env(tmp_path, provider_server), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    for _ in range(10):
        process.stdout.readline()
    process.send_signal(signal.SIGTERM)  # ignored by the application, so by costspan too
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert books(tmp_path)[0] == calls


OWN_HANDLER = """
import os, signal, sys, time
import openai
import costspan
from costspan.instrumentation.openai import OpenAIInstrumentor
OpenAIInstrumentor().instrument()
print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, flush=True)  # costspan installed no handler
def on_term(signum, frame):
    costspan.flush()
    os._exit(0)  # this application leaves at once: no atexit, so only what flush() wrote is kept
signal.signal(signal.SIGTERM, on_term)
client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="k", max_retries=0)
for i in range(int(sys.argv[2])):
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
print("done", flush=True)
time.sleep(60)
"""


@pytest.mark.slow
def test_an_application_that_owns_its_signals_turns_costspan_s_handler_off_and_flushes(
    provider_server: ProviderServer, tmp_path: Path
) -> None:
    calls = 25
    process = subprocess.Popen(
        [sys.executable, "-c", OWN_HANDLER, provider_server.base_url, str(calls)],
        env=server_env(tmp_path, provider_server, COSTSPAN_SIGTERM="false"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "True"
    assert process.stdout.readline().strip() == "done"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    rows, cost, spend = books(tmp_path)
    assert rows == calls and spend == cost > 0
