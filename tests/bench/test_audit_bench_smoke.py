"""The audit ingestion benchmark runs end to end on a small load, in both
modes (no timing is asserted)."""

from __future__ import annotations

from bench import audit_ingest


def test_audit_bench_reports_both_modes_their_ratios_and_verdicts() -> None:
    """A tiny run stores every event and reports rates, ratios and verdicts."""
    result = audit_ingest.measure(events=400, burst=400)
    live, backlog = result["live"], result["backlog"]
    assert live["raw_rate"] > 0 and live["audit_rate"] > 0 and live["ratio"] > 0
    assert live["burst_drained_after_last_publish_s"] >= 0
    assert backlog["raw_rate"] > 0 and backlog["audit_rate"] > 0
    assert backlog["ratio"] > 0 and backlog["audit_queue_left"] == 0
    assert {(v["mode"], v["check"]) for v in result["verdicts"]} >= {
        ("live", "audit events/s >= 2000"),
        ("backlog", "audit/raw ratio >= 0.5"),
    }
    assert "backlog" in audit_ingest.report(result)
