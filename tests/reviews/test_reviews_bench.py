"""The reviews report benchmark runs end to end on a tiny trust (no timing is
asserted)."""

from __future__ import annotations

from bench import reviews_report


def test_the_report_bench_seeds_times_and_reports_its_ratio():
    """Two schools of ten: every review is in the report, and both figures print."""
    result = reviews_report.measure(schools=2, staff=20, runs=2)
    assert result["seed"]["reviews"] == 20
    assert result["seed"]["objectives"] == 80 and result["seed"]["observations"] == 60
    assert result["reviews_in_report"] == 20 and result["schools_in_report"] == 2
    assert result["ratio"] > 0
    assert "one hand-written SQL query" in reviews_report.report_text(result)
