"""The extraction benchmark script still runs end to end (tiny size; its timings are not judged)."""

from __future__ import annotations

from helpers import run_benchmark


def test_extract_benchmark_reports_rates_ratio_and_memory():
    report = run_benchmark("extract_benchmark", "--events", "20000")
    assert report["events"] > 10_000
    assert report["extract_events_per_s"] > 0 and report["bare_download_events_per_s"] > 0
    expected = report["extract_events_per_s"] / report["bare_download_events_per_s"]
    assert abs(report["ratio_extract_to_bare"] - expected) < 0.01
    pulled = report["events_pull_events_per_s"] / report["bare_download_events_per_s"]
    assert abs(report["ratio_pull_to_bare"] - pulled) < 0.01
    assert 0 < report["peak_rss_mib"] < 1024
