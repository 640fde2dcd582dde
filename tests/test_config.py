import re
import subprocess
import sys
from pathlib import Path

import pytest

from voice_rtc.config import (
    README_BEGIN,
    README_END,
    SPECS,
    Settings,
    SettingsError,
    Spec,
    load_settings,
    markdown_table,
    with_table,
)

REPO = Path(__file__).resolve().parent.parent
SECRET = "s" * 32


def test_defaults_run_a_loopback_demo_with_the_embedded_voice() -> None:
    settings = load_settings({})
    assert (settings.host, settings.port, settings.tts) == ("127.0.0.1", 8080, "espeak")
    assert settings.ice_server_urls == []  # no public STUN server unless configured
    assert settings.host_addresses == ["127.0.0.1"]
    assert settings == Settings()


def test_environment_then_command_line() -> None:
    env = {
        "VOICE_RTC_PORT": "9000",
        "VOICE_RTC_TTS": "tone",
        "VOICE_RTC_HOST": "0.0.0.0",
        "VOICE_RTC_JWT_SECRET": SECRET,
    }
    settings = load_settings(env, ["--port", "9100", "--ice-servers", "stun:stun.example.org"])
    assert (settings.port, settings.tts) == (9100, "tone")
    assert settings.host_addresses is None  # all interfaces
    assert settings.ice_server_urls == ["stun:stun.example.org"]


@pytest.mark.parametrize("spec", [s for s in SPECS if not s.secret], ids=lambda s: s.name)
def test_every_setting_is_a_variable_and_an_option(spec: Spec) -> None:
    assert spec.env == f"VOICE_RTC_{spec.name.upper()}"
    assert spec.option == f"--{spec.name.replace('_', '-')}"
    default = getattr(Settings(), spec.name)
    raw = str(default).lower() if isinstance(default, bool) else str(default)
    assert getattr(load_settings({spec.env: raw}), spec.name) == default
    assert getattr(load_settings({}, [spec.option, raw]), spec.name) == default


@pytest.mark.parametrize(
    ("env", "argv", "problem"),
    [
        ({"VOICE_RTC_PORT": "eighty"}, [], "VOICE_RTC_PORT='eighty': is not a whole number"),
        ({"VOICE_RTC_PORT": "70000"}, [], "VOICE_RTC_PORT='70000': must be at most 65535"),
        ({"VOICE_RTC_PORT": "80"}, ["--port", "-1"], "--port='-1': must be at least 0"),
        ({"VOICE_RTC_TTS": "siri"}, [], "must be espeak, tone or cartesia"),
        ({}, ["--transport", "pigeon"], "--transport='pigeon': must be auto, webrtc or websocket"),
        ({"VOICE_RTC_ICE_SERVERS": "http://x"}, [], "'http://x' is not a stun:, turn: or turns:"),
        ({"VOICE_RTC_TURN_URLS": "stun:x"}, [], "'stun:x' is not a turn: or turns: URL"),
        (
            {"VOICE_RTC_ICE_HOST_ADDRESSES": "10.0.0.1,example.org"},
            [],
            "'example.org' is not an IP",
        ),
        ({"VOICE_RTC_LOG_LEVEL": "chatty"}, [], "must be DEBUG, INFO, WARNING or ERROR"),
        ({"VOICE_RTC_OPUS_FEC": "maybe"}, [], "VOICE_RTC_OPUS_FEC='maybe': is not true or false"),
        ({"VOICE_RTC_DRAIN_TIMEOUT_S": "nan"}, [], "is not a finite number"),
        (
            {"VOICE_RTC_DRAIN_TIMEOUT_S": "0"},
            [],
            "VOICE_RTC_DRAIN_TIMEOUT_S='0': must be more than",
        ),
        ({"VOICE_RTC_MAX_SESSIONS": "2.5"}, [], "is not a whole number"),
        ({"VOICE_RTC_OPUS_BITRATE": "500"}, [], "must be at least 6000"),
        ({"VOICE_RTC_REDIS_URL": "localhost:6379"}, [], "is not a redis://, rediss:// or unix://"),
        ({"VOICE_RTC_JWT_PUBLIC_KEY_FILE": "/no/such.pem"}, [], "is not a readable file"),
    ],
)
def test_bad_settings_are_refused_naming_the_variable_or_option_and_why(
    env: dict[str, str], argv: list[str], problem: str
) -> None:
    with pytest.raises(SettingsError, match=re.escape(problem)):
        load_settings(env, argv)


def test_every_problem_is_told_at_once() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"VOICE_RTC_PORT": "x", "VOICE_RTC_SILENCE": "y"}, ["--lookahead-ms", "1"])
    problems = str(caught.value).split("; ")
    assert [p.split("=")[0] for p in problems] == [
        "VOICE_RTC_PORT",
        "VOICE_RTC_SILENCE",
        "--lookahead-ms",
    ], problems


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"VOICE_RTC_HOST": "0.0.0.0"}, "listening on 0.0.0.0 needs authentication"),
        ({"VOICE_RTC_TTS": "cartesia", "CARTESIA_API_KEY": "k"}, "VOICE_RTC_CARTESIA_VOICE"),
        ({"VOICE_RTC_TTS": "cartesia", "VOICE_RTC_CARTESIA_VOICE": "v"}, "CARTESIA_API_KEY"),
        (
            {"VOICE_RTC_TURN_URLS": "turn:t:3478"},
            "needs the shared secret in VOICE_RTC_TURN_SECRET",
        ),
        ({"VOICE_RTC_JWT_SECRET": "short"}, "VOICE_RTC_JWT_SECRET must be at least 32 characters"),
        ({"VOICE_RTC_SERVICE_API_KEY": "short"}, "VOICE_RTC_SERVICE_API_KEY must be at least 32"),
    ],
)
def test_settings_that_need_each_other(env: dict[str, str], problem: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(problem)):
        load_settings(env)


def test_secrets_come_from_the_environment_only_and_are_never_shown() -> None:
    env = {"CARTESIA_API_KEY": "sk-secret", "VOICE_RTC_CARTESIA_VOICE": "v"}
    settings = load_settings(env, ["--tts", "cartesia"])
    assert settings.cartesia_api_key == "sk-secret"
    assert "sk-secret" not in repr(settings) and "sk-secret" not in str(settings)
    secrets = [spec for spec in SPECS if spec.secret]
    assert {s.env for s in secrets} >= {
        "CARTESIA_API_KEY",
        "VOICE_RTC_TURN_SECRET",
        "VOICE_RTC_JWT_SECRET",
        "VOICE_RTC_SERVICE_API_KEY",
    }
    for spec in secrets:
        with pytest.raises(SystemExit):  # no command-line option for it
            load_settings({}, [spec.option, "x" * 40])
    # A secret's bad value is named, never shown.
    with pytest.raises(SettingsError) as caught:
        load_settings({"VOICE_RTC_JWT_SECRET": "hunter2-hunter2"})
    assert "hunter2" not in str(caught.value)


def test_help_lists_every_option_with_its_variable_and_no_secret() -> None:
    shown = subprocess.run(
        [sys.executable, str(REPO / "server.py"), "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    for spec in SPECS:
        assert (spec.option in shown) != spec.secret, spec.name
        assert spec.env in shown, spec.name  # the variable, beside the option or in the intro


def test_each_declaration_says_what_it_means_and_names_its_choices() -> None:
    for spec in SPECS:
        assert spec.meaning, spec.name
        assert isinstance(spec.default, spec.kind), spec.name
        for choice in spec.choices:
            assert f"`{choice}`" in spec.meaning, (spec.name, choice)
        if spec.choices:
            assert spec.default in spec.choices, spec.name


def test_the_readme_table_is_made_from_the_declarations() -> None:
    readme = (REPO / "README.md").read_text()
    assert README_BEGIN in readme and README_END in readme
    assert with_table(readme) == readme, (
        "README.md's settings table is stale: run "
        "`.venv/bin/python -m voice_rtc.config --readme README.md`"
    )
    table = markdown_table()
    for spec in SPECS:
        assert f"| `{spec.env}` | " in table
    assert "| `CARTESIA_API_KEY` | *(none)* | **environment only**" in table


def test_the_table_command_prints_the_table_and_rewrites_a_readme(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "voice_rtc.config"]
    printed = subprocess.run(
        [*command, "--markdown"], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert printed.stdout == markdown_table() and not printed.stderr
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{README_BEGIN}\n| old |\n{README_END}\n\nafter\n")
    subprocess.run([*command, "--readme", str(readme)], cwd=REPO, check=True)
    assert readme.read_text() == f"# x\n\n{README_BEGIN}\n{markdown_table()}{README_END}\n\nafter\n"
