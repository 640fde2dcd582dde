"""The Python client's states and events have the browser library's names and shapes: read from
the declarations the browser library ships (client/types/*.d.ts), field by field, with Python's
spelling (max_attempts for maxAttempts). And the event source behaves as an app expects."""

import logging
import re
import typing
from dataclasses import fields
from typing import get_args

import pytest

from tests.conftest import REPO
from voice_rtc.client import (
    ErrorBody,
    FallbackReason,
    StateDetail,
    TransportEvent,
    TransportKind,
    UtteranceEvent,
    Word,
)
from voice_rtc.client.events import ClientState, EventName, EventSource
from voice_rtc.client.words import Sync, TimedWord

TYPES = REPO / "client" / "types"


def declared_union(file: str, name: str) -> set[str]:
    """The string literals of `export type <name> = "a" | "b" ...;`."""
    text = (TYPES / file).read_text()
    match = re.search(rf"export type {name} = (.*?);", text, re.S)
    assert match, f"{name} is not declared in {file}"
    return set(re.findall(r'"(\w+)"', match.group(1)))


def declared_fields(file: str, name: str) -> set[str]:
    """The property names of `export type <name> = { ... };`, snake_cased."""
    text = (TYPES / file).read_text()
    match = re.search(rf"export type {name} = \{{\n(.*?)\n\}};", text, re.S)
    assert match, f"{name} is not declared in {file}"
    names = re.findall(r"^    (\w+)\??:", match.group(1), re.M)
    return {re.sub(r"(?<!^)([A-Z])", r"_\1", n).lower() for n in names}


def declared_inline_fields(file: str, name: str) -> set[str]:
    """The property names of `export type <name> = { a: ...; b: ...; };`, on its lines or not."""
    text = (TYPES / file).read_text()
    match = re.search(rf"export type {name} = \{{(.*?)\}};", text, re.S)
    assert match, f"{name} is not declared in {file}"
    return set(re.findall(r"(\w+)\??:", match.group(1)))


def typed_dict_keys(cls: type) -> set[str]:
    return set(typing.get_type_hints(cls))


def test_the_states_are_the_browsers() -> None:
    assert set(get_args(ClientState)) == declared_union("voice-client.d.ts", "ClientState")


def test_a_states_detail_has_the_browsers_fields() -> None:
    python = {field.name for field in fields(StateDetail)}
    assert python == declared_fields("voice-client.d.ts", "StateDetail")


def test_the_events_are_the_browsers() -> None:
    assert set(get_args(EventName)) == declared_fields("voice-client.d.ts", "VoiceClientEventMap")


def test_transport_events_and_kinds_are_the_browsers() -> None:
    python = {field.name for field in fields(TransportEvent)}
    assert python == declared_fields("transport-chain.d.ts", "TransportEvent")
    browser_kinds = declared_union("transport-chain.d.ts", "TransportKind")
    assert browser_kinds - set(get_args(TransportKind)) == {"captions"}  # no audio: not here
    assert set(get_args(FallbackReason)) == declared_union("transport-chain.d.ts", "FallbackReason")


def test_utterance_events_and_errors_are_the_browsers() -> None:
    assert typed_dict_keys(UtteranceEvent) == declared_fields("voice-client.d.ts", "UtteranceEvent")
    assert typed_dict_keys(ErrorBody) == declared_fields("errors.d.ts", "ErrorBody")


def test_word_events_are_the_browsers() -> None:
    assert {field.name for field in fields(Word)} == declared_fields("word-timing.d.ts", "Word")
    # What the server's messages give the tracker, as the browser's typedefs say.
    assert typed_dict_keys(Sync) == declared_fields("word-timing.d.ts", "Sync")
    assert typed_dict_keys(TimedWord) == declared_inline_fields("word-timing.d.ts", "TimedWord")
    # A word event's detail is a Word, or nothing: `CustomEvent<Word | null>`.
    text = (TYPES / "voice-client.d.ts").read_text()
    assert re.search(r"^    word: CustomEvent<Word \| null>;", text, re.M)


def test_a_state_reads_as_it_did_in_logs() -> None:
    assert str(StateDetail("reconnecting", attempt=2, max_attempts=10)) == "reconnecting 2/10"
    assert str(StateDetail("degraded", transport="websocket")) == "degraded (websocket)"
    assert str(StateDetail("closed")) == "closed"


def test_listeners_hear_events_in_order_until_they_stop_and_a_failing_one_harms_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = EventSource()
    heard: list[str] = []

    def broken(_detail: StateDetail) -> None:
        raise RuntimeError("an app's bug")

    stop_first = source.on("state", lambda detail: heard.append(f"first {detail}"))
    source.on("state", broken)
    source.on("state", lambda detail: heard.append(f"second {detail}"))
    source.on("error", lambda body: heard.append(body["code"]))
    with caplog.at_level(logging.ERROR):
        source._emit("state", StateDetail("connecting"))
    stop_first()
    stop_first()  # twice: harmless
    source._emit("state", StateDetail("closed"))
    source._emit("error", {"code": "SERVER_DRAINING"})
    assert heard == ["first connecting", "second connecting", "second closed", "SERVER_DRAINING"]
    assert "listener_failed" in caplog.text
    with pytest.raises(ValueError):
        source.on("utterances", print)  # type: ignore[call-overload]
