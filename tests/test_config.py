import re
from dataclasses import fields
from pathlib import Path

import pytest

from voice_rtc.config import SECRET_ENV, Settings, SettingsError, load_settings


def test_defaults_run_a_loopback_demo_with_the_embedded_voice() -> None:
    settings = load_settings({})
    assert (settings.host, settings.port, settings.tts) == ("127.0.0.1", 8080, "espeak")
    assert settings.ice_server_urls == []  # no public STUN server unless configured
    assert settings.host_addresses == ["127.0.0.1"]


def test_environment_then_command_line() -> None:
    env = {
        "VOICE_RTC_PORT": "9000",
        "VOICE_RTC_TTS": "tone",
        "VOICE_RTC_HOST": "0.0.0.0",
        "VOICE_RTC_JWT_SECRET": "s" * 32,
    }
    settings = load_settings(env, ["--port", "9100", "--ice-servers", "stun:stun.example.org"])
    assert (settings.port, settings.tts) == (9100, "tone")
    assert settings.host_addresses is None  # all interfaces
    assert settings.ice_server_urls == ["stun:stun.example.org"]


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"VOICE_RTC_PORT": "eighty"}, "VOICE_RTC_PORT: 'eighty' is not a valid int"),
        ({"VOICE_RTC_PORT": "70000"}, "port 70000"),
        ({"VOICE_RTC_TTS": "siri"}, "tts 'siri' is not one of"),
        ({"VOICE_RTC_ICE_SERVERS": "http://x"}, "is not a stun:, turn: or turns: URL"),
        ({"VOICE_RTC_ICE_HOST_ADDRESSES": "example.org"}, "is not an IP address"),
        ({"VOICE_RTC_LOG_LEVEL": "chatty"}, "not a logging level"),
    ],
)
def test_bad_settings_are_refused_with_what_is_wrong(env: dict[str, str], problem: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(problem)):
        load_settings(env)


def test_every_setting_is_in_the_readme() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    variables = [SECRET_ENV.get(f.name, f"VOICE_RTC_{f.name.upper()}") for f in fields(Settings)]
    missing = [variable for variable in variables if f"`{variable}`" not in readme]
    assert not missing, f"settings missing from the README's table: {missing}"


def test_secrets_come_from_the_environment_only_and_are_never_shown() -> None:
    env = {"CARTESIA_API_KEY": "sk-secret", "VOICE_RTC_CARTESIA_VOICE": "v"}
    settings = load_settings(env, ["--tts", "cartesia"])
    assert settings.cartesia_api_key == "sk-secret"
    assert "sk-secret" not in repr(settings)
    with pytest.raises(SystemExit):  # no command-line option for it
        load_settings({}, ["--cartesia-api-key", "sk-secret"])
    with pytest.raises(SettingsError, match="CARTESIA_API_KEY"):
        load_settings({"VOICE_RTC_CARTESIA_VOICE": "v"}, ["--tts", "cartesia"])
