"""Counting tokens locally, for streams that carry no usage and for worst-case reservations.

Offline by necessity: tiktoken downloads its tables at run time, which fails on closed networks.
With the optional ``bpe-openai`` extra the OpenAI encodings are bundled and counts are exact for
OpenAI models; otherwise (and for other vendors' models) a characters-per-token ratio is used,
calibrated per model from the calls that do report usage. The :class:`EstimationMonitor` measures
how far off the estimates are, in the background, so the error is published rather than assumed.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("costspan")

DEFAULT_CHARS_PER_TOKEN = 4.0
# OpenAI chat format overhead: tokens per message (besides its role, which is encoded too), per
# message name, and for priming the reply.
_PER_MESSAGE = 3
_PER_NAME = 1
_REPLY_PRIMING = 3
# Tool definitions as the chat format renders them (OpenAI cookbook, "counting tokens for tools"):
# per function, per parameter list, per parameter, per enum value, and once after all of them.
_PER_FUNCTION = 7
_PER_PROPERTIES = 3
_PER_PROPERTY = 3
_PER_ENUM = -3
_PER_ENUM_ITEM = 3
_TOOLS_END = 12
# A tool call in the answer, beyond its name and arguments (the recipient and call framing).
PER_TOOL_CALL = 9
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o", "gpt-oss", "codex")
_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "text-embedding-3", "text-embedding-ada")


def _load_bpe() -> Any:
    try:
        import bpe_openai
    except ImportError:
        return None
    return bpe_openai


def _encoding_name(model: str) -> str | None:
    name = model.lower().rsplit("/", 1)[-1]
    if name.startswith("ft:"):
        name = name[3:]
    if name.startswith(_O200K_PREFIXES):
        return "o200k_base"
    if name.startswith(_CL100K_PREFIXES):
        return "cl100k_base"
    return None


def message_text(messages: object) -> list[str]:
    """The text parts of chat messages in any of the SDKs' shapes (strings, parts, dicts)."""
    out: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, dict):
            for key in ("content", "text", "input", "prompt", "parts", "system", "instructions"):
                if key in value:
                    walk(value[key])
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    walk(messages)
    return out


def _tool_call_texts(calls: object) -> list[str]:
    """Names and arguments of the tool calls of an assistant message in the request."""
    out: list[str] = []
    for call in calls if isinstance(calls, (list, tuple)) else ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            out += [str(function.get("name") or ""), str(function.get("arguments") or "")]
    return out


class TokenCounter:
    """Counts tokens for a model: exact BPE when available, else a calibrated ratio."""

    def __init__(self, use_bpe: bool = True) -> None:
        self._bpe = _load_bpe() if use_bpe else None
        self._encodings: dict[str, Any] = {}
        self._ratio: dict[str, tuple[int, int]] = {}
        """model -> (characters seen, tokens reported) for calls that reported usage."""
        self._lock = threading.Lock()

    def exact_for(self, model: str) -> bool:
        return self._bpe is not None and _encoding_name(model) is not None

    def _encoding(self, model: str) -> Any:
        name = _encoding_name(model)
        if self._bpe is None or name is None:
            return None
        enc = self._encodings.get(name)
        if enc is None:
            enc = self._encodings[name] = self._bpe.get_encoding(name)
        return enc

    def chars_per_token(self, model: str) -> float:
        seen = self._ratio.get(model)
        if seen is None or seen[1] < 50:
            return DEFAULT_CHARS_PER_TOKEN
        return seen[0] / seen[1]

    def count_text(self, model: str, texts: Iterable[str]) -> int:
        enc = self._encoding(model)
        if enc is not None:
            return sum(len(enc.encode_ordinary(t)) for t in texts if t)
        chars = sum(len(t) for t in texts)
        return round(chars / self.chars_per_token(model)) if chars else 0

    def count_messages(self, model: str, messages: object, tools: object = None) -> int:
        """Input tokens of a chat request as the provider bills them: the text, the chat format's
        per-message framing (role, name) and reply priming, and the tool definitions."""
        texts = message_text(messages)
        overhead = 0
        if isinstance(messages, (list, tuple)) and messages and isinstance(messages[0], dict):
            overhead = _PER_MESSAGE * len(messages) + _REPLY_PRIMING
            for message in messages:
                texts.append(str(message.get("role") or ""))
                if message.get("name"):
                    texts.append(str(message["name"]))
                    overhead += _PER_NAME
                texts.extend(_tool_call_texts(message.get("tool_calls")))
        return self.count_text(model, texts) + overhead + self.count_tools(model, tools)

    def count_tools(self, model: str, tools: object) -> int:
        """Tool (function) definitions and a JSON-schema response format, as the chat format renders them."""
        if not isinstance(tools, (list, tuple)) or not tools:
            return 0
        overhead, texts = _TOOLS_END, []
        for tool in tools:
            function = tool.get("function", tool) if isinstance(tool, dict) else None
            if not isinstance(function, dict):
                continue
            overhead += _PER_FUNCTION
            description = str(function.get("description") or "").removesuffix(".")
            texts.append(f"{function.get('name', '')}:{description}")
            schema = function.get("parameters") or function.get("schema") or {}
            properties = schema.get("properties") if isinstance(schema, dict) else None
            if isinstance(properties, dict) and properties:
                overhead += _PER_PROPERTIES
                for key, spec in properties.items():
                    spec = spec if isinstance(spec, dict) else {}
                    overhead += _PER_PROPERTY
                    enum = spec.get("enum")
                    if isinstance(enum, list):
                        overhead += _PER_ENUM + _PER_ENUM_ITEM * len(enum)
                        texts.extend(str(item) for item in enum)
                    texts.append(f"{key}:{spec.get('type', '')}:{str(spec.get('description') or '').removesuffix('.')}")
        return self.count_text(model, texts) + overhead

    def calibrate(self, model: str, chars: int, reported_tokens: int) -> None:
        """Learn the ratio of a model that BPE cannot count, from a call that reported usage."""
        if reported_tokens <= 0 or chars <= 0:
            return
        with self._lock:
            seen = self._ratio.get(model, (0, 0))
            self._ratio[model] = (seen[0] + chars, seen[1] + reported_tokens)


@dataclass(frozen=True, slots=True)
class Sample:
    provider: str
    model: str
    input_texts: list[str]
    output_texts: list[str]
    reported_input: int
    reported_output: int
    message_count: int


class EstimationMonitor:
    """Compares local counts with reported usage on a sample of calls, off the caller's thread.

    The caller only flips a coin and enqueues references; counting happens on a daemon worker.
    A full queue drops the sample: measuring must never slow or block the application.
    """

    def __init__(
        self,
        counter: TokenCounter,
        record_error: Callable[[str, str, float], None],
        sample_rate: float = 0.1,
        max_queue: int = 1000,
    ) -> None:
        self._counter = counter
        self._record_error = record_error
        self.sample_rate = sample_rate
        self._queue: queue.Queue[Sample] = queue.Queue(max_queue)
        self._thread: threading.Thread | None = None
        self._random = random.Random()

    def should_sample(self) -> bool:
        return self.sample_rate > 0 and self._random.random() < self.sample_rate

    def submit(self, sample: Sample) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="costspan-estimation", daemon=True)
            self._thread.start()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(sample)

    def _run(self) -> None:
        while True:
            sample = self._queue.get()
            try:
                self.measure(sample)
            except Exception:  # never let one odd payload stop the worker
                logger.debug("costspan: estimation sample failed", exc_info=True)
            finally:
                self._queue.task_done()

    def measure(self, sample: Sample) -> None:
        counter = self._counter
        overhead = _PER_MESSAGE * sample.message_count + _REPLY_PRIMING if sample.message_count else 0
        estimated_in = counter.count_text(sample.model, sample.input_texts) + overhead
        estimated_out = counter.count_text(sample.model, sample.output_texts)
        reported = sample.reported_input + sample.reported_output
        if reported > 0:
            error = (estimated_in + estimated_out - reported) / reported
            self._record_error(sample.provider, sample.model, abs(error))
        if not counter.exact_for(sample.model):
            counter.calibrate(sample.model, sum(map(len, sample.output_texts)), sample.reported_output)

    def drain(self, timeout: float = 2.0) -> None:
        """Wait until queued samples are measured (tests, shutdown)."""
        end = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < end:
            time.sleep(0.005)
