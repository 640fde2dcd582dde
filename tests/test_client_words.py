"""The Python client's `word` events: the tracker (voice_rtc/client/words.py) case by case, as
the browser's (client/test/word-timing.test.js), and a real server with eSpeak NG's word
timings, a Python client hearing each word of a sentence in order as its audio plays, over
WebRTC and over the WebSocket."""

import time
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import StartServer
from tests.listener import Listener
from tests.signal_analysis import voiced_span
from voice_rtc.client import TransportKind, Word
from voice_rtc.client.playback import FrameId
from voice_rtc.client.words import (
    RtpSeqMap,
    TimedWord,
    Utterance,
    WordTimeline,
    WordTracker,
    word_of,
)
from voice_rtc.protocol import RTP_TICKS_PER_FRAME as TICKS

TEXT = "Hello there, world."
# As eSpeak NG places them: offsets into TEXT, the frame each word's audio begins at.
WORDS: list[TimedWord] = [
    {"text": "Hello", "start": 0, "end": 5, "frame": 1},
    {"text": "there", "start": 6, "end": 11, "frame": 14},
    {"text": "world", "start": 13, "end": 18, "frame": 30},
]


def timeline() -> WordTimeline:
    """A timeline holding one utterance (id 7, from seq 100) with WORDS."""
    words = WordTimeline()
    words.started({"utterance_id": 7, "seq": 100})
    words.add_words({"utterance_id": 7, "words": WORDS})
    return words


def text_of(word: Word | None) -> str | None:
    return None if word is None else word.text


def test_a_frame_index_is_in_the_last_word_to_begin_at_or_before_it() -> None:
    utterance = Utterance(7, seq=0, words=WORDS)
    assert word_of(utterance, 0) is None  # the silence before the first word
    assert word_of(utterance, 1) == Word(utterance_id=7, index=0, start=0, end=5, text="Hello")
    assert text_of(word_of(utterance, 13)) == "Hello"
    assert getattr(word_of(utterance, 14), "index", None) == 1
    assert text_of(word_of(utterance, 29)) == "there"
    assert getattr(word_of(utterance, 30), "index", None) == 2
    assert text_of(word_of(utterance, 500)) == "world"  # until the utterance ends
    assert word_of(Utterance(7, seq=0), 5) is None  # a voice without word timings


def test_a_seq_names_the_utterance_and_the_frame_within_it() -> None:
    words = timeline()
    assert words.playing(100) is None
    assert text_of(words.playing(101)) == "Hello"
    assert text_of(words.playing(114)) == "there"
    assert words.playing(99) is None  # before the utterance
    words.started({"utterance_id": 8, "seq": 150})
    words.add_words(
        {"utterance_id": 8, "words": [{"text": "Next", "start": 0, "end": 4, "frame": 0}]}
    )
    assert words.playing(150) == Word(utterance_id=8, index=0, start=0, end=4, text="Next")


def test_words_arriving_in_several_events_or_again_are_kept_once_and_in_order() -> None:
    words = WordTimeline()
    words.started({"utterance_id": 7, "seq": 100})
    words.add_words({"utterance_id": 7, "words": WORDS[:2]})
    assert text_of(words.playing(135)) == "there"  # the rest is not known yet
    words.add_words({"utterance_id": 7, "words": WORDS[1:]})  # 'there' again
    assert [getattr(words.playing(seq), "index", None) for seq in (101, 114, 130)] == [0, 1, 2]


def test_words_come_before_their_utterance_starts_and_apply_once_it_does() -> None:
    words = WordTimeline()
    words.add_words({"utterance_id": 7, "words": WORDS})
    assert words.playing(101) is None  # where it starts is not known yet
    words.started({"utterance_id": 7, "seq": 100})
    assert text_of(words.playing(101)) == "Hello"
    words.add_words({"utterance_id": 8, "words": WORDS})
    words.ended({"utterance_id": 8, "frames": 0})  # cancelled before it started: nothing to play
    assert len(words) == 1


def test_an_ended_utterance_has_no_word_past_its_last_frame_and_is_forgotten_once_played_out() -> (
    None
):
    words = timeline()
    words.ended({"utterance_id": 7, "frames": 40})  # seqs 100..139
    assert text_of(words.playing(139)) == "world"
    assert len(words) == 1
    assert words.playing(140) is None
    assert len(words) == 0


def test_what_ended_before_it_played_is_kept_while_nothing_plays() -> None:
    words = timeline()
    words.ended({"utterance_id": 7, "frames": 40})  # the server sends ahead of playback
    assert words.playing(None) is None  # nothing played yet
    assert len(words) == 1
    assert text_of(words.playing(101)) == "Hello"
    assert text_of(words.playing(139)) == "world"
    assert words.playing(None) is None  # ran dry after its last frame: played out
    assert len(words) == 0


def test_a_cancelled_utterance_goes_once_a_later_one_plays_the_oldest_go_beyond_the_cap() -> None:
    words = timeline()
    words.ended({"utterance_id": 7, "frames": 20})  # cut short; its frames never played
    words.playing(None)
    assert len(words) == 1
    words.started({"utterance_id": 8, "seq": 120})
    words.playing(120)
    assert len(words) == 1  # only 8

    many = WordTimeline()
    for utterance_id in range(1, 101):
        many.started({"utterance_id": utterance_id, "seq": utterance_id * 10})
    assert len(many) == 32
    many.add_words({"utterance_id": 100, "words": WORDS})
    assert getattr(many.playing(1001), "utterance_id", None) == 100
    many.clear()
    assert len(many) == 0


def test_an_rtp_timestamp_plays_the_seq_of_its_stretch_of_speech_a_frame_per_960_ticks() -> None:
    assert TICKS == 960
    syncs = RtpSeqMap()
    assert syncs.seq_at(1, 5000) is None  # no sync yet
    syncs.add({"transport_id": 1, "rtp_timestamp": 5000, "seq": 40})
    assert syncs.seq_at(1, 5000) == 40
    assert syncs.seq_at(1, 5000 + TICKS - 1) == 40
    assert syncs.seq_at(1, 5000 + 10 * TICKS) == 50
    assert syncs.seq_at(1, 4999) is None  # before the first stretch
    assert syncs.seq_at(2, 5000) is None  # another transport's clock


def test_the_latest_sync_at_or_before_the_timestamp_applies_the_next_bounds_the_stretch() -> None:
    syncs = RtpSeqMap()
    syncs.add({"transport_id": 1, "rtp_timestamp": 0, "seq": 0})  # frames 0..9, then silence
    syncs.add({"transport_id": 1, "rtp_timestamp": 100 * TICKS, "seq": 10})
    assert syncs.seq_at(1, 9 * TICKS) == 9
    assert syncs.seq_at(1, 10 * TICKS) is None  # the silence between the stretches
    assert syncs.seq_at(1, 99 * TICKS) is None
    assert syncs.seq_at(1, 100 * TICKS) == 10
    assert syncs.seq_at(1, 105 * TICKS) == 15  # the last stretch runs on, unbounded


def test_rtp_timestamps_wrap_around_2_to_the_32() -> None:
    syncs = RtpSeqMap()
    before = 2**32 - 2 * TICKS  # two frames before the wrap
    syncs.add({"transport_id": 3, "rtp_timestamp": before, "seq": 7})
    assert syncs.seq_at(3, before + TICKS) == 8
    assert syncs.seq_at(3, 0) == 9  # wrapped
    assert syncs.seq_at(3, 5 * TICKS) == 14
    syncs.add({"transport_id": 3, "rtp_timestamp": 10 * TICKS, "seq": 20})  # after the wrap
    assert syncs.seq_at(3, 2**32 - TICKS) == 8  # the first applies, before the wrap
    assert syncs.seq_at(3, 11 * TICKS) == 21


def test_a_new_transport_replaces_the_old_ones_syncs_only_a_few_are_kept() -> None:
    syncs = RtpSeqMap()
    syncs.add({"transport_id": 1, "rtp_timestamp": 0, "seq": 0})
    syncs.add({"transport_id": 2, "rtp_timestamp": 777, "seq": 30})
    assert syncs.seq_at(1, 0) is None
    assert syncs.seq_at(2, 777) == 30
    for i in range(1, 41):
        syncs.add({"transport_id": 2, "rtp_timestamp": 777 + i * 100 * TICKS, "seq": 30 + i * 10})
    assert syncs.seq_at(2, 777 + 40 * 100 * TICKS + TICKS) == 431
    assert syncs.seq_at(2, 777 + TICKS) is None  # long forgotten


def test_rtp_time_sync_and_timeline_together_the_word_an_rtp_timestamp_plays() -> None:
    syncs = RtpSeqMap()
    words = timeline()
    origin = 2**32 - 20 * TICKS  # the utterance's audio wraps the RTP clock

    def word_at(rtp: int) -> str | None:
        return text_of(words.playing(syncs.seq_at(1, rtp)))

    syncs.add({"transport_id": 1, "rtp_timestamp": origin, "seq": 100})
    assert word_at(origin + TICKS) == "Hello"
    assert word_at((origin + 14 * TICKS) % 2**32) == "there"
    assert word_at((origin + 31 * TICKS) % 2**32) == "world"


def told_by(words: WordTimeline) -> Any:
    def told(seq: int | None) -> list[str | None]:
        return [text_of(word) for word in words.follow(seq)]

    return told


def test_follow_tells_each_word_once_in_order_even_those_passed_between_two_looks() -> None:
    words = timeline()
    told = told_by(words)
    assert told(None) == []  # nothing played, nothing told
    assert told(100) == []  # before the first word
    assert told(101) == ["Hello"]
    assert told(105) == []  # the same word
    assert told(135) == ["there", "world"]  # 'there' passed unseen
    assert told(133) == []  # a frame replayed by a new transport: no going back
    assert text_of(words.current) == "world"
    assert told(None) == [None]  # paused
    assert told(136) == ["world"]
    words.clear()  # a new session
    assert told(None) == [None]
    assert told(None) == []


def test_the_words_of_a_cancelled_utterance_are_not_told() -> None:
    cancelled = False
    words = WordTimeline(lambda _utterance: cancelled)
    words.started({"utterance_id": 7, "seq": 100})
    words.add_words({"utterance_id": 7, "words": WORDS})
    assert text_of(words.follow(101)[0]) == "Hello"
    cancelled = True  # its frames are being flushed
    assert words.follow(102) == [None]


def test_playback_that_skips_past_an_utterances_end_tells_the_words_it_passed_then_none() -> None:
    words = timeline()
    words.ended({"utterance_id": 7, "frames": 40})  # seqs 100..139
    told = told_by(words)
    assert told(101) == ["Hello"]
    # Playback that skipped ahead, then silence: 'there' and 'world' were heard, at speed.
    assert told(180) == ["there", "world", None]
    assert told(181) == []


def test_the_next_utterance_starts_after_the_last_ones_words_a_cut_one_keeps_its_unplayed() -> None:
    words = timeline()
    words.ended({"utterance_id": 7, "frames": 20})  # stopped after frame 19: 'world' never played
    words.started({"utterance_id": 8, "seq": 120})
    words.add_words(
        {"utterance_id": 8, "words": [{"text": "Next", "start": 0, "end": 4, "frame": 0}]}
    )

    def told(seq: int) -> list[str | None]:
        return [f"{w.utterance_id}:{w.text}" if w else None for w in words.follow(seq)]

    assert told(101) == ["7:Hello"]
    assert told(121) == ["7:there", "8:Next"]


def test_the_tracker_takes_the_servers_messages_and_either_transports_position() -> None:
    tracker = WordTracker()
    tracker.receive({"type": "utterance_words", "event_id": 1, "utterance_id": 7, "words": WORDS})
    tracker.receive({"type": "utterance_started", "event_id": 2, "utterance_id": 7, "seq": 100})
    tracker.receive({"type": "pong", "ts": 1.0})  # nothing of words: ignored
    # Over the WebSocket a frame names its seq.
    assert [text_of(w) for w in tracker.follow({"transport_id": 1, "seq": 101})] == ["Hello"]
    assert tracker.current == Word(utterance_id=7, index=0, start=0, end=5, text="Hello")
    # Over WebRTC an RTP timestamp, which a sync of that transport places.
    sync = {"transport_id": 2, "rtp_timestamp": 5000, "seq": 100, "utterance_id": 7, "index": 0}
    tracker.receive({"type": "sync", **sync})
    assert tracker.follow({"transport_id": 2, "rtp_timestamp": 5000 + 14 * TICKS})[0] == Word(
        utterance_id=7, index=1, start=6, end=11, text="there"
    )
    assert tracker.follow({"transport_id": 3, "rtp_timestamp": 5000 + 30 * TICKS}) == [None]
    tracker.receive({"type": "utterance_ended", "event_id": 3, "utterance_id": 7, "frames": 40})
    assert [text_of(w) for w in tracker.follow({"transport_id": 1, "seq": 139})] == ["world"]
    assert tracker.follow(None) == [None]
    assert len(tracker.timeline) == 0  # played out
    tracker.clear()
    assert tracker.follow({"transport_id": 2, "rtp_timestamp": 5000}) == []


SENTENCE = "Seven quick brown foxes jumped over a sleeping dog."
FRAME_S = 0.02


@dataclass(frozen=True)
class Told:
    """A word event, and where playback was as it came."""

    word: Word | None
    at: float  # time.monotonic()
    frames: int  # frames the client had played by then
    frame_id: FrameId | None  # the last one's (seq, utterance, index): WebSocket frames say


@pytest.mark.parametrize("transport", ["webrtc", "websocket"])
async def test_a_client_is_told_each_word_of_a_sentence_in_order_as_its_audio_plays(
    start_server: StartServer, transport: TransportKind
) -> None:
    server = await start_server(tts="espeak")
    told: list[Told] = []
    async with Listener(server.url, transport=transport) as listener:
        recording = listener.recording

        def keep(word: Word | None) -> None:
            last = recording.frame_ids[-1] if recording.frame_ids else None
            told.append(Told(word, time.monotonic(), len(recording.arrivals), last))

        listener.on("word", keep)
        ended = await listener.say(SENTENCE, tail=1.0)
        assert listener.current_word is None  # silence now
        assert listener.words == [t.word for t in told]
    assert ended["reason"] == "done"
    utterance_id = ended["utterance_id"]
    timed = [w for m in listener.messages if m["type"] == "utterance_words" for w in m["words"]]
    assert [w["text"] for w in timed] == SENTENCE.split(), timed  # punctuation and all

    # Every word told, in order, each once, as the browser's Word; then None: silence.
    heard = [t for t in told if t.word is not None]
    expected = [
        Word(utterance_id, index, w["start"], w["end"], w["text"]) for index, w in enumerate(timed)
    ]
    assert [t.word for t in heard] == expected, told
    assert told[-1].word is None, told
    assert all(SENTENCE[w.start : w.end] == w.text for w in expected)

    # Each told as its audio plays. Over the WebSocket the frame just played names itself: the
    # word's first (or one just after it).
    if transport == "websocket":
        for t, w in zip(heard, timed, strict=True):
            assert t.frame_id is not None and t.frame_id[1] == utterance_id, t
            assert w["frame"] <= t.frame_id[2] <= w["frame"] + 2, (t, w)
    # Either way, in frames played: the first word as the audio becomes audible, each next one
    # as many frames on as the timings say, and None once the speech is over.
    start_s, end_s = voiced_span(recording.pcm)
    first = heard[0].frames - 1  # the frame played as the first word was told
    assert -3 <= round(start_s / FRAME_S) - first <= 12, (start_s, heard[0])
    for t, w in zip(heard, timed, strict=True):
        assert abs((t.frames - heard[0].frames) - (w["frame"] - timed[0]["frame"])) <= 3, (t, w)
    assert told[-1].frames - 1 >= round(end_s / FRAME_S) - 3, (end_s, told[-1])
    # And in time (generous bounds: the machine is shared).
    for t, w in zip(heard, timed, strict=True):
        due_s = (w["frame"] - timed[0]["frame"]) * FRAME_S
        assert abs((t.at - heard[0].at) - due_s) <= 0.3, (t, w, due_s)
