"""costspan ledger: one SQLite row per accounted LLM call, and the queries behind the reports.

The ledger is a separate SQLite file from the budget store so that its batched writes never
contend with budget charges. Modules: ``config`` (where and how), ``schema`` (versioned
migrations), ``rows`` (call -> row), ``writer`` (batching thread), ``query``/``report`` (SQL
aggregation), ``export``, ``prune``, ``advise`` and the renderers.
"""
