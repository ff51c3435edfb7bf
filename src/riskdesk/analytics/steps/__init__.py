"""Batch steps of the daily cycle, discovered by :func:`riskdesk.analytics.pipeline.steps`.

Each module here defines ``NAME`` (str), ``ORDER`` (int; identify=10, assess=20, rating=30,
control=40, monitor=50) and ``run(engine, as_of, progress=None) -> dict`` returning a small
JSON-able summary. ``riskdesk demo`` and ``riskdesk cycle`` run every step present, in order.
"""
