"""Running the Slack stand-in alone: ``python -m toilkit.standins.slack``."""

from __future__ import annotations

import argparse
import logging
import os

from toilkit.standins.server import run_in_foreground, serve_until_cancelled
from toilkit.standins.slack.standin import SlackStandin


async def serve_forever(
    host: str = "127.0.0.1",
    port: int = 3001,
    *,
    app_url: str | None = None,
    signing_secret: str | None = None,
) -> None:
    """Run a Slack stand-in until cancelled (Ctrl-C), playing Slack's client for the app at
    ``app_url`` when given."""
    standin = SlackStandin(app_url=app_url, signing_secret=signing_secret)

    def announce() -> str:
        lines = [f"Slack stand-in: page {standin.base_url}/  Web API {standin.api_url}"]
        if app_url:
            lines.append(f"Slash commands and interactions go to {app_url}")
        return "\n".join(lines)

    await serve_until_cancelled(standin, host, port, announce)


def run_standin(
    host: str = "127.0.0.1",
    port: int = 3001,
    *,
    app_url: str | None = None,
    signing_secret: str | None = None,
) -> None:
    """Run a Slack stand-in in the foreground until interrupted."""
    run_in_foreground(serve_forever(host, port, app_url=app_url, signing_secret=signing_secret))


def main(argv: list[str] | None = None) -> None:
    """``python -m toilkit.standins.slack [--host H] [--port P] [--app-url URL
    --signing-secret S]``."""
    parser = argparse.ArgumentParser(description="Run toilkit's Slack stand-in.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3001)
    parser.add_argument(
        "--app-url",
        help="the app's Request URL (the gateway's http://HOST:PORT/slack/events): the page "
        "then sends it slash commands, button clicks and modal submissions, signed as Slack does",
    )
    parser.add_argument(
        "--signing-secret",
        default=os.environ.get("SLACK_SIGNING_SECRET")
        or os.environ.get("TOILKIT_GATEWAY_SLACK_SIGNING_SECRET"),
        help="the app's signing secret (default: $SLACK_SIGNING_SECRET, then "
        "$TOILKIT_GATEWAY_SLACK_SIGNING_SECRET)",
    )
    options = parser.parse_args(argv)
    if options.app_url and not options.signing_secret:
        parser.error("--app-url needs --signing-secret (or SLACK_SIGNING_SECRET)")
    logging.basicConfig(level=logging.INFO)
    run_standin(
        options.host,
        options.port,
        app_url=options.app_url,
        signing_secret=options.signing_secret if options.app_url else None,
    )
