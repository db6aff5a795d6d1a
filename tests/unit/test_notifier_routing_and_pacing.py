"""The notifier's channel routing, settings and posting pace."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.notifier.pacing import ChannelPacer
from services.notifier.settings import NotifierSettings, Routes
from shared.errors import ConfigError
from shared.settings import load_settings
from shared.slack.settings import STANDIN_TOKEN

YAML_ROUTES = """
default: C0DEFAULT1
states:
  prod-db: C0DBA00001
  prod-*: C0PROD0001
commands:
  db-*: C0DATA0001
"""


def test_routes_match_globs_top_to_bottom_and_fall_back_to_the_default() -> None:
    routes = NotifierSettings(slack_api_url="http://x/api/", routes=YAML_ROUTES).load_routes()

    assert routes.for_state("prod-db") == "C0DBA00001"  # listed before prod-*
    assert routes.for_state("prod-network") == "C0PROD0001"
    assert routes.for_state("staging-network") == "C0DEFAULT1"
    assert routes.for_command("db-backfill") == "C0DATA0001"
    assert routes.for_command("rails-runner") == "C0DEFAULT1"


def test_routes_read_json_from_a_file_and_default_to_the_default_channel(tmp_path: Path) -> None:
    path = tmp_path / "routes.json"
    path.write_text('{"states": {"prod-*": "#prod"}}')

    routes = NotifierSettings(
        slack_api_url="http://x/api/", routes_file=path, default_channel="#ops"
    ).load_routes()

    assert routes == Routes(default="#ops", states={"prod-*": "#prod"})
    assert NotifierSettings(slack_api_url="http://x/api/").load_routes() == Routes(
        default="#toilkit"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("states: [a, b]", "TOILKIT_NOTIFIER_ROUTES: states: Input should be a valid dictionary"),
        ("{not: [valid", "TOILKIT_NOTIFIER_ROUTES: not valid JSON or YAML"),
        ("- a list", "TOILKIT_NOTIFIER_ROUTES: expected a mapping, got list"),
        ("channels: {}", "TOILKIT_NOTIFIER_ROUTES: channels: Extra inputs are not permitted"),
    ],
)
def test_bad_routes_name_the_variable(text: str, message: str) -> None:
    settings = NotifierSettings(slack_api_url="http://x/api/", routes=text)

    with pytest.raises(ConfigError, match=message):
        settings.load_routes()


def test_a_missing_routes_file_is_a_config_error(tmp_path: Path) -> None:
    settings = NotifierSettings(slack_api_url="http://x/api/", routes_file=tmp_path / "none.yaml")

    with pytest.raises(ConfigError, match="TOILKIT_NOTIFIER_ROUTES_FILE: cannot read"):
        settings.load_routes()


def test_slack_needs_a_token_and_the_standin_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("SLACK_BOT_TOKEN", "TOILKIT_NOTIFIER_SLACK_BOT_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(ConfigError, match=re.escape("SLACK_BOT_TOKEN is required for slack.com")):
        load_settings(NotifierSettings)

    monkeypatch.setenv("TOILKIT_NOTIFIER_SLACK_API_URL", "http://127.0.0.1:3001/api/")
    monkeypatch.setenv("TOILKIT_NOTIFIER_WORKER__CONCURRENCY", "4")
    settings = load_settings(NotifierSettings)
    assert settings.token == STANDIN_TOKEN
    assert settings.worker.concurrency == 4

    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-shared")
    assert load_settings(NotifierSettings).token == "xoxb-shared"
    monkeypatch.setenv("TOILKIT_NOTIFIER_SLACK_BOT_TOKEN", "xoxb-real")
    assert load_settings(NotifierSettings).token == "xoxb-real"
    assert "xoxb-real" not in repr(load_settings(NotifierSettings))


class FakeTime:
    """A clock that only moves when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def test_posts_to_one_channel_are_spaced_and_other_channels_do_not_wait() -> None:
    time = FakeTime()
    pacer = ChannelPacer(1.0, clock=time.clock, sleep=time.sleep)

    await pacer.wait_turn("C1")
    await pacer.wait_turn("C2")
    assert time.sleeps == []

    await pacer.wait_turn("C1")
    await pacer.wait_turn("C1")
    assert time.sleeps == [1.0, 1.0]

    time.now += 5  # a quiet channel has no backlog
    await pacer.wait_turn("C1")
    assert time.sleeps == [1.0, 1.0]


async def test_concurrent_posters_queue_behind_each_other() -> None:
    time = FakeTime()
    waits: list[float] = []

    async def record_sleep(seconds: float) -> None:
        waits.append(seconds)  # all reserved at the same instant: 0, 1, 2, 3 s ahead

    pacer = ChannelPacer(1.0, clock=time.clock, sleep=record_sleep)
    for _ in range(4):
        await pacer.wait_turn("C1")

    assert waits == [1.0, 2.0, 3.0]


async def test_pacing_off_never_waits() -> None:
    time = FakeTime()
    pacer = ChannelPacer(0, clock=time.clock, sleep=time.sleep)
    for _ in range(10):
        await pacer.wait_turn("C1")
    assert time.sleeps == []


def test_a_state_channel_from_toilkit_yaml_wins_over_the_routing_table() -> None:
    from services.notifier.handlers import NotifierHandlers  # noqa: PLC0415
    from shared.events import StateRef  # noqa: PLC0415

    routes = Routes(default="C0DEFAULT1", states={"prod-*": "C0PRODOPS1"})
    handlers = NotifierHandlers(delivery=None, store=None, routes=routes)  # type: ignore[arg-type]

    assert handlers._drift_channel(StateRef(name="prod-net", path="p")) == "C0PRODOPS1"
    assert handlers._drift_channel(StateRef(name="dev", path="p")) == "C0DEFAULT1"
    own = StateRef(name="prod-net", path="p", channel="C0NETWORK1")
    assert handlers._drift_channel(own) == "C0NETWORK1"
