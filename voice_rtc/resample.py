"""Streaming polyphase resampling between 22050 Hz frames and the rate Opus codes them at.

A stream keeps only its last few input samples; the filter bank is computed once per rate
pair and shared by every stream (libswresample through PyAV builds a bank and a filter graph
per stream: 130-450 KB each, most of a speaking session's memory). The filter is a
Kaiser-windowed sinc cut off at the lower rate's Nyquist (as `scipy.signal.resample_poly`
designs it), applied causally, so each block of input gives exactly `len * up / down` samples
out and a frame in is a frame out; the cost is the filter's group delay, `delay` output samples
(a millisecond).

An output depends on a few dozen inputs only, so the bank is cut into groups of neighbouring
outputs, each with the short run of inputs that reaches them: ten small matrix products per
block at 22050 -> 16000 Hz, a fifth of the multiplications of one product over the whole
period, and a quarter of its time (1.1 against 4.0 µs a frame, in blocks of 50).
"""

from dataclasses import dataclass
from functools import cache
from math import gcd

import numpy as np
from numpy.lib.stride_tricks import as_strided

# Zero crossings of the sinc each side, and the window's shape: ~88 dB signal-to-noise across
# the speech band, as libswresample's default gives.
_HALF_LENGTH = 16
_KAISER_BETA = 8.0
_GROUP_OUTPUTS = 32  # at most, per group: fewer calls against fewer zeros multiplied


def _periods_matrix(up: int, down: int) -> np.ndarray:
    """Every `down` samples in give `up` out, each with its own phase of the filter; one
    period's inputs (and the filter's reach before them) times this matrix are its outputs."""
    half = _HALF_LENGTH * max(up, down)
    span = np.arange(-half, half + 1)
    taps = np.sinc(span / max(up, down)) * np.kaiser(2 * half + 1, _KAISER_BETA)
    taps *= up / taps.sum()  # unity gain at DC, after the zeros `up` stuffs in
    reach = -(-len(taps) // up)  # input samples one output depends on
    padded = np.zeros(reach * up)
    padded[: len(taps)] = taps
    matrix = np.zeros((down + reach - 1, up), dtype=np.float32)
    for output in range(up):
        # at upsampled position output * down: taps[phase + t * up] weighs input (base - t)
        base, phase = divmod(output * down, up)
        matrix[base : base + reach, output] = padded[phase::up][::-1]
    return matrix


@dataclass(frozen=True)
class _Bank:
    """The period's matrix as groups of `weights.shape[2]` outputs; group g reads the
    `weights.shape[1]` inputs from `g * step` on (of the period's `inputs`)."""

    weights: np.ndarray  # (groups, inputs read, outputs), float32
    step: int
    inputs: int


@cache
def _bank(up: int, down: int) -> _Bank:
    matrix = _periods_matrix(up, down)
    size = max(d for d in range(1, _GROUP_OUTPUTS + 1) if up % d == 0)
    groups = [matrix[:, g : g + size] for g in range(0, up, size)]
    # Group g's first input is at least g * step (floor(g * x) >= g * floor(x)); its window is
    # as long as the widest group's reach from there.
    step = size * down // up
    read = max(
        np.flatnonzero(group.any(axis=1))[-1] + 1 - g * step for g, group in enumerate(groups)
    )
    if (len(groups) - 1) * step + read > len(matrix):
        raise ValueError(f"no grouping of {up}/{down} fits its period")  # not for these rates
    weights = np.stack([group[g * step : g * step + read] for g, group in enumerate(groups)])
    return _Bank(np.ascontiguousarray(weights), step, len(matrix))


class Resampler:
    """16-bit mono PCM from one rate to another, block by block, exactly `up / down` as many
    samples out as in (blocks must be a whole number of `down` samples)."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        g = gcd(from_rate, to_rate)
        up, self._down = to_rate // g, from_rate // g
        self._bank = _bank(up, self._down)
        self._history = np.zeros(self._bank.inputs - self._down, dtype=np.float32)
        self.delay = _HALF_LENGTH * max(up, self._down) / self._down  # in output samples

    def push(self, pcm: bytes) -> bytes:
        block = np.frombuffer(pcm, dtype="<i2")
        if len(block) % self._down:
            raise ValueError(f"blocks of whole {self._down}-sample periods only")
        history = len(self._history)
        buffer = np.empty(history + len(block), dtype=np.float32)
        buffer[:history] = self._history
        buffer[history:] = block
        # each group's inputs in every period, as a view: (groups, periods, inputs read)
        weights, step = self._bank.weights, buffer.strides[0]
        windows = as_strided(
            buffer,
            (len(weights), len(block) // self._down, weights.shape[1]),
            (self._bank.step * step, self._down * step, step),
            writeable=False,
        )
        out = np.matmul(windows, weights).transpose(1, 0, 2).reshape(-1)  # period by period
        self._history = buffer[len(block) :].copy()  # a copy: a view would keep the block
        np.rint(out, out=out)
        np.clip(out, -32768, 32767, out=out)
        pcm_out: bytes = out.astype("<i2").tobytes()
        return pcm_out
