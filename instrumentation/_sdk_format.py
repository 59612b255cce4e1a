"""Reading the SDKs' response objects and plain dicts alike: what every provider's reader builds on.

The SDKs hand back pydantic models, but a raw response read as JSON, an extra such as Groq's
``x_groq`` and Ollama's subscriptable models can be dicts; one accessor serves all of them. Token
counts are read as ints or not at all: an SDK that does not validate its responses can carry
``None`` or another type where a count should be, and that must not reach the span.
"""

from __future__ import annotations

from typing import Any

from costspan.facts import as_count


def field(obj: Any, name: str) -> Any:
    """``obj.name`` or ``obj[name]``; None when absent, or when reading it fails (an SDK's computed
    property, such as openai's ``Response.output_text``, can raise on an odd answer)."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def count(obj: Any, name: str) -> int:
    """The token count ``obj.name``: 0 when absent, ``INVALID`` when it is not a count."""
    return as_count(field(obj, name))
