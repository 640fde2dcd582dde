"""The deployment files agree with the server they deploy (no Docker engine runs here, so the
image is not built: these checks are what can be verified without one)."""

import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.conftest import REPO, RunningServer
from voice_rtc.config import SECRET_ENV, Settings, load_settings

KNOWN_VARIABLES = {SECRET_ENV.get(f.name, f"VOICE_RTC_{f.name.upper()}") for f in fields(Settings)}


def manifests() -> list[dict[str, Any]]:
    text = (REPO / "deploy/kubernetes/voice-rtc.yaml").read_text()
    return [doc for doc in yaml.safe_load_all(text) if doc]


def container() -> dict[str, Any]:
    deployment = next(m for m in manifests() if m["kind"] == "Deployment")
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return spec


def test_every_variable_the_deployment_sets_is_a_setting_and_the_values_are_valid() -> None:
    env = container()["env"]
    names = {e["name"] for e in env}
    assert names <= KNOWN_VARIABLES, names - KNOWN_VARIABLES
    dockerfile_names = set(re.findall(r"\b(VOICE_RTC_[A-Z_]+)=", (REPO / "Dockerfile").read_text()))
    assert dockerfile_names <= KNOWN_VARIABLES
    literal = {e["name"]: e["value"] for e in env if "value" in e}
    secrets_set = {e["name"]: "x" * 40 for e in env if "valueFrom" in e}
    load_settings({**literal, **secrets_set, "VOICE_RTC_ICE_HOST_ADDRESSES": "10.0.0.7"})


def test_secrets_come_from_a_secret_never_from_the_manifest() -> None:
    env = {e["name"]: e for e in container()["env"]}
    for secret in ("VOICE_RTC_JWT_SECRET", "VOICE_RTC_TURN_SECRET"):
        assert "secretKeyRef" in env[secret]["valueFrom"]


def test_the_pod_outlives_its_drain() -> None:
    deployment = next(m for m in manifests() if m["kind"] == "Deployment")
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    env = {e["name"]: e.get("value") for e in container()["env"]}
    pre_stop = int(container()["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert grace > float(env["VOICE_RTC_DRAIN_TIMEOUT_S"]) + pre_stop


async def test_probes_and_port_point_at_real_endpoints(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    spec = container()
    port = spec["ports"][0]
    assert (
        str(port["containerPort"])
        == {e["name"]: e.get("value") for e in spec["env"]}["VOICE_RTC_PORT"]
    )
    for probe in ("readinessProbe", "livenessProbe"):
        async with http.get(server.url + spec[probe]["httpGet"]["path"].lstrip("/")) as response:
            assert response.status == 200


def test_the_image_carries_everything_the_server_runs() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    for needed in ("voice_rtc", "signaling", "server.py", "client", "pyproject.toml"):
        assert re.search(rf"^COPY .*\b{re.escape(needed)}\b", dockerfile, re.MULTILINE), needed
    assert "USER " in dockerfile  # not root
    ignored = (REPO / ".dockerignore").read_text().split()
    assert (
        ".venv" in ignored
        and ".git" in ignored
        and all(
            not Path(p).parts or Path(p).parts[0] not in ("voice_rtc", "signaling", "client")
            for p in ignored
        )
    )
