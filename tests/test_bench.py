"""The benchmark: its figures from synthetic packets, the sweep's threshold, the raw WebSocket
client, and short real runs (its own servers, a few listeners, a few seconds) of each transport
against voice-rtc and the reference, each with a complete report. Sanity bounds only: speed is
the benchmark's business, not the tests'."""

import asyncio
import math
from dataclasses import MISSING, fields, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web

from voice_rtc.bench.measure import histogram_quantile, share_within
from voice_rtc.bench.options import Options
from voice_rtc.bench.packets import Delivery, PacketLog, delivery, hist_quantile
from voice_rtc.bench.rawws import RawWebSocket
from voice_rtc.bench.report import Report, format_report, format_side_by_side
from voice_rtc.bench.run import run_targets
from voice_rtc.bench.sweep import capacities, capacity, format_sweep


def test_histogram_quantile_interpolates_within_buckets() -> None:
    buckets = [(0.001, 50.0), (0.002, 90.0), (0.005, 100.0), (float("inf"), 100.0)]
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.0005)
    assert histogram_quantile(0.7, buckets) == pytest.approx(0.0015)
    assert histogram_quantile(0.5, []) is None
    assert share_within(0.002, buckets) == pytest.approx(0.9)


def _rtp_log(arrivals: list[float], first_timestamp: int = 2**32 - 960 * 10) -> PacketLog:
    """A WebRTC listener's log: frame k stamped k x 960 (wrapping), arriving at arrivals[k]."""
    log = PacketLog(48000, media_wrap=2**32, seq_wrap=2**16)
    for k, at in enumerate(arrivals):
        if not math.isnan(at):
            log.add(at, (first_timestamp + 960 * k) % 2**32, (65530 + k) % 2**16, 80, 100)
    return log


def test_delivery_counts_frames_late_lost_and_on_time() -> None:
    arrivals = [100.0 + 0.02 * k + 0.001 for k in range(200)]
    arrivals[50] += 0.05  # 50 ms late
    arrivals[120] = math.nan  # never came
    result = delivery(_rtp_log(arrivals), 100.0, 104.0)

    assert result.expected == 200
    assert result.frames == 199
    assert result.on_time == 198
    assert result.lost == 1  # a hole in the sequence numbers, across their wrap
    assert result.gaps == 1  # the late one (a lost one leaves a hole in media time, no stall)
    assert result.max_gap_s == pytest.approx(0.05)
    assert result.payload_bytes == 199 * 80 and result.wire_bytes == 199 * 100
    assert result.media_s == pytest.approx(4.0)  # the audio they span, the lost frame's too
    p99 = hist_quantile(result.lateness_hist, 0.99)
    assert p99 is not None and p99 <= 0.001
    assert hist_quantile(result.lateness_hist, 1.0) == pytest.approx(0.0501, abs=1e-4)


def test_delivery_of_a_stalled_sender_is_mostly_late() -> None:
    # On time for a second, then frames leave 10% slower than real time.
    arrivals = [0.02 * k if k < 50 else 1.0 + 0.022 * (k - 50) for k in range(300)]
    result = delivery(_rtp_log(arrivals), 0.0, 6.0)
    assert result.expected == 300
    assert result.on_time < 0.5 * result.expected


def test_deliveries_merge() -> None:
    a = delivery(_rtp_log([0.02 * k for k in range(100)]), 0.0, 2.0)
    total = Delivery()
    total.add(a)
    total.add(Delivery.from_json(vars(a)))
    assert (total.sessions, total.expected, total.on_time) == (2, 200, 200)


def _report(**changes: Any) -> Report:
    """A report of a load that held, with `changes`."""
    required = [f for f in fields(Report) if f.default is MISSING and f.default_factory is MISSING]
    base: dict[str, Any] = {f.name: 0 for f in required}
    base.update(
        target="voice-rtc",
        transport="webrtc",
        codec="opus",
        tts="tone",
        placement="test",
        sessions_requested=10,
        sessions_connected=10,
        frames_expected=10000,
        frames_on_time=10000,
        pacing_p99_ms=2.0,
        pacing_bounds_ms=[1.0, 2.0, 5.0, 10.0],
        client_cpu_percent=20.0,
        client_cpu_busiest_percent=20.0,
        client_cores=1,
        client_loop_lag_p99_ms=1.0,
        client_event_loop="asyncio",
        cpu_count=2,
    )
    for name in ("pacing_p50_ms", "jitter_p50_ms", "ttfa_p95_ms", "server_cpu_percent"):
        base[name] = None
    base.update(changes)
    return Report(**base)


def test_a_load_is_held_with_999_per_mille_on_time_and_pacing_p99_under_10_ms() -> None:
    assert _report().held
    assert _report(frames_on_time=9990).held
    assert not _report(frames_on_time=9989).held
    assert not _report(pacing_p99_ms=10.0).held
    assert not _report(pacing_p99_ms=None).held
    assert not _report(sessions_connected=9).held  # refused sessions: not held at that load
    assert not _report(dropped=1).held


def test_load_clients_are_named_the_bottleneck_when_busy_or_lagging() -> None:
    assert _report().client_bound is None
    assert "busy" in (_report(client_cpu_percent=90.0).client_bound or "")
    assert "lag" in (_report(client_loop_lag_p99_ms=12.0).client_bound or "")


def test_sweep_finds_the_largest_load_held() -> None:
    found = capacity("voice-rtc", [(20, True, False), (50, True, False), (100, False, False)])
    assert found.largest_held == 50 and found.not_held_below == []
    noisy = capacity("x", [(20, True, False), (50, False, True), (100, True, False)])
    assert noisy.largest_held == 100
    assert noisy.not_held_below == [50] and noisy.client_bound == [50]
    assert capacity("x", [(20, False, False)]).largest_held is None

    points = [
        (20, _report()),
        (20, _report(target="reference")),
        (50, _report()),
        (50, _report(target="reference", frames_on_time=9000)),
    ]
    assert [(c.target, c.largest_held) for c in capacities(points)] == [
        ("voice-rtc", 50),
        ("reference", 20),
    ]
    text = format_sweep(points)
    assert "largest load held, voice-rtc: 50" in text and "2.50x" in text


async def test_raw_websocket_client_speaks_to_aiohttp() -> None:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_str(msg.data.upper())
                await ws.send_bytes(bytes(range(256)) * 4)  # a 16-bit length
                await ws.ping(b"hi")
                await ws.send_bytes(b"x" * 100_000)  # a 64-bit length
        return ws

    app = web.Application()
    app.add_routes([web.get("/ws", handler)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        ws = await RawWebSocket.connect(f"ws://127.0.0.1:{port}/ws")
        texts: list[str] = []
        binaries: list[bytes] = []
        done = asyncio.Event()
        ws.on_text = texts.append

        def on_binary(data: bytes, _at: float) -> None:
            binaries.append(data)
            if len(binaries) == 2:
                done.set()

        ws.on_binary = on_binary
        ws.send_text("hello, " + "é" * 200)
        await asyncio.wait_for(done.wait(), 5)
        assert texts == ["HELLO, " + "É" * 200]
        assert binaries == [bytes(range(256)) * 4, b"x" * 100_000]
        await ws.close()
        await asyncio.wait_for(ws.closed, 5)
    finally:
        await runner.cleanup()


def _assert_sane(report: Report) -> None:
    assert report.sessions_connected == report.sessions_requested, report.connect_errors
    assert report.dropped == 0
    assert report.frames_expected > 0
    assert report.delivery_ratio > 0.8
    assert report.pacing_p99_ms is not None and report.pacing_p99_ms >= 0
    assert report.jitter_p99_ms is not None and report.client_lateness_p99_ms is not None
    assert report.ttfa_count > 0 and report.ttfa_p50_ms is not None and report.ttfa_p50_ms < 2000
    assert report.server_cpu_ms_per_session_s is not None and report.server_cpu_ms_per_session_s > 0
    assert report.server_rss_per_session_mb is not None
    assert report.server_rss_end_mb is not None and report.server_rss_end_mb > 0
    assert report.speaking_wire_bytes_per_s is not None
    assert 500 < report.speaking_wire_bytes_per_s < 100_000
    assert report.client_cpu_percent > 0 and report.client_loop_lag_p99_ms is not None
    text = format_report(report)
    assert "frames on time" in text and "time to first audio" in text


@pytest.mark.solo
@pytest.mark.parametrize("transport", ["webrtc", "websocket"])
async def test_short_runs_against_voice_rtc_and_the_reference(transport: str) -> None:
    options = Options(sessions=3, seconds=2, warmup=1, probes=1, speaking_fraction=2 / 3)
    options = replace(options, transport="webrtc" if transport == "webrtc" else "websocket")
    reports = await run_targets(options, ["voice-rtc", "reference"])

    assert [r.target for r in reports] == ["voice-rtc", "reference"]
    for report in reports:
        _assert_sane(report)
        assert report.speaking_sessions == 2 and report.probe_sessions == 1
        assert report.silent_packets_per_s is not None
    if transport == "webrtc":
        assert all(r.codec == "opus" for r in reports)
    else:
        assert reports[1].codec == "pcm_s16le"
    table = format_side_by_side(reports)
    assert "voice-rtc / reference" in table and "x" in table


def test_sweep_plot_is_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from voice_rtc.bench.plot import plot_sweep

    points = [(20, _report()), (20, _report(target="reference")), (50, _report(pacing_p99_ms=None))]
    plot_sweep(points, tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").read_bytes().startswith(b"\x89PNG")
