"""The benchmark's quality check: alignment by cross-correlation, and a real PESQ-WB score of
eSpeak speech through voice-rtc's WebRTC and through the reference. Needs the `bench` extra
(pesq, scipy): skipped without it."""

import numpy as np
import pytest

pytest.importorskip("pesq")
pytest.importorskip("scipy")

from voice_rtc.bench.quality import align, format_quality, run_quality


def test_alignment_finds_the_delay() -> None:
    rng = np.random.default_rng(1)
    reference = rng.standard_normal(16000) * 0.1
    recorded = np.concatenate([np.zeros(1234), reference * 0.5, np.zeros(500)])
    segment, delay, correlation = align(reference, recorded)
    assert delay == 1234
    assert correlation == pytest.approx(1.0)
    assert np.allclose(segment, reference * 0.5)


async def test_quality_scores_both_paths_and_speech_under_loss() -> None:
    report = await run_quality({}, text="Please call Stella and ask her to bring these things.")
    assert [s.target for s in report.scores] == ["voice-rtc", "reference"]
    for score in report.scores:
        assert 1.0 <= score.pesq_wb <= 4.65  # a real score; how good is the report's business
        assert score.correlation > 0.5  # aligned on the speech, not on noise
    assert "PESQ-WB" in format_quality(report)
    # Offline, under random loss: FEC (what a lossy link gets) is what keeps the speech.
    by_loss = {s.loss_percent: s for s in report.under_loss}
    clean, lossy = by_loss[0], by_loss[10]
    assert clean.pesq_wb_clean_coding > clean.pesq_wb_fec  # FEC's bits cost a clean link
    assert lossy.pesq_wb_fec > lossy.pesq_wb_clean_coding + 0.3  # and pay back under loss
    assert "under random loss" in format_quality(report)
