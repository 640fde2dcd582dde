"""The deployment files are valid and agree with the server they deploy. No container engine
runs here, so images are not built nor containers started: the Kubernetes manifest is checked
against the Kubernetes schemas, the compose file by Debian's docker-compose, and the nginx
configuration by nginx itself (tests/test_nginx.py runs it in front of real servers)."""

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import kubernetes_validate
import pytest
import yaml

from tests.conftest import REPO, RunningServer
from tests.nginx import CONF, locations, nginx_test, upstream_servers
from voice_rtc.config import SPECS, Settings, load_settings

KNOWN_VARIABLES = {spec.env for spec in SPECS}
SECRET_VARIABLES = {spec.env for spec in SPECS if spec.secret}
COMPOSE = REPO / "deploy/compose.yaml"
FAKE_SECRETS = {"VOICE_RTC_JWT_SECRET": "j" * 40, "VOICE_RTC_TURN_SECRET": "t" * 40}


def manifests() -> list[dict[str, Any]]:
    text = (REPO / "deploy/kubernetes/voice-rtc.yaml").read_text()
    return [doc for doc in yaml.safe_load_all(text) if doc]


def manifest(kind: str, name: str = "voice-rtc") -> dict[str, Any]:
    return next(m for m in manifests() if m["kind"] == kind and m["metadata"]["name"] == name)


def container() -> dict[str, Any]:
    spec: dict[str, Any] = manifest("Deployment")["spec"]["template"]["spec"]["containers"][0]
    return spec


def assert_valid_settings(env: dict[str, str]) -> Settings:
    """Every variable is a setting, and together they start a server."""
    assert set(env) <= KNOWN_VARIABLES, set(env) - KNOWN_VARIABLES
    return load_settings(env)


@pytest.mark.parametrize("version", ["1.30.0", kubernetes_validate.latest_version()])
def test_the_kubernetes_manifest_is_valid_against_the_schemas(version: str) -> None:
    for resource in manifests():
        kubernetes_validate.validate(resource, version, strict=True)  # strict: no unknown keys


def test_the_schema_check_catches_a_mistake() -> None:
    service = manifest("Service")
    service["spec"]["selectr"] = service["spec"].pop("selector")
    with pytest.raises(kubernetes_validate.ValidationError, match="selectr"):
        kubernetes_validate.validate(service, kubernetes_validate.latest_version(), strict=True)


def test_every_variable_the_deployment_sets_is_a_setting_and_the_values_are_valid() -> None:
    env = container()["env"]
    literal = {e["name"]: e["value"] for e in env if "value" in e}
    secrets_set = {e["name"]: "x" * 40 for e in env if "valueFrom" in e}
    assert_valid_settings({**literal, **secrets_set, "VOICE_RTC_ICE_HOST_ADDRESSES": "10.0.0.7"})
    dockerfile_names = set(re.findall(r"\b(VOICE_RTC_[A-Z_]+)=", (REPO / "Dockerfile").read_text()))
    assert dockerfile_names <= KNOWN_VARIABLES


def test_secrets_come_from_a_secret_never_from_the_manifest() -> None:
    env = {e["name"]: e for e in container()["env"]}
    for secret in ("VOICE_RTC_JWT_SECRET", "VOICE_RTC_TURN_SECRET"):
        assert "secretKeyRef" in env[secret]["valueFrom"]
    assert not {name for name, e in env.items() if "value" in e} & SECRET_VARIABLES


def test_several_replicas_share_a_redis_in_the_cluster() -> None:
    deployment = manifest("Deployment")
    assert deployment["spec"]["replicas"] >= 2
    budget = manifest("PodDisruptionBudget")
    assert 1 <= budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    env = {e["name"]: e.get("value") for e in container()["env"]}
    redis_host = re.match(r"redis://([^:/]+)", env["VOICE_RTC_REDIS_URL"])
    assert redis_host
    service = manifest("Service", redis_host[1])
    redis = manifest("Deployment", redis_host[1])
    assert (
        service["spec"]["selector"].items()
        <= redis["spec"]["template"]["metadata"]["labels"].items()
    )


def test_the_pod_outlives_its_drain() -> None:
    deployment = manifest("Deployment")
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    env = {e["name"]: e.get("value") for e in container()["env"]}
    pre_stop = int(container()["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert grace > float(env["VOICE_RTC_DRAIN_TIMEOUT_S"]) + pre_stop


def test_the_ingress_outwaits_the_heartbeat() -> None:
    annotations = manifest("Ingress")["metadata"]["annotations"]
    dead_after = 2 * Settings().heartbeat_interval_s + Settings().heartbeat_timeout_s
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
        assert float(annotations[f"nginx.ingress.kubernetes.io/{timeout}"]) > dead_after
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"


async def test_probes_and_port_point_at_real_endpoints(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    spec = container()
    port = spec["ports"][0]
    env = {e["name"]: e.get("value") for e in spec["env"]}
    assert str(port["containerPort"]) == env["VOICE_RTC_PORT"]
    assert spec["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert spec["livenessProbe"]["httpGet"]["path"] == "/health"
    for probe in ("readinessProbe", "livenessProbe"):
        async with http.get(server.url + spec[probe]["httpGet"]["path"].lstrip("/")) as response:
            assert response.status == 200


def compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Debian's docker-compose 1.29 on deploy/compose.yaml; the caller's secrets never leak in."""
    clean = {k: v for k, v in os.environ.items() if k not in SECRET_VARIABLES}
    return subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), *args],
        cwd=REPO,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_compose_file_is_valid() -> None:
    checked = compose("config", "-q", env=FAKE_SECRETS)
    assert checked.returncode == 0, checked.stderr


def test_compose_takes_secrets_from_the_environment_or_an_env_file(tmp_path: Path) -> None:
    missing = compose("config", "-q")
    assert missing.returncode != 0 and "VOICE_RTC_TURN_SECRET" in missing.stderr
    env_file = tmp_path / "secrets.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in FAKE_SECRETS.items()))
    from_file = compose("--env-file", str(env_file), "config")
    assert from_file.returncode == 0, from_file.stderr
    services = yaml.safe_load(from_file.stdout)["services"]
    assert services["voice-rtc-1"]["environment"]["VOICE_RTC_JWT_SECRET"] == "j" * 40
    for secret in FAKE_SECRETS.values():
        assert secret not in COMPOSE.read_text()


def resolved_compose() -> dict[str, Any]:
    resolved = compose("config", env=FAKE_SECRETS)
    assert resolved.returncode == 0, resolved.stderr
    services: dict[str, Any] = yaml.safe_load(resolved.stdout)["services"]
    return services


def test_compose_runs_nginx_in_front_of_three_replicas_with_redis_and_coturn() -> None:
    services = resolved_compose()
    replicas = sorted(name for name in services if name.startswith("voice-rtc"))
    assert replicas == ["voice-rtc-1", "voice-rtc-2", "voice-rtc-3"]
    for name in replicas:
        env = {k: str(v) for k, v in services[name]["environment"].items()}
        settings = assert_valid_settings(env)
        assert settings.trust_x_forwarded_for and settings.redis_url.startswith("redis://redis:")
        assert settings.turn_url_list and settings.turn_secret
        grace = re.fullmatch(r"(\d+)s", services[name]["stop_grace_period"])
        assert grace and int(grace[1]) > settings.drain_timeout_s
    # nginx carries deploy/nginx/voice-rtc.conf, whose upstream is exactly these replicas.
    mounts = [v.split(":")[:2] for v in services["nginx"]["volumes"]]
    assert [str(CONF), "/etc/nginx/conf.d/default.conf"] in mounts
    port = services[replicas[0]]["environment"]["VOICE_RTC_PORT"]
    assert upstream_servers(CONF.read_text()) == [f"{name}:{port}" for name in replicas]
    # coturn runs turn/coturn.conf as shipped.
    assert any(v.startswith(f"{REPO / 'turn/coturn.conf'}:") for v in services["coturn"]["volumes"])
    assert "redis" in services


def test_the_nginx_configuration_is_valid_for_nginx(tmp_path: Path) -> None:
    checked = nginx_test(tmp_path)
    assert checked.returncode == 0, checked.stderr


def test_nginx_upgrades_the_websockets_and_outwaits_the_heartbeat() -> None:
    text = CONF.read_text()
    assert re.search(r"upstream voice_rtc \{\s*(#.*\n\s*)*least_conn;", text)
    assert re.search(r"proxy_set_header Upgrade \$http_upgrade;", text)
    assert re.search(r"proxy_set_header Connection \$\w+;", text)
    assert re.search(r"^\s*proxy_buffering off;", text, re.MULTILINE)
    # The server takes the first address of X-Forwarded-For: the edge proxy must replace it.
    assert re.search(r"proxy_set_header X-Forwarded-For \$remote_addr;", text)
    assert re.search(r"proxy_set_header Host \$http_host;", text)  # Origin checks need the port
    blocks = locations(text)
    dead_after = 2 * Settings().heartbeat_interval_s + Settings().heartbeat_timeout_s
    for path in ("/ws", "/agent"):
        timeout = re.search(r"proxy_read_timeout (\d+)s;", blocks[f"= {path}"])
        assert timeout and int(timeout[1]) > dead_after, path
    for path in ("/health", "/ready"):
        assert "proxy_pass http://voice_rtc;" in blocks[f"= {path}"]


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
