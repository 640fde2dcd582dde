"""The benchmark runs end to end: its own server, two listeners, a sane report."""

import pytest

from voice_rtc.bench.measure import histogram_quantile
from voice_rtc.bench.run import Options, run_bench


def test_histogram_quantile_interpolates_within_buckets() -> None:
    buckets = [(0.001, 50.0), (0.002, 90.0), (0.005, 100.0), (float("inf"), 100.0)]
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.0005)
    assert histogram_quantile(0.7, buckets) == pytest.approx(0.0015)
    assert histogram_quantile(0.5, []) is None


async def test_bench_reports_two_sessions() -> None:
    report = await run_bench(Options(sessions=2, seconds=3, warmup=1))

    assert report.sessions_connected == 2
    assert report.delivery_ratio > 0.9
    assert report.server_speech_frames > 0.9 * report.frames_expected
    assert report.pacing_p99_ms is not None and report.pacing_p99_ms >= 0
    assert report.jitter_p99_ms is not None
    assert report.server_cpu_ms_per_session_s is not None and report.server_cpu_ms_per_session_s > 0
    assert report.server_cpu_percent is not None and report.server_cpu_percent > 0
    assert report.server_rss_mb is not None and report.server_rss_mb > 0
    assert report.client_cpu_percent > 0
