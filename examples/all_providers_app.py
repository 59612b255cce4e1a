"""A plain application calling LLM providers through nine client libraries: not one line of costspan in it.

It makes one ordinary call and one streamed call through each provider's own client library:
OpenAI, Anthropic, Google Gemini, Groq, Ollama, Amazon Bedrock (boto3), Mistral and Cohere, and through
LiteLLM to DeepSeek. Run it
under the OpenTelemetry launcher and costspan prices every call:

    COSTSPAN_PROMETHEUS_PORT=9464 opentelemetry-instrument --traces_exporter console \\
        python examples/all_providers_app.py

Where each client sends its requests comes from the environment, so the same code runs against
the real APIs or against a local stand-in (``python -m costspan.standin.server``):

* ``OPENAI_BASE_URL``, ``OPENAI_API_KEY``: read by ``openai.OpenAI()`` itself.
* ``ANTHROPIC_BASE_URL``, ``ANTHROPIC_API_KEY``: read by ``anthropic.Anthropic()`` itself.
* ``GEMINI_BASE_URL`` (defined by this example; unset means Google's endpoint), ``GEMINI_API_KEY``.
* ``GROQ_BASE_URL``, ``GROQ_API_KEY``: read by ``groq.Groq()`` itself.
* ``OLLAMA_HOST``: read by ``ollama.Client()`` itself.
* ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``, ``AWS_DEFAULT_REGION``, ``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY``: read by ``boto3.client("bedrock-runtime")`` itself.
* ``MISTRAL_SERVER_URL`` (defined by this example; unset means Mistral's endpoint), ``MISTRAL_API_KEY``.
* ``CO_API_URL``, ``CO_API_KEY``: read by ``cohere.ClientV2()`` itself.
* ``DEEPSEEK_API_BASE``, ``DEEPSEEK_API_KEY``: read by ``litellm.completion()`` itself for ``deepseek/``
  models (``LITELLM_LOCAL_MODEL_COST_MAP=True`` keeps LiteLLM from fetching its price map at import).

``EXAMPLE_LINGER_SECONDS`` keeps the process up after the calls, so a scraper can read /metrics.
"""

from __future__ import annotations

import os
import time
from typing import Any

import anthropic
import boto3
import cohere
import groq
import litellm
import ollama
import openai
from google import genai
from google.genai import types
from mistralai.client import Mistral

QUESTION = "In one sentence: why measure what LLM calls cost?"
# Typed ``Any``: each SDK declares its own message types for the same JSON.
MESSAGES: Any = [{"role": "user", "content": QUESTION}]


def call_openai() -> None:
    client = openai.OpenAI(max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    # OpenAI streams carry usage only when asked; without it the tokens would be estimated.
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    for _chunk in stream:
        pass


def call_anthropic() -> None:
    client = anthropic.Anthropic(max_retries=0)
    client.messages.create(model="claude-sonnet-4-6", max_tokens=200, messages=MESSAGES)
    with client.messages.stream(model="claude-sonnet-4-6", max_tokens=200, messages=MESSAGES) as stream:
        for _text in stream.text_stream:
            pass


def call_gemini() -> None:
    base_url = os.environ.get("GEMINI_BASE_URL")
    options = types.HttpOptions(base_url=base_url) if base_url else None
    client = genai.Client(api_key=os.environ.get("GEMINI_API_KEY"), http_options=options)
    client.models.generate_content(model="gemini-2.5-flash", contents=QUESTION)
    for _chunk in client.models.generate_content_stream(model="gemini-2.5-flash", contents=QUESTION):
        pass


def call_groq() -> None:
    client = groq.Groq(max_retries=0)
    client.chat.completions.create(model="llama-3.1-8b-instant", messages=MESSAGES)
    for _chunk in client.chat.completions.create(model="llama-3.1-8b-instant", messages=MESSAGES, stream=True):
        pass


def call_ollama() -> None:
    client = ollama.Client()
    client.chat(model="llama3.2", messages=MESSAGES)
    for _part in client.chat(model="llama3.2", messages=MESSAGES, stream=True):
        pass


def call_bedrock() -> None:
    client = boto3.client("bedrock-runtime")
    messages: Any = [{"role": "user", "content": [{"text": QUESTION}]}]
    model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    client.converse(modelId=model, messages=messages)
    for _event in client.converse_stream(modelId=model, messages=messages)["stream"]:
        pass


def call_mistral() -> None:
    client = Mistral(api_key=os.environ.get("MISTRAL_API_KEY"), server_url=os.environ.get("MISTRAL_SERVER_URL"))
    client.chat.complete(model="mistral-small-latest", messages=MESSAGES)
    for _event in client.chat.stream(model="mistral-small-latest", messages=MESSAGES):
        pass


def call_cohere() -> None:
    client = cohere.ClientV2()
    client.chat(model="command-a-03-2025", messages=MESSAGES)
    for _event in client.chat_stream(model="command-a-03-2025", messages=MESSAGES):
        pass


def call_litellm() -> None:
    litellm.completion(model="deepseek/deepseek-chat", messages=MESSAGES)
    stream = litellm.completion(
        model="deepseek/deepseek-chat", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    for _chunk in stream:
        pass


def main() -> None:
    for call in (call_openai, call_anthropic, call_gemini, call_groq, call_ollama, call_bedrock, call_mistral,
                 call_cohere, call_litellm):
        call()
    time.sleep(float(os.environ.get("EXAMPLE_LINGER_SECONDS", "0")))


if __name__ == "__main__":
    main()
