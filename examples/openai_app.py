"""A plain OpenAI application: not one line of costspan in it.

Run it under the OpenTelemetry launcher and costspan prices every call:

    COSTSPAN_PROMETHEUS_PORT=9464 opentelemetry-instrument --traces_exporter console python examples/openai_app.py

The client reads OPENAI_API_KEY and OPENAI_BASE_URL from the environment as usual.
"""

from __future__ import annotations

import asyncio
import os
import time

import openai

MESSAGES = [{"role": "user", "content": "In one sentence: why measure what LLM calls cost?"}]


def main() -> None:
    client = openai.OpenAI()
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    for _ in client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    ):
        pass
    client.embeddings.create(model="text-embedding-3-small", input="what does this cost?")

    async def async_call() -> None:
        async_client = openai.AsyncOpenAI()
        await async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]

    asyncio.run(async_call())
    # Keep the process up briefly when asked, so a scraper can read /metrics before exit.
    time.sleep(float(os.environ.get("EXAMPLE_LINGER_SECONDS", "0")))


if __name__ == "__main__":
    main()
