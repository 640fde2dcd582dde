"""In-band FEC where the listener's link loses packets, and full quality where it does not.

Opus's in-band FEC (LBRR) carries a coarse copy of each frame in the next packet, so a decoder
that lost a packet rebuilds it from the one after. The copy comes out of the same bitrate, which
costs the clean channel dearly: eSpeak speech at 28 kbps scores PESQ-WB 4.14 without it and 3.57
with it. Under loss it is what keeps speech intelligible: at 5% random loss 3.07 with it against
2.22, at 10% 2.57 against 1.54 (`python -m voice_rtc.bench --quality`). So, as libwebrtc does,
the encoder is told the loss the listener's own receiver reports (RTCP receiver reports: the
share lost since the last one), and codes FEC only while there is loss.

The estimate goes up at once and comes down slowly: a lossy spell without FEC costs far more than
a few clean seconds with it. It is quantized to on or off, with a step between, so it does not
flap; and "on" tells libopus 1%, whatever the loss: more changes nothing measurable once LBRR is
coded (PESQ within 0.03 at 10% and 20% loss), while at 24 kbps and below libopus answers 3-5% by
coding no LBRR at all and 6-9% by narrowing the audio band (it weighs the rate FEC takes against
the loss it is told; at 24 kbps and 5% loss that cost 2.33 against FEC's 2.76).

Owned by a session's playout; written on the event loop, read by the encoding thread when it
starts a batch (an int: it reads the old value or the new one). Speech already encoded ahead of
playback (up to the lookahead) keeps the coding it had.
"""

import math
from typing import Final

from . import metrics

FEC_ON_LOSS: Final = 0.01  # the smoothed share lost at which FEC goes on...
FEC_OFF_LOSS: Final = 0.004  # ...and below which it goes off again
DECAY_S: Final = 10.0  # how slowly the estimate comes down after the loss stops
FEC_LOSS_PERCENT: Final = 1  # what libopus is told while FEC is on (see the top)


class LinkLoss:
    """How much of what is sent a listener loses, from its receiver reports; and so whether its
    speech is coded with FEC (`coded_loss_percent`, for libopus)."""

    def __init__(self) -> None:
        self.coded_loss_percent = 0
        self._estimate = 0.0  # a share, 0..1
        self._reported_at: float | None = None

    @property
    def estimate(self) -> float:
        return self._estimate

    def report(self, fraction_lost: float, now: float) -> None:
        """A receiver report: `fraction_lost` of the packets since the previous one were lost."""
        if fraction_lost >= self._estimate or self._reported_at is None:
            self._estimate = fraction_lost
        else:
            weight = math.exp(-(now - self._reported_at) / DECAY_S)
            self._estimate = fraction_lost + (self._estimate - fraction_lost) * weight
        self._reported_at = now
        threshold = FEC_OFF_LOSS if self.coded_loss_percent else FEC_ON_LOSS
        self._set(FEC_LOSS_PERCENT if self._estimate >= threshold else 0)

    def reset(self) -> None:
        """A new link (another transport), or none: nothing known about it yet."""
        self._estimate, self._reported_at = 0.0, None
        self._set(0)

    def _set(self, percent: int) -> None:
        if bool(percent) != bool(self.coded_loss_percent):
            metrics.LOSSY_LISTENERS.inc(1 if percent else -1)
        self.coded_loss_percent = percent
