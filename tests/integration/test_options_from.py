"""Choices from elsewhere (``options_from``), over real HTTP end to end.

The real gateway (aiohttp + Bolt, moto over HTTP) is driven through the Slack stand-in's
client endpoints, as the page drives it: the person opens the run modal, types in an
``external_select`` (the stand-in sends Slack's ``block_suggestion`` to the gateway and
shows the options it answers) and submits. The sources are real too: a git repository made
in the test's folder (fetched at a ref), a list served by a small aiohttp server (which can
be slow or gone), and a command run by the batch side's refresher.

The gateway never waits on a source: the first suggestion for a list nobody fetched yet
says so at once, and the fetch runs behind it (``service.options.join()`` waits for it).
Tests assert on what is answered and in which order, never on wall time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from services.gateway.service import GatewayService
from services.gateway.suggestions import ListedOptions
from shared.aws import AwsClients
from shared.catalog import Catalog, load_catalog
from shared.options import UNAVAILABLE_VALUE
from shared.options_fetch import OptionsRefresher, listed_parameters
from shared.state_table.options import read_options
from shared.topology import BootstrapReport, Names
from tests.browser import chromium, chromium_executable
from tests.gateway_harness import events_on, serving, standin_settings
from tests.support import runtime_over
from toilkit.standins.slack import SlackStandin

SECRET = "6c1f0c8e9d7a6b5c4d3e2f1a0b9c8d7e"
ALICE = "U0ALICE001"  # in @sre (S0SRE00001)
CHANNEL = "#toilkit"

CATALOG = """
commands:
  - name: patch
    description: Run a patch script of the app.
    argv: [bin/rails, runner, "{script}", "{tenant}"]
    parameters:
      - name: script
        type: choice
        options_from: {kind: git, repository: app, ref: release, glob: "script/patches/*.rb"}
      - name: tenant
        type: choice
        options_from: {kind: url, url: TENANTS_URL}
    environments:
      staging:
        allowed: {usergroups: [S0SRE00001]}
  - name: regions
    description: Something per region.
    argv: [echo, "{region}"]
    parameters:
      - name: region
        type: choice
        options_from: {kind: command, argv: [python3, -c, "print(open('regions.txt').read())"]}
    environments:
      staging:
        allowed: {usergroups: [S0SRE00001]}
"""


def git(folder: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(folder), *args],
        check=True,
        capture_output=True,
        env={
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com",
            "PATH": "/usr/bin:/bin:/usr/local/bin",
        },
    )


def app_repository(folder: Path) -> Path:
    """The app's repository: ``main`` has one patch, ``release`` two more and a README."""
    repo = folder / "app"
    (repo / "script" / "patches").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "script" / "patches" / "old_fix.rb").write_text("puts 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")
    git(repo, "checkout", "-q", "-b", "release")
    (repo / "script" / "patches" / "fix_totals.rb").write_text("puts 2\n")
    (repo / "script" / "patches" / "fix_invoices.rb").write_text("puts 3\n")
    (repo / "script" / "patches" / "README.md").write_text("not a patch\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "release")
    git(repo, "checkout", "-q", "main")
    # After the release branch: only on main, so never listed.
    (repo / "script" / "patches" / "main_only.rb").write_text("puts 4\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "main only")
    return repo


class ListServer:
    """A list served over HTTP that a test can change, slow down or watch."""

    def __init__(self) -> None:
        self.body = '["acme", "globex", "initech"]'
        self.delay = 0.0
        self.asked = asyncio.Event()
        self.answered = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.asked.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        self.answered.set()
        kind = "application/json" if self.body.startswith("[") else "text/plain"
        return web.Response(text=self.body, content_type=kind)

    async def start(self) -> None:
        application = web.Application()
        application.router.add_get("/tenants.json", self.handle)
        self.runner = web.AppRunner(application, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/tenants.json"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def closed_port_url() -> str:
    import socket  # noqa: PLC0415

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/tenants.json"


@pytest.fixture
async def lists() -> AsyncIterator[ListServer]:
    server = ListServer()
    await server.start()
    yield server
    await server.stop()


def write_catalog(folder: Path, tenants_url: str) -> Path:
    app_repository(folder)
    (folder / "regions.txt").write_text("eu-west-1\nus-east-1\n")
    path = folder / "catalog.yaml"
    path.write_text(CATALOG.replace("TENANTS_URL", tenants_url))
    return path


#: Serves the gateway (its catalog listing tenants from the URL given) to the stand-in's page.
GatewayAt = Callable[[str], AbstractAsyncContextManager[GatewayService]]


@pytest.fixture
def gateway_at(
    aws: AwsClients, names: Names, topology: BootstrapReport, standin: SlackStandin, tmp_path: Path
) -> GatewayAt:
    @contextlib.asynccontextmanager
    async def serve(tenants_url: str) -> AsyncIterator[GatewayService]:
        settings = standin_settings(
            standin, SECRET, write_catalog(tmp_path, tenants_url)
        ).model_copy(update={"options_cache_dir": tmp_path / "cache"})
        async with serving(runtime_over(aws, names, topology), settings) as gateway:
            standin.connect_app(gateway.events_url, SECRET)
            yield gateway

    return serve


class Person:
    """What the stand-in's page does for one person, over HTTP."""

    def __init__(self, standin: SlackStandin, gateway: GatewayService) -> None:
        self.standin = standin
        self.gateway = gateway
        self.http = aiohttp.ClientSession()

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.http.post(self.standin.base_url + path, json=body) as response:
            answer: dict[str, Any] = await response.json()
            assert response.status == 200, answer
        await self.gateway.after_ack.join()
        return answer

    async def open_form(self, command: str) -> str:
        await self.post(
            "/_standin/client/command",
            {"channel": CHANNEL, "user": ALICE, "text": f"/toil run {command}"},
        )
        modal = self.standin.modal_for(ALICE)
        assert modal is not None
        return str(modal["view"]["id"])

    async def options_in(self, view_id: str, parameter: str, typed: str) -> list[Any]:
        """Type in a listed parameter's select: the options the page gets."""
        answer = await self.post(
            "/_standin/client/view_suggest",
            {
                "view_id": view_id,
                "user": ALICE,
                "block_id": f"param:{parameter}",
                "action_id": "value",
                "value": typed,
            },
        )
        assert answer["ok"], answer
        return list(answer["options"])

    async def type_in(self, view_id: str, parameter: str, typed: str) -> list[str]:
        """The options' texts the page shows for ``typed``."""
        return [o["text"]["text"] for o in await self.options_in(view_id, parameter, typed)]

    async def values_in(self, view_id: str, parameter: str, typed: str = "") -> list[str]:
        """The options' values the page gets for ``typed``."""
        return [o["value"] for o in await self.options_in(view_id, parameter, typed)]

    async def submit(self, view_id: str, values: dict[str, Any]) -> dict[str, Any]:
        return await self.post(
            "/_standin/client/view_submit", {"view_id": view_id, "user": ALICE, "values": values}
        )

    async def __aenter__(self) -> Person:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.http.close()


def patch_form(script: str, tenant: str) -> dict[str, Any]:
    return {
        "environment": {"value": "staging"},
        "param:script": {"value": script},
        "param:tenant": {"value": tenant},
        "reason": {"value": "INC-7: totals wrong for one tenant"},
    }


# --------------------------------------------------------------------------- the modal


async def test_a_git_glob_at_a_ref_is_suggested_from_the_cache_and_checked_on_submit(
    gateway_at: GatewayAt,
    aws: AwsClients,
    topology: BootstrapReport,
    standin: SlackStandin,
    lists: ListServer,
) -> None:
    async with gateway_at(lists.url) as gateway, Person(standin, gateway) as alice:
        view_id = await alice.open_form("patch")
        select = next(
            b["element"]
            for b in standin.modal_for(ALICE)["view"]["blocks"]  # type: ignore[index]
            if b.get("block_id") == "param:script"
        )
        assert select["type"] == "external_select"

        # WHEN alice first types, nothing was fetched yet: the answer says so at once
        assert await alice.type_in(view_id, "script", "") == [
            "list unavailable: still loading, try again in a moment"
        ]
        # ... and the fetch ran behind it
        await gateway.options.join()
        # THEN the files matching the glob at the ref are offered (not main's)
        assert await alice.values_in(view_id, "script") == [
            "script/patches/fix_invoices.rb",
            "script/patches/fix_totals.rb",
            "script/patches/old_fix.rb",
        ]
        # AND what she types filters them, names starting with it first
        assert await alice.type_in(view_id, "script", "fix_t") == ["fix_totals.rb"]
        assert await alice.type_in(view_id, "script", "FIX") == [
            "fix_invoices.rb",
            "fix_totals.rb",
            "old_fix.rb",
        ]
        # AND the page shows the options under the select
        async with alice.http.get(
            standin.base_url + "/_standin/fragment", params={"user": ALICE}
        ) as response:
            page = await response.text()
        assert 'data-kind="external_select"' in page and "old_fix.rb</option>" in page

        await alice.type_in(view_id, "tenant", "")
        await gateway.options.join()

        # WHEN she submits a script that is not in the list (a forged or stale value)
        answer = await alice.submit(view_id, patch_form("script/patches/main_only.rb", "acme"))
        # THEN it is refused under the field, and nothing is queued
        assert answer["outcome"] == "errors"
        assert (
            "is not in the list from script/patches/*.rb in app at release"
            in (answer["errors"]["param:script"])
        )
        assert [e for e in await events_on(aws, topology, "batch")] == []

        # WHEN she submits listed values, the run is requested with them
        answer = await alice.submit(view_id, patch_form("script/patches/fix_totals.rb", "acme"))
        assert answer["outcome"] == "closed", answer
        [requested] = await events_on(aws, topology, "batch")
        values = {p.name: p.value for p in requested.parameters}
        assert values == {"script": "script/patches/fix_totals.rb", "tenant": "acme"}


async def test_an_unreachable_source_still_opens_the_modal_and_says_why(
    gateway_at: GatewayAt, aws: AwsClients, topology: BootstrapReport, standin: SlackStandin
) -> None:
    gone = closed_port_url()
    async with gateway_at(gone) as gateway, Person(standin, gateway) as alice:
        # GIVEN the modal opens although the list's server is gone
        view_id = await alice.open_form("patch")
        await alice.type_in(view_id, "tenant", "")
        await gateway.options.join()
        # THEN the field says the list is unavailable, and why
        [said] = await alice.type_in(view_id, "tenant", "ac")
        assert said.startswith("list unavailable: http://127.0.0.1:")
        assert "cannot be reached" in said
        assert await alice.values_in(view_id, "tenant") == [UNAVAILABLE_VALUE]
        # AND picking that line is refused with a reason, never run
        await alice.type_in(view_id, "script", "")
        await gateway.options.join()
        answer = await alice.submit(
            view_id, patch_form("script/patches/fix_totals.rb", UNAVAILABLE_VALUE)
        )
        assert answer["outcome"] == "errors"
        assert "unavailable just now" in answer["errors"]["param:tenant"]
        answer = await alice.submit(view_id, patch_form("script/patches/fix_totals.rb", "acme"))
        assert "cannot be checked" in answer["errors"]["param:tenant"]
        assert await events_on(aws, topology, "batch") == []


async def test_a_slow_source_never_holds_the_answer_back(
    gateway_at: GatewayAt, standin: SlackStandin, lists: ListServer
) -> None:
    lists.delay = 5.0
    async with gateway_at(lists.url) as gateway, Person(standin, gateway) as alice:
        view_id = await alice.open_form("patch")
        # WHEN alice types while the source takes 5 s to answer
        first = await alice.type_in(view_id, "tenant", "")
        # THEN the answer came before the source's: it says the list is loading
        assert first == ["list unavailable: still loading, try again in a moment"]
        await asyncio.wait_for(lists.asked.wait(), 30)
        assert not lists.answered.is_set()
        # AND asking again meanwhile does not ask the source a second time
        assert await alice.type_in(view_id, "tenant", "g") == first
        # WHEN the source has answered, the list is there
        await gateway.options.join()
        assert lists.answered.is_set()
        assert await alice.type_in(view_id, "tenant", "g") == ["globex"]


# --------------------------------------------------------------------------- the cache


@dataclass
class UrlCache:
    """The url list's refresher and the state table it fills, on a clock the test moves."""

    catalog: Catalog
    refresher: OptionsRefresher
    read_table: Callable[[str, str], Awaitable[Any]]
    now: list[datetime]

    def listed(self, read: Callable[[str, str], Awaitable[Any]] | None = None) -> ListedOptions:
        """The gateway's memory of the lists, re-reading the table at every answer."""
        return ListedOptions(
            self.catalog,
            read or self.read_table,
            self.refresher,
            reload_seconds=0,
            clock=lambda: self.now[0],
        )


@pytest.fixture
def url_cache(
    aws: AwsClients, names: Names, topology: BootstrapReport, lists: ListServer, tmp_path: Path
) -> UrlCache:
    catalog = load_catalog(write_catalog(tmp_path, lists.url))
    now = [datetime(2031, 1, 1, tzinfo=UTC)]
    refresher = OptionsRefresher(
        catalog,
        aws.dynamodb,
        names.state_table,
        kinds=frozenset({"url"}),
        cache_dir=tmp_path / "cache",
        clock=lambda: now[0],
    )

    async def read_table(command: str, parameter: str) -> Any:
        return await read_options(aws.dynamodb, names.state_table, command, parameter)

    return UrlCache(catalog, refresher, read_table, now)


async def test_a_url_list_is_refreshed_behind_a_stale_answer(
    url_cache: UrlCache, lists: ListServer
) -> None:
    refresher, listed = url_cache.refresher, url_cache.listed()
    # GIVEN the list was fetched once
    assert await refresher.refresh_due() == 1
    assert await refresher.refresh_due() == 0  # fresh: not fetched again
    assert _texts(await listed.suggest("patch", "tenant", "")) == ["acme", "globex", "initech"]

    # WHEN the source changes and the TTL (300 s) passes
    lists.body = "# tenants\numbrella\n\nacme\n"
    url_cache.now[0] += timedelta(seconds=301)
    # THEN the next answer is the old list, at once, and the new one is fetched behind it
    assert _texts(await listed.suggest("patch", "tenant", "")) == ["acme", "globex", "initech"]
    await listed.join()
    assert _texts(await listed.suggest("patch", "tenant", "")) == ["umbrella", "acme"]
    assert await listed.problem("patch", "tenant", "globex") is not None
    assert await listed.problem("patch", "tenant", "umbrella") is None
    await listed.join()


async def test_a_slow_reread_of_the_table_does_not_put_back_the_list_fetched_behind_it(
    url_cache: UrlCache, lists: ListServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    refresher = url_cache.refresher
    fetched_behind = ["umbrella", "acme"]
    slow = [False]
    fetched = asyncio.Event()
    refresh = refresher.refresh

    async def refresh_then_tell(*args: Any) -> Any:
        record = await refresh(*args)
        fetched.set()  # the listener holds it before this task next waits
        return record

    monkeypatch.setattr(refresher, "refresh", refresh_then_tell)

    async def read(command: str, parameter: str) -> Any:
        record = await url_cache.read_table(command, parameter)
        if slow[0]:  # this re-read answers only after the fetch behind it was held
            async with asyncio.timeout(10):
                await fetched.wait()
        return record

    listed = url_cache.listed(read)
    # GIVEN the list was fetched and is held
    assert await refresher.refresh_due() == 1
    assert _texts(await listed.suggest("patch", "tenant", "")) == ["acme", "globex", "initech"]
    # WHEN it goes stale, and the re-read of the table behind the answer ends last
    lists.body = "umbrella\nacme\n"
    url_cache.now[0] += timedelta(seconds=301)
    slow[0] = True
    fetched.clear()
    await listed.suggest("patch", "tenant", "")
    await listed.join()
    slow[0] = False
    # THEN the fetched list stays: the older table read does not replace it
    assert [i.text for i in listed.listed_items("patch", "tenant")] == fetched_behind


async def test_a_command_list_is_filled_by_the_batch_side_and_the_gateway_only_reads_it(
    aws: AwsClients, names: Names, topology: BootstrapReport, tmp_path: Path
) -> None:
    catalog = load_catalog(write_catalog(tmp_path, closed_port_url()))
    assert {p.source.kind for p in listed_parameters(catalog)} == {"git", "url", "command"}

    async def read(command: str, parameter: str) -> Any:
        return await read_options(aws.dynamodb, names.state_table, command, parameter)

    gateway_side = OptionsRefresher(
        catalog, aws.dynamodb, names.state_table, kinds=frozenset({"git", "url"})
    )
    listed = ListedOptions(catalog, read, gateway_side, reload_seconds=0)
    # GIVEN the gateway never runs commands: it says who will list them
    [said] = _texts(await listed.suggest("regions", "region", ""))
    assert said == "list unavailable: the batch service has not listed the command source yet"
    await listed.join()
    assert await read("regions", "region") is None

    # WHEN the batch side refreshes (every kind), the command's output is cached
    batch_side = OptionsRefresher(
        catalog, aws.dynamodb, names.state_table, cache_dir=tmp_path / "cache"
    )
    assert await batch_side.refresh_due() == 3
    # (the gateway answers from memory and re-reads the state table behind the answer)
    await listed.suggest("regions", "region", "")
    await listed.join()
    assert _texts(await listed.suggest("regions", "region", "")) == ["eu-west-1", "us-east-1"]

    # WHEN the command fails later, the last good list stays, with the failure noted
    (tmp_path / "regions.txt").unlink()
    [region] = [p for p in listed_parameters(catalog) if p.parameter == "region"]
    record = await batch_side.refresh(region, await read("regions", "region"))
    assert record.error is not None and "python3 failed (exit 1)" in record.error
    assert [i.value for i in record.items] == ["eu-west-1", "us-east-1"]
    assert await listed.problem("regions", "region", "us-east-1") is None
    await listed.join()


def _texts(answer: dict[str, Any]) -> list[str]:
    return [o["text"]["text"] for o in answer["options"]]


# --------------------------------------------------------------------------- in a browser


@pytest.mark.skipif(chromium_executable() is None, reason="no chromium on this machine")
async def test_a_person_searches_a_listed_choice_on_the_page_in_a_browser(
    gateway_at: GatewayAt,
    aws: AwsClients,
    topology: BootstrapReport,
    standin: SlackStandin,
    lists: ListServer,
    tmp_path: Path,
) -> None:
    images = Path(os.environ.get("TOILKIT_SCREENSHOT_DIR") or tmp_path / "screenshots")
    await asyncio.to_thread(images.mkdir, parents=True, exist_ok=True)
    modal = "form.live-modal"
    async with (
        gateway_at(lists.url) as gateway,
        chromium(tmp_path / "chromium") as browser,
    ):
        await browser.open(f"{standin.base_url}/?channel=%23toilkit&user={ALICE}")
        await browser.type_into("form.composer input", "/toil run patch")
        await browser.click("form.composer button[type=submit]")
        await browser.wait_for(f"!!document.querySelector({json.dumps(modal)})")

        for parameter, typed, more, value in (
            ("script", "fix", "_t", "script/patches/fix_totals.rb"),
            ("tenant", "gl", "o", "globex"),
        ):
            box = f".el[data-block-id='param:{parameter}'] input[data-suggest]"
            select = f".el[data-block-id='param:{parameter}'] select"
            # Typing asks the app; the first answer says the list is loading ...
            await browser.type_into(box, typed)
            await browser.wait_for(
                f"document.querySelector({json.dumps(select)}).innerText.includes('still loading')"
            )
            await gateway.options.join()
            # ... and typing on shows the list, filtered
            await browser.type_into(box, more)
            await browser.wait_for(
                f"Array.from(document.querySelector({json.dumps(select)}).options)"
                f".some(o => o.value === {json.dumps(value)})"
            )
            await browser.choose(select, value)
        await browser.type_into(".el[data-block-id=reason] textarea", "INC-9: wrong totals")
        await browser.screenshot(images / "standin-options.png")
        await browser.click(f"{modal} button[type=submit]")
        await browser.wait_for(f"!document.querySelector({json.dumps(modal)})")
        # The modal closes on the ack; the request is published after it.
        await gateway.after_ack.join()
        [requested] = await events_on(aws, topology, "batch")

    values = {p.name: p.value for p in requested.parameters}
    assert values == {"script": "script/patches/fix_totals.rb", "tenant": "globex"}
