"""``costspan gateway``: prices and budgets the GenAI spans of any service inside the trace pipeline.

An application or an OpenTelemetry Collector exports OTLP traces to it; it accounts every GenAI span
once (same pricer, budgets, metrics and ledger as in-process), writes the ``costspan.*`` attributes
onto it and forwards every span to the next hop. One module per job:

* :mod:`.config` — the ``gateway:`` YAML section and the command-line overrides;
* :mod:`.payload` — OTLP/HTTP bodies in (content type, gzip, size limits) and responses out;
* :mod:`.values` — OTLP attribute values to Python and back;
* :mod:`.window` — recent spans per trace, so a trace split over requests is counted once;
* :mod:`.claims` — a span delivered twice (retries, replicas) is accounted once, through the store;
* :mod:`.accountant` — decides which spans to charge, accounts them, enriches them;
* :mod:`.intake` — admit, back-pressure, answer, then account on one worker thread;
* :mod:`.senders` / :mod:`.forwarder` — the next hop, with retries and a bounded queue;
* :mod:`.receiver_http` / :mod:`.receiver_grpc` / :mod:`.auth` — the two OTLP receivers;
* :mod:`.selfmetrics` — the gateway's own health figures; :mod:`.service` — lifecycle and drain.
"""
