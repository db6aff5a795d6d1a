"""docker-compose.yml and the Dockerfile agree with the code they run.

``docker compose config`` validates the file where a docker client with the compose plugin
exists (it needs no engine). Everywhere, the file is read as YAML and held to what toilkit
needs: a pinned LocalStack, a health check on everything that keeps running, the one image
running each service as a ``toilkit`` command that exists, the bootstrap step finishing
before any service starts, every AWS endpoint on LocalStack, and settings each service
accepts when started with exactly the environment the file gives it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import typer
import yaml

from services.batch.settings import BatchSettings
from services.detector.settings import DetectorSettings
from services.gateway.settings import GatewaySettings
from services.gateway.transport import EVENTS_PATH, HEALTH_PATH
from services.notifier.settings import NotifierSettings
from shared.env_settings import EnvSettings
from shared.settings import AwsSettings, TopologySettings, load_settings
from toilkit.cli import app
from toilkit.services import service_factories
from toilkit.standins.slack import SlackStandin

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
SERVICES = ("gateway", "detector", "batch", "notifier")
SETTINGS: dict[str, type[EnvSettings]] = {
    "gateway": GatewaySettings,
    "detector": DetectorSettings,
    "batch": BatchSettings,
    "notifier": NotifierSettings,
}
LOCALSTACK_URL = "http://localstack:4566"
#: ``${NAME:-default}`` and ``${NAME}``, as compose interpolates them.
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")
#: Variables that change what a toilkit process does; cleared so the test sees only the file's.
_OWN_PREFIXES = ("TOILKIT_", "AWS_", "SLACK_")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def interpolate(value: str) -> str:
    """A value as compose sees it with none of the referenced variables set."""
    return _INTERPOLATION.sub(lambda match: match.group(2) or "", value)


def environment(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {name: interpolate(str(value)) for name, value in raw.items() if value is not None}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of the final stage, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    instructions = [tuple(line.split(None, 1)) for line in lines if line and line[0] != "#"]
    last_from = max(i for i, (word, _) in enumerate(instructions) if word.upper() == "FROM")
    return [(word.upper(), rest) for word, rest in instructions[last_from:]]


def dockerfile_env() -> dict[str, str]:
    pairs: dict[str, str] = {}
    for word, rest in dockerfile_instructions():
        if word == "ENV":
            pairs.update(item.split("=", 1) for item in rest.split())
    return pairs


# ------------------------------------------------------------------ the real validator


def _compose_plugin_works() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, check=False, timeout=30
    )
    return probe.returncode == 0


@pytest.mark.skipif(
    not _compose_plugin_works(), reason="no docker client with the compose plugin here"
)
def test_docker_compose_config_accepts_the_file() -> None:
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=ROOT,
    )

    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------------ the file's shape


def test_localstack_is_a_pinned_release_and_answers_on_4566(
    services: dict[str, dict[str, Any]],
) -> None:
    localstack = services["localstack"]
    repository, _, tag = localstack["image"].partition(":")

    assert repository == "localstack/localstack"
    # A release number: `latest` and every 2026.03+ tag need an auth token.
    assert re.fullmatch(r"[0-4]\.[0-9]+\.[0-9]+", tag), tag
    assert any(str(port).endswith(":4566") for port in localstack["ports"])


def test_everything_that_keeps_running_has_a_health_check(
    services: dict[str, dict[str, Any]],
) -> None:
    long_running = [name for name, spec in services.items() if spec.get("restart") != "no"]

    assert set(long_running) == {"localstack", "slack", *SERVICES}
    for name in long_running:
        check = services[name].get("healthcheck") or {}
        assert check.get("test", [None])[0] in ("CMD", "CMD-SHELL"), name
        assert not check.get("disable", False), name


def test_each_service_runs_the_one_image_as_its_own_toilkit_command(
    services: dict[str, dict[str, Any]],
) -> None:
    toilkit_containers = ["bootstrap", "slack", *SERVICES]
    images = {services[name]["image"] for name in toilkit_containers}
    builds = {str(services[name].get("build")) for name in toilkit_containers}

    assert images == {"toilkit:local"}
    assert builds == {"."}
    for name in SERVICES:
        assert services[name]["command"] == ["serve", name]
        assert "entrypoint" not in services[name]
    assert ("ENTRYPOINT", '["toilkit"]') in dockerfile_instructions()


def test_the_commands_exist_in_the_cli_and_name_registered_services(
    services: dict[str, dict[str, Any]],
) -> None:
    commands = getattr(typer.main.get_command(app), "commands", {})
    assert "serve" in commands
    for name in ("bootstrap", *SERVICES):
        argv = services[name]["command"]
        assert argv[0] in commands, argv
    assert set(SERVICES) == set(service_factories())


def test_the_services_start_only_after_bootstrap_completed(
    services: dict[str, dict[str, Any]],
) -> None:
    bootstrap = services["bootstrap"]

    assert bootstrap["command"] == ["bootstrap"]
    assert bootstrap["depends_on"]["localstack"]["condition"] == "service_healthy"
    for name in SERVICES:
        depends_on = services[name]["depends_on"]
        assert depends_on["bootstrap"]["condition"] == "service_completed_successfully", name


def test_every_aws_endpoint_is_localstack_and_names_agree(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in ("bootstrap", *SERVICES):
        env = environment(services[name])
        endpoints = {key: value for key, value in env.items() if key.startswith("AWS_ENDPOINT")}
        assert endpoints == {"AWS_ENDPOINT_URL": LOCALSTACK_URL}, name
        assert (
            env["TOILKIT_NAME_PREFIX"] == environment(services["bootstrap"])["TOILKIT_NAME_PREFIX"]
        )


def test_the_slack_clients_point_at_the_stand_in_port(
    services: dict[str, dict[str, Any]],
) -> None:
    slack = services["slack"]
    port = slack["command"][slack["command"].index("--port") + 1]

    assert slack["entrypoint"] == ["python", "-m", "toilkit.standins.slack"]
    for name in ("gateway", "batch", "notifier"):
        variable = f"TOILKIT_{name.upper()}_SLACK_API_URL"
        assert environment(services[name])[variable] == f"http://slack:{port}/api/"
        assert services[name]["depends_on"]["slack"]["condition"] == "service_healthy"


def test_the_gateway_health_check_probes_its_health_path_on_its_port(
    services: dict[str, dict[str, Any]],
) -> None:
    gateway = services["gateway"]
    probe = " ".join(gateway["healthcheck"]["test"])
    port = environment(gateway)["TOILKIT_GATEWAY_PORT"]

    assert f"http://127.0.0.1:{port}{HEALTH_PATH}" in probe
    assert any(str(mapping).endswith(f":{port}") for mapping in gateway["ports"])


# ------------------------------------------------------------- what the containers see


@pytest.fixture
def container_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An environment holding none of the developer's toilkit, AWS or Slack variables."""
    for name in list(os.environ):
        if name.startswith(_OWN_PREFIXES):
            monkeypatch.delenv(name)
    yield


def _as_on_this_machine(value: str) -> str:
    # The Dockerfile copies catalog/ to /app/catalog, so /app/ is the repository here.
    return value.replace("/app/", f"{ROOT}/")


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_accepts_the_environment_its_container_gets(
    name: str,
    services: dict[str, dict[str, Any]],
    container_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {**dockerfile_env(), **environment(services[name])}
    for variable, value in env.items():
        monkeypatch.setenv(variable, _as_on_this_machine(value))

    aws = load_settings(AwsSettings)
    load_settings(TopologySettings)
    settings = load_settings(SETTINGS[name])

    assert aws.endpoint_for("sqs") == LOCALSTACK_URL
    assert aws.endpoint_for("dynamodb") == LOCALSTACK_URL
    catalog_path = getattr(settings, "catalog_path", None)
    if catalog_path is not None:
        assert catalog_path.is_file(), catalog_path


async def test_the_stand_in_health_check_probes_a_path_it_serves(
    services: dict[str, dict[str, Any]],
) -> None:
    probe = " ".join(services["slack"]["healthcheck"]["test"])
    path = re.search(r"http://127\.0\.0\.1:[0-9]+(/[^\"' ]*)", probe)
    assert path is not None, probe

    async with (
        SlackStandin() as standin,
        aiohttp.ClientSession() as session,
        session.get(f"{standin.base_url}{path.group(1)}") as response,
    ):
        status = response.status

    assert status == 200


def test_the_stand_in_page_acts_on_the_gateway_with_the_secret_it_checks(
    services: dict[str, dict[str, Any]],
) -> None:
    command = services["slack"]["command"]
    gateway = environment(services["gateway"])

    app_url = command[command.index("--app-url") + 1]
    assert "--signing-secret" not in command  # visible to `ps`; the environment is not
    secret = environment(services["slack"])["SLACK_SIGNING_SECRET"]
    assert app_url == f"http://gateway:{gateway['TOILKIT_GATEWAY_PORT']}{EVENTS_PATH}"
    assert secret and secret == gateway["SLACK_SIGNING_SECRET"]
