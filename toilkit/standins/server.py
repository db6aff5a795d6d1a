"""The aiohttp serving every stand-in shares: listen on a (free) loopback port, say where."""

from __future__ import annotations

from aiohttp import web


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
