"""Part of `--quality`: how the speech survives random packet loss, with the FEC a lossy link
gets (its receiver reports loss) against the coding a clean link gets (no FEC).

Offline, through the codec alone: the same eSpeak NG speech encoded both ways with the server's
settings, packets dropped at random (the same ones both ways, a few seeded runs), and decoded
as a receiver does: a lost packet rebuilt from the next one's FEC when that arrived, else
concealed. Scored with PESQ wide-band like the rest of the quality check.
"""

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .. import libopus
from ..audio import SILENT_FRAME, Reframer
from ..config import Settings
from ..fec import LinkLoss
from ..media import opus_settings
from ..opus import OPUS_FRAME_SAMPLES, OPUS_RATE, OpusFrameEncoder

LOSS_PERCENTS = (0, 2, 5, 10, 20)
RUNS = 4  # seeded loss patterns per figure


@dataclass(frozen=True)
class LossScore:
    loss_percent: int
    pesq_wb_fec: float  # coded as for a link that reports loss
    pesq_wb_clean_coding: float  # coded as for a clean link


def encode(pcm: bytes, settings: Mapping[str, str], lossy_link: bool) -> list[bytes]:
    reframer, link = Reframer(), LinkLoss()
    frames = [*reframer.push(pcm), *reframer.flush(), *[SILENT_FRAME] * 5]  # the tail's way out
    if lossy_link:
        link.report(1.0, now=0.0)
    encoder = OpusFrameEncoder(opus_settings(Settings.model_validate(dict(settings))), link)
    packets = encoder.encode(frames)
    link.reset()
    return packets


def received(packets: Sequence[bytes], lost: set[int]) -> np.ndarray:
    """What a receiver plays of `packets` when those numbered in `lost` never came, at 16 kHz."""
    decoder, pcm = libopus.Decoder(OPUS_RATE), bytearray()
    for n, packet in enumerate(packets):
        if n not in lost:
            pcm += decoder.decode(packet)
            continue
        following = packets[n + 1] if n + 1 < len(packets) and n + 1 not in lost else None
        pcm += decoder.recover(following, OPUS_FRAME_SAMPLES)
    return np.frombuffer(bytes(pcm), dtype="<i2").astype(np.float64) / 32768


def under_loss(
    pcm: bytes, settings: Mapping[str, str], pesq_wb: Callable[[np.ndarray], float]
) -> list[LossScore]:
    """`pesq_wb`: the score of what was received (16 kHz) against the original."""
    with_fec, without = encode(pcm, settings, True), encode(pcm, settings, False)
    scores = []
    for percent in LOSS_PERCENTS:
        fec, clean = [], []
        for seed in range(RUNS):
            rng = random.Random(seed)
            lost = {n for n in range(len(with_fec)) if rng.random() < percent / 100}
            fec.append(pesq_wb(received(with_fec, lost)))
            clean.append(pesq_wb(received(without, lost)))
        scores.append(LossScore(percent, float(np.mean(fec)), float(np.mean(clean))))
    return scores


def format_under_loss(scores: Sequence[LossScore]) -> list[str]:
    lines = ["under random loss (offline, the codec alone; PESQ-WB, mean of seeded runs):"]
    lines.append("  loss    FEC (a link reporting loss)    no FEC (a clean link's coding)")
    for s in scores:
        lines.append(
            f"  {s.loss_percent:>3}%    {s.pesq_wb_fec:.2f}{'':27}{s.pesq_wb_clean_coding:.2f}"
        )
    return lines
