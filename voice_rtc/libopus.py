"""libopus itself, through ctypes: an encoder or decoder is libopus's own state (31 KB and
18 KB for mono) in a buffer Python owns, and a call is one C call with the GIL released.

PyAV's codec context around the same encoder costs half a megabyte per stream (its frame
adapter, a filter graph), which for a session's speech is most of the session's memory. The
library loaded is the copy PyAV ships (the one its own encoder uses), else the system's.
"""

import ctypes
import ctypes.util
from functools import cache
from pathlib import Path
from typing import Final

import av

APPLICATION_VOIP: Final = 2048
_SET_BITRATE: Final = 4002
_SET_COMPLEXITY: Final = 4010
_SET_INBAND_FEC: Final = 4012
_SET_PACKET_LOSS_PERC: Final = 4014
_GET_LOOKAHEAD: Final = 4027
MAX_PACKET_BYTES: Final = 1275  # the largest a single frame can code to
MAX_PACKET_MS: Final = 120  # the most audio one packet can hold


class OpusError(RuntimeError):
    """libopus said no (its own message), or is not there at all."""


@cache
def library() -> ctypes.CDLL:
    bundled = sorted((Path(av.__file__).parent.parent / "av.libs").glob("libopus-*.so*"))
    path = str(bundled[0]) if bundled else ctypes.util.find_library("opus")
    if path is None:
        raise OpusError("libopus not found: neither PyAV's copy nor a system libopus0")
    lib = ctypes.CDLL(path)
    c_int, c_void_p, c_char_p = ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p
    lib.opus_encoder_get_size.argtypes = [c_int]
    lib.opus_decoder_get_size.argtypes = [c_int]
    lib.opus_encoder_init.argtypes = [c_void_p, ctypes.c_int32, c_int, c_int]
    lib.opus_decoder_init.argtypes = [c_void_p, ctypes.c_int32, c_int]
    lib.opus_encode.argtypes = [c_void_p, c_char_p, c_int, c_char_p, ctypes.c_int32]
    lib.opus_decode.argtypes = [c_void_p, c_char_p, ctypes.c_int32, c_char_p, c_int, c_int]
    lib.opus_strerror.restype = c_char_p
    if hasattr(lib, "opus_packet_has_lbrr"):  # libopus 1.5 and later
        lib.opus_packet_has_lbrr.argtypes = [c_char_p, ctypes.c_int32]
    return lib


def _check(result: int) -> int:
    if result < 0:
        raise OpusError(library().opus_strerror(result).decode())
    return result


class Encoder:
    """One mono stream of 16-bit frames in, one packet per frame out."""

    def __init__(self, rate: int, application: int = APPLICATION_VOIP) -> None:
        self._lib = lib = library()
        self._state = ctypes.create_string_buffer(lib.opus_encoder_get_size(1))
        _check(lib.opus_encoder_init(self._state, rate, 1, application))
        self._out = ctypes.create_string_buffer(MAX_PACKET_BYTES)  # reused: one packet at a time

    def configure(self, bitrate: int, complexity: int, fec: bool) -> None:
        """Variable bitrate stays on (libopus's default), as PyAV's encoder had it."""
        self._set(_SET_BITRATE, bitrate)
        self._set(_SET_COMPLEXITY, complexity)
        self._set(_SET_INBAND_FEC, int(fec))

    def expect_loss(self, percent: int) -> None:
        """The packet loss to code for: with FEC on, above 0 (at a rate that allows it) the
        packets carry LBRR, each the previous frame's redundant copy."""
        self._set(_SET_PACKET_LOSS_PERC, percent)

    def _set(self, request: int, value: int) -> None:
        _check(self._lib.opus_encoder_ctl(self._state, request, ctypes.c_int32(value)))

    @property
    def lookahead(self) -> int:
        """Samples (at the encoder's rate) the codec holds back: its delay."""
        value = ctypes.c_int32()
        _check(self._lib.opus_encoder_ctl(self._state, _GET_LOOKAHEAD, ctypes.byref(value)))
        return value.value

    def encode(self, pcm: bytes) -> bytes:
        size = _check(
            self._lib.opus_encode(self._state, pcm, len(pcm) // 2, self._out, MAX_PACKET_BYTES)
        )
        return ctypes.string_at(self._out, size)


def has_lbrr(packet: bytes) -> bool:
    """Does the packet carry in-band FEC (LBRR: a redundant copy of the frame before)?"""
    lib = library()
    if not hasattr(lib, "opus_packet_has_lbrr"):
        raise OpusError("this libopus predates opus_packet_has_lbrr (1.5)")
    return _check(lib.opus_packet_has_lbrr(packet, len(packet))) == 1


class Decoder:
    """Packets back to mono 16-bit PCM at `rate` (8, 12, 16, 24 or 48 kHz)."""

    def __init__(self, rate: int) -> None:
        self._lib = lib = library()
        self._state = ctypes.create_string_buffer(lib.opus_decoder_get_size(1))
        _check(lib.opus_decoder_init(self._state, rate, 1))
        self._capacity = rate * MAX_PACKET_MS // 1000  # samples
        self._out = ctypes.create_string_buffer(self._capacity * 2)  # reused: one at a time

    def decode(self, packet: bytes) -> bytes:
        got = _check(
            self._lib.opus_decode(self._state, packet, len(packet), self._out, self._capacity, 0)
        )
        return ctypes.string_at(self._out, got * 2)

    def recover(self, next_packet: bytes | None, samples: int) -> bytes:
        """A lost packet's `samples`: rebuilt from the FEC (LBRR) in the packet after it where
        that carries any, else concealed (libopus's PLC), as a receiver's jitter buffer does."""
        data, size, fec = (next_packet, len(next_packet), 1) if next_packet else (None, 0, 0)
        got = _check(self._lib.opus_decode(self._state, data, size, self._out, samples, fec))
        return ctypes.string_at(self._out, got * 2)
