"""The notify fan-out benchmark runs end to end on a small trust, with one
and two notify instances (no timing is asserted)."""

from __future__ import annotations

from bench import notify_fanout


def test_notify_bench_tells_everyone_once_and_reports_rates_beside_baselines() -> None:
    """50 staff: every person gets one notification and one email, in both
    configurations, and every rate and ratio is above 0."""
    result = notify_fanout.measure(
        staff=50, schools=2, instances=(1, 2), timeout=60, stall=30
    )

    assert [run["instances"] for run in result["runs"]] == [1, 2]
    for run in result["runs"]:
        told = run["outcome"]
        assert run["staff"] == 50
        assert run["problems"] == []
        assert told["notifications"] == told["notified_people"] == 50
        assert told["emails_by_status"] == {"sent": 50}
        assert told["sink_messages"] == told["sink_recipients"] == 50
        assert told["processed_events"] == 50 and told["failed_events"] == 0
        assert run["open_cycle_rpc_s"] > 0
        for waited in (run["all_stored_s"], run["all_sent_s"]):
            assert 0 < waited["from_return"] <= waited["from_start"]
        assert run["notify_events_per_s"] > 0 and run["emails_per_s"] > 0
        assert run["baseline_rpc_sequential"]["rate"] > 0
        assert run["baseline_rpc_concurrent"]["rate"] > 0
        assert run["baseline_raw_ack"]["rate"] > 0
        assert all(ratio > 0 for ratio in run["ratios"].values())
        assert told["told_in_app_s"]["max"] is not None
        assert told["emailed_s"]["max"] > 0
    assert "2 notify" in notify_fanout.report(result)
