"""costspan gateway: OTLP in (HTTP and gRPC), accounted once, enriched, forwarded; hostile input refused."""

from __future__ import annotations

import gzip
import json
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from costspan.gateway import values as values_module
from costspan.gateway.service import Gateway
from costspan.gateway.values import set_attributes, set_value
from costspan.money import nanos_to_usd
from tests.fakes.otlp_receiver import OtlpReceiver
from tests.gateway_support import (
    export_request,
    flush_ledger,
    gateway_yaml,
    ids,
    ledger_rows,
    llm_attributes,
    make_span,
    metric,
    running_gateway,
    span_attributes,
    span_id,
)

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def post(gateway: Gateway, body: bytes, headers: dict[str, str] | None = None) -> requests.Response:
    assert gateway.http is not None
    return requests.post(
        f"http://127.0.0.1:{gateway.http.port}/v1/traces", data=body, headers=headers or PROTOBUF, timeout=10
    )


def wait_forwarded(receiver: OtlpReceiver, count: int, timeout: float = 10.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spans = list(receiver.spans())
        if len(spans) >= count:
            return spans
        time.sleep(0.02)
    raise AssertionError(f"{len(list(receiver.spans()))} spans forwarded, expected {count}")


def test_an_llm_span_is_priced_once_and_every_span_forwarded(tmp_path: Path) -> None:
    trace, root = ids(1)
    llm = make_span(trace, span_id(2), root, attributes=llm_attributes(input_tokens=1000, output_tokens=200))
    plain = make_span(trace, root, name="GET /checkout", attributes={"http.request.method": "GET"})
    request = export_request([llm, plain], service="checkout")
    plain_before = plain.SerializeToString()
    with OtlpReceiver() as receiver, running_gateway(tmp_path, gateway_yaml(receiver.endpoint)) as gateway:
        reply = post(gateway, request.SerializeToString())
        assert reply.status_code == 200
        assert not ExportTraceServiceResponse.FromString(reply.content).HasField("partial_success")
        forwarded = {s.span_id: s for s in wait_forwarded(receiver, 2)}
        flush_ledger(gateway)
        rows = ledger_rows(tmp_path / "costspan-ledger.db")
        priced = span_attributes(forwarded[span_id(2)])
        assert forwarded[root].SerializeToString() == plain_before  # non-GenAI spans pass unchanged
        assert priced["costspan.cost.status"] == "priced"
        assert priced["costspan.project"] == "checkout"  # the resource's service.name
        # gpt-4o-mini: $0.15 / $0.60 per million tokens
        assert Decimal(str(priced["costspan.cost.usd"])) == Decimal("0.00027")
        assert len(rows) == 1
        assert rows[0]["service"] == "checkout" and rows[0]["cost_nanos"] == 270_000
        assert rows[0]["span_id"] == span_id(2).hex()
        cost = metric(
            gateway,
            "costspan_cost_usd_total",
            provider="openai",
            model="gpt-4o-mini",
            operation="chat",
            project="checkout",
            feature="",
        )
        assert Decimal(str(cost)) == nanos_to_usd(rows[0]["cost_nanos"])
        assert metric(gateway, "costspan_gateway_spans_received_total", transport="http") == 2
        assert metric(gateway, "costspan_gateway_spans_forwarded_total") == 2
        assert metric(gateway, "costspan_gateway_genai_spans_total", status="priced") == 1


def test_json_with_hex_ids_and_gzip_is_accepted_and_answered_in_json(tmp_path: Path) -> None:
    trace, sid = ids(7)
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "web"}}]},
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": trace.hex(),
                                "spanId": sid.hex(),
                                "name": "chat gpt-4o-mini",
                                "kind": 3,
                                "startTimeUnixNano": "1700000000000000000",
                                "endTimeUnixNano": "1700000001000000000",
                                "attributes": [
                                    {"key": "gen_ai.system", "value": {"stringValue": "openai"}},
                                    {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
                                    {"key": "gen_ai.usage.prompt_tokens", "value": {"intValue": "1000"}},
                                    {"key": "gen_ai.usage.completion_tokens", "value": {"intValue": 200}},
                                ],
                            }
                        ]
                    }
                ],
            }
        ]
    }
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    with OtlpReceiver() as receiver, running_gateway(tmp_path, gateway_yaml(receiver.endpoint)) as gateway:
        reply = post(gateway, gzip.compress(json.dumps(body).encode()), headers)
        assert reply.status_code == 200, reply.text
        assert reply.headers["Content-Type"] == "application/json"
        assert reply.json() == {}
        (forwarded,) = wait_forwarded(receiver, 1)
        assert forwarded.trace_id == trace and forwarded.span_id == sid
        assert Decimal(str(span_attributes(forwarded)["costspan.cost.usd"])) == Decimal("0.00027")


def test_the_same_batch_twice_is_charged_once_and_both_copies_carry_the_price(tmp_path: Path) -> None:
    trace, root = ids(3)
    request = export_request([make_span(trace, root, attributes=llm_attributes())])
    with OtlpReceiver() as receiver, running_gateway(tmp_path, gateway_yaml(receiver.endpoint)) as gateway:
        for _ in range(2):
            assert post(gateway, request.SerializeToString()).status_code == 200
        first, second = wait_forwarded(receiver, 2)
        flush_ledger(gateway)
        assert len(ledger_rows(tmp_path / "costspan-ledger.db")) == 1
        assert span_attributes(first)["costspan.cost.usd"] == span_attributes(second)["costspan.cost.usd"]
        assert metric(gateway, "costspan_gateway_genai_spans_total", status="duplicate") == 1


def test_two_replicas_sharing_a_store_charge_a_batch_once(tmp_path: Path) -> None:
    """Replicas with separate trace windows: only the store's claim stops the second charge."""
    trace, root = ids(4)
    request = export_request([make_span(trace, root, attributes=llm_attributes())])
    budget = "budgets:\n  - name: daily\n    limit_usd: 10\n    window: day\n"
    with (
        OtlpReceiver() as receiver,
        running_gateway(tmp_path, gateway_yaml(receiver.endpoint, extra=budget)) as one,
        running_gateway(tmp_path, gateway_yaml(receiver.endpoint, extra=budget)) as two,
    ):
        assert post(one, request.SerializeToString()).status_code == 200
        assert post(two, request.SerializeToString()).status_code == 200
        wait_forwarded(receiver, 2)
        flush_ledger(one)
        flush_ledger(two)
        assert len(ledger_rows(tmp_path / "costspan-ledger.db")) == 1
        (daily,) = one.runtime.budgets.status()
        assert daily.used == 270_000  # nano-dollars: one charge of $0.00027
        charged = metric(one, "costspan_gateway_genai_spans_total", status="priced") + metric(
            two, "costspan_gateway_genai_spans_total", status="priced"
        )
        assert charged == 1


def test_a_parent_and_its_child_in_separate_requests_are_counted_once_in_either_order(tmp_path: Path) -> None:
    with OtlpReceiver() as receiver, running_gateway(tmp_path, gateway_yaml(receiver.endpoint)) as gateway:
        for order, seed in (("child first", 10), ("parent first", 20)):
            trace, outer = ids(seed)
            inner = span_id(seed + 100)
            parent = make_span(trace, outer, name="ai.generateText", attributes=llm_attributes(output_tokens=400))
            child = make_span(trace, inner, outer, attributes=llm_attributes(output_tokens=400))
            first, second = (child, parent) if order == "child first" else (parent, child)
            post(gateway, export_request([first]).SerializeToString())
            post(gateway, export_request([second]).SerializeToString())
        spans = wait_forwarded(receiver, 4)
        flush_ledger(gateway)
        rows = ledger_rows(tmp_path / "costspan-ledger.db")
        assert len(rows) == 2  # one charge per trace
        by_id = {s.span_id: span_attributes(s) for s in spans}
        # child first: the inner span is charged, the outer points at it (as in-process)
        assert by_id[ids(10)[1]]["costspan.cost.counted_in"] == span_id(110).hex()
        assert "costspan.cost.counted_in" not in by_id[span_id(110)]
        # parent first: it was charged when it came; the child arriving later points at it
        assert by_id[span_id(120)]["costspan.cost.counted_in"] == ids(20)[1].hex()
        assert {row["span_id"] for row in rows} == {span_id(110).hex(), ids(20)[1].hex()}


def test_vercel_ai_sdk_spans_charge_each_model_call_once(tmp_path: Path) -> None:
    """ai.generateText over two ai.generateText.doGenerate (a tool loop): the two inner calls are charged."""
    trace, outer = ids(30)

    def vercel(operation: str, prompt: int, completion: int) -> dict[str, object]:
        return {
            "ai.operationId": operation,
            "ai.model.id": "gpt-4o-mini",
            "ai.model.provider": "openai.chat",
            "ai.usage.promptTokens": prompt,
            "ai.usage.completionTokens": completion,
            "ai.telemetry.metadata.userId": "u-1",
            "ai.telemetry.metadata.feature": "search",
        }

    spans = [
        make_span(trace, outer, name="ai.generateText", attributes=vercel("ai.generateText", 3000, 300)),
        make_span(trace, span_id(31), outer, "doGenerate", vercel("ai.generateText.doGenerate", 1000, 100)),
        make_span(trace, span_id(32), outer, "doGenerate", vercel("ai.generateText.doGenerate", 2000, 200)),
    ]
    with OtlpReceiver() as receiver, running_gateway(tmp_path, gateway_yaml(receiver.endpoint)) as gateway:
        post(gateway, export_request(spans, service="ts-app").SerializeToString())
        forwarded = {s.span_id: span_attributes(s) for s in wait_forwarded(receiver, 3)}
        flush_ledger(gateway)
        rows = ledger_rows(tmp_path / "costspan-ledger.db")
    assert sorted(row["input_tokens"] for row in rows) == [1000, 2000]
    assert {row["provider"] for row in rows} == {"openai"}
    assert {(row["user_id"], row["feature"], row["project"]) for row in rows} == {("u-1", "search", "ts-app")}
    assert forwarded[outer]["costspan.cost.counted_in"] in {span_id(31).hex(), span_id(32).hex()}


def test_spans_with_malformed_ids_are_rejected_alone_as_partial_success(tmp_path: Path) -> None:
    trace, good = ids(40)
    bad = make_span(trace[:8], span_id(41), attributes=llm_attributes())
    request = export_request([make_span(trace, good, attributes=llm_attributes()), bad])
    with OtlpReceiver() as receiver, running_gateway(tmp_path, gateway_yaml(receiver.endpoint)) as gateway:
        reply = post(gateway, request.SerializeToString())
        assert reply.status_code == 200
        partial = ExportTraceServiceResponse.FromString(reply.content).partial_success
        assert partial.rejected_spans == 1 and "trace id" in partial.error_message
        (forwarded,) = wait_forwarded(receiver, 1)
        assert forwarded.span_id == good
        assert metric(gateway, "costspan_gateway_spans_dropped_total", reason="invalid") == 1


def _batch(seed: int, count: int) -> bytes:
    spans = [make_span(*ids(seed + i), attributes=llm_attributes()) for i in range(count)]
    return export_request(spans).SerializeToString()


@pytest.mark.parametrize("forward", [True, False], ids=["forward", "no-forward"])
def test_the_answer_comes_before_the_accounting_and_one_bound_covers_both_queues(forward: bool, tmp_path: Path) -> None:
    """The accounting worker is held up (the trace window's lock, taken here): requests are still
    answered until the spans waiting to be accounted fill ``queue_spans``, then refused, with or
    without a next hop; once the worker goes on, every accepted span is accounted and forwarded."""
    with OtlpReceiver() as receiver:
        limits = "  limits: {queue_spans: 15}\n"
        with running_gateway(tmp_path, gateway_yaml(receiver.endpoint if forward else None) + limits) as gateway:
            with gateway.window.lock:
                assert post(gateway, _batch(100, 10)).status_code == 200
                assert post(gateway, _batch(200, 10)).status_code == 503  # 10 held + 10 > 15
                assert metric(gateway, "costspan_gateway_accounting_queue_spans") == 10
                assert metric(gateway, "costspan_gateway_requests_total", transport="http", outcome="throttled") == 1
                assert not gateway.intake.wait_idle(0.2)  # genuinely not accounted yet
                assert not list(receiver.spans())
            flush_ledger(gateway)
            assert len(ledger_rows(tmp_path / "costspan-ledger.db")) == 10
            assert metric(gateway, "costspan_gateway_accounting_queue_spans") == 0
            assert metric(gateway, "costspan_gateway_genai_spans_total", status="priced") == 10
            assert metric(gateway, "costspan_gateway_accounting_delay_seconds_count") == 1
            assert post(gateway, _batch(200, 10)).status_code == 200  # room again
            if forward:
                assert len(wait_forwarded(receiver, 20)) == 20


def test_stopping_accounts_every_answered_request_before_the_drain(tmp_path: Path) -> None:
    """SIGTERM's path while answered requests still wait to be accounted: all are accounted,
    forwarded and in the ledger when the gateway has stopped."""
    with OtlpReceiver() as receiver:
        with running_gateway(tmp_path, gateway_yaml(receiver.endpoint)) as gateway:
            stopped: list[int] = []
            with gateway.window.lock:
                for seed in (300, 400, 500):
                    assert post(gateway, _batch(seed, 5)).status_code == 200
                stopping = threading.Thread(target=lambda: stopped.append(gateway.stop()))
                stopping.start()
                deadline = time.monotonic() + 10
                while gateway.intake.accepting:
                    assert time.monotonic() < deadline, "the gateway did not start stopping"
                    time.sleep(0.01)
                assert not stopped  # it waits for the accounting
            stopping.join(30)
            assert stopped == [0]
            assert len(list(receiver.spans())) == 15
        assert len(ledger_rows(tmp_path / "costspan-ledger.db")) == 15


def test_hostile_requests_get_clear_answers_and_never_cost_a_good_span(tmp_path: Path) -> None:
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024))
    yaml_text = gateway_yaml(extra="") + "  limits: {max_request_bytes: 1048576, max_decompressed_bytes: 4194304}\n"
    with running_gateway(tmp_path, yaml_text) as gateway:
        assert post(gateway, b"\x0a\xff\xff\xff\xff").status_code == 400
        assert post(gateway, b"{not json", {"Content-Type": "application/json"}).status_code == 400
        assert post(gateway, b"[]", {"Content-Type": "application/json"}).status_code == 400
        assert post(gateway, b"x", {"Content-Type": "text/plain"}).status_code == 415
        assert post(gateway, bomb, {**PROTOBUF, "Content-Encoding": "gzip"}).status_code == 413
        assert post(gateway, b"\0" * (2 * 1024 * 1024)).status_code == 413
        assert post(gateway, b"abc", {**PROTOBUF, "Content-Encoding": "br"}).status_code == 415
        absurd = llm_attributes(input_tokens=10**12)
        absurd["gen_ai.usage.output_tokens"] = "lots"  # the wrong type
        trace, sid = ids(50)
        reply = post(gateway, export_request([make_span(trace, sid, attributes=absurd)]).SerializeToString())
        assert reply.status_code == 200
        flush_ledger(gateway)
        (row,) = ledger_rows(tmp_path / "costspan-ledger.db")
        assert row["cost_nanos"] == 0 and row["usage_source"] == "invalid"
        status = requests.get(f"http://127.0.0.1:{gateway.http.port}/healthz", timeout=5)  # type: ignore[union-attr]
        assert status.status_code == 200


def test_bearer_token_is_required_when_configured(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    yaml_text = gateway_yaml() + f"  auth: {{bearer_token_file: {token}}}\n"
    trace, sid = ids(60)
    body = export_request([make_span(trace, sid, attributes=llm_attributes())]).SerializeToString()
    with running_gateway(tmp_path, yaml_text) as gateway:
        assert post(gateway, body).status_code == 401
        assert post(gateway, body, {**PROTOBUF, "Authorization": "Bearer wrong"}).status_code == 401
        assert post(gateway, body, {**PROTOBUF, "Authorization": "Bearer s3cret"}).status_code == 200


def test_grpc_in_and_grpc_out_with_headers(tmp_path: Path) -> None:
    import grpc
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub

    from tests.fakes.otlp_grpc_receiver import GrpcOtlpReceiver

    trace, sid = ids(70)
    request = export_request([make_span(trace, sid, attributes=llm_attributes())])
    with GrpcOtlpReceiver() as receiver:
        receiver.refuse = 2  # the next hop refuses twice: retried, delivered once
        yaml_text = gateway_yaml(receiver.endpoint, "grpc").replace(
            "    retry:", "    headers: {x-tenant: acme}\n    retry:"
        )
        with running_gateway(tmp_path, yaml_text) as gateway:
            assert gateway.grpc is not None
            with grpc.insecure_channel(f"127.0.0.1:{gateway.grpc.port}") as channel:
                reply = TraceServiceStub(channel).Export(request, timeout=10)
                assert not reply.HasField("partial_success")
                try:
                    channel.unary_unary(
                        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                        request_serializer=None,
                        response_deserializer=None,
                    )(b"\x0a\xff\xff\xff", timeout=10)
                    raise AssertionError("a malformed message was accepted")
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
            deadline = time.monotonic() + 10
            while not receiver.spans() and time.monotonic() < deadline:
                time.sleep(0.02)
            (forwarded,) = receiver.spans()
            assert span_attributes(forwarded)["costspan.cost.status"] == "priced"
            assert receiver.metadata[0]["x-tenant"] == "acme"
            assert metric(gateway, "costspan_gateway_spans_received_total", transport="grpc") == 1


def test_attributes_written_on_a_span_are_what_the_protobuf_api_would_write() -> None:
    """The gateway merges attributes serialized once (floats field by field): they must read back,
    and compare, exactly as if set field by field, in order, overwriting the span's own where it
    has the key."""
    values = {
        "costspan.project": "naïve ✓",
        "gen_ai.request.model": "gpt-4o",  # the span has it: overwritten in place
        "n": -5,
        "big": 2**63 - 1,
        "zero": 0,
        "usd": 0.000123,
        "none_usd": 0.0,
        "on": True,
        "off": False,
        "as_text": Decimal("1.50"),
        "long": "p" * 10_000,  # past the cached length: serialized each time, never kept
    }
    trace, sid = ids(80)
    span = make_span(trace, sid, attributes=llm_attributes())
    expected = make_span(trace, sid, attributes=llm_attributes())
    expected.start_time_unix_nano, expected.end_time_unix_nano = span.start_time_unix_nano, span.end_time_unix_nano
    for _ in range(2):  # the second time from the cache
        written, reference = Span(), Span()
        written.CopyFrom(span)
        reference.CopyFrom(expected)
        set_attributes(written, values, span_attributes(written))
        for pair in reference.attributes:
            if pair.key in values:
                set_value(pair.value, values[pair.key])
        for key, value in values.items():
            if key not in span_attributes(expected):
                pair = reference.attributes.add()
                pair.key = key
                set_value(pair.value, value)
        assert written == reference
        assert span_attributes(written)["costspan.project"] == "naïve ✓"
        assert span_attributes(written)["on"] is True and span_attributes(written)["n"] == -5
    cached = values_module._cached.cache_info().currsize
    set_attributes(Span(), {"costspan.project": "q" * 10_000}, {})
    assert values_module._cached.cache_info().currsize == cached
    with pytest.raises(ValueError):
        set_attributes(Span(), {"huge": 2**64}, {})


def test_the_shipped_example_configurations_load() -> None:
    import yaml

    from costspan.gateway.config import load
    from costspan.settings import load_settings

    examples = Path(__file__).parent.parent / "examples"
    settings = load_settings({"COSTSPAN_CONFIG": str(examples / "costspan-gateway.yaml")})
    config = load(settings, env={})
    assert config.forward.endpoint == "http://127.0.0.1:14318/v1/traces"
    assert config.attribution["project"] == ("k8s.namespace.name",)
    collector = yaml.safe_load((examples / "collector-gateway.yaml").read_text())
    assert collector["exporters"]["otlphttp/costspan"]["endpoint"] == "http://127.0.0.1:4318"
    assert "ai.model.id" in collector["connectors"]["routing"]["table"][0]["condition"]


def test_a_bad_gateway_setting_names_the_file_key_and_problem(tmp_path: Path) -> None:
    from costspan.errors import ConfigError
    from costspan.gateway.config import load
    from costspan.settings import load_settings

    config = tmp_path / "costspan.yaml"
    for text, key in (
        ("gateway:\n  forwrd: {}\n", "gateway.forwrd"),
        ("gateway:\n  http: nowhere\n", "gateway.http"),
        ("gateway:\n  forward: {endpoint: ftp://x}\n", "gateway.forward.endpoint"),
        ("gateway:\n  limits: {queue_spans: -1}\n", "gateway.limits.queue_spans"),
    ):
        config.write_text(text)
        with pytest.raises(ConfigError) as caught:
            load(load_settings({"COSTSPAN_CONFIG": str(config)}), env={})
        assert caught.value.source == str(config) and caught.value.key == key
    with pytest.raises(ConfigError, match="--forward-protocol"):
        load(load_settings({}), {"protocol": "thrift"}, env={})
