"""The audit ingestion benchmark runs end to end on a small load (no timing
is asserted)."""

from __future__ import annotations

from bench import audit_ingest


def test_audit_bench_reports_both_rates_and_the_burst_drain() -> None:
    """A tiny run stores every event and reports positive rates and a ratio."""
    result = audit_ingest.measure(events=400, burst=400)
    assert result["raw_rate"] > 0
    assert result["audit_rate"] > 0
    assert result["ratio"] > 0
    assert result["burst_drained_after_last_publish_s"] >= 0
