"""What every stand-in shares: an aiohttp server on a (free) loopback port, its lifecycle,
and running it alone in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, Self

from aiohttp import web

logger = logging.getLogger(__name__)


async def serve(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on ``host:port`` (0 picks a free port).

    Returns:
        The runner (``await runner.cleanup()`` stops it) and the ``http://host:port`` URL
        clients should use (a wildcard host becomes 127.0.0.1, IPv6 gets brackets).
    """
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound_port = runner.addresses[0][1]
    url_host = "127.0.0.1" if host in ("", "0.0.0.0") else host
    url_host = f"[{url_host}]" if ":" in url_host else url_host
    return runner, f"http://{url_host}:{bound_port}"


class StandinServer:
    """A stand-in's lifecycle: ``start`` (a free port by default), ``stop``, ``async with``.

    A stand-in names itself in :attr:`name` and adds its routes in :meth:`add_routes`.
    """

    name: ClassVar[str] = "stand-in"
    #: The port it takes when run alone (:func:`run_from_command_line`).
    default_port: ClassVar[int] = 0

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Add the stand-in's endpoints."""
        raise NotImplementedError

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 picks a free port) and return the base URL."""
        app = web.Application()
        self.add_routes(app.router)
        self._runner, self._url = await serve(app, host, port)
        logger.info("%s listening on %s", self.name, self._url)
        return self._url

    async def stop(self) -> None:
        """Stop serving; what the stand-in recorded stays readable."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def announcement(self) -> str:
        """What running it alone prints once it listens: where to reach it."""
        return f"{self.name}: {self.url}"

    @property
    def url(self) -> str:
        """``http://host:port`` of the running stand-in."""
        if self._url is None:
            raise RuntimeError(f"the {self.name} is not started")
        return self._url


async def serve_until_cancelled(
    server: StandinServer, host: str, port: int, announce: Callable[[], str]
) -> None:
    """Run ``server`` until cancelled (Ctrl-C), printing ``announce()`` once it listens."""
    await server.start(host, port)
    print(announce(), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def run_in_foreground(serving: Coroutine[Any, Any, None]) -> None:
    """Run a stand-in's ``serving`` coroutine until interrupted (Ctrl-C ends it quietly)."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serving)


def run_from_command_line(make: type[StandinServer], argv: list[str] | None = None) -> None:
    """``python -m toilkit.standins.<name> [--host H] [--port P]``: run a ``make``
    stand-in in the foreground until Ctrl-C, printing its :meth:`~StandinServer.announcement`
    once it listens."""
    standin = make()
    parser = argparse.ArgumentParser(description=f"Run toilkit's {standin.name}.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=standin.default_port)
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    run_in_foreground(
        serve_until_cancelled(standin, options.host, options.port, standin.announcement)
    )
