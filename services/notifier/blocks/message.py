"""The unit every ``render_*`` function returns and the Slack adapter sends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.slack.blocks import Block


@dataclass(frozen=True)
class SlackMessage:
    """A message to post or an update to make: notification text and Block Kit blocks."""

    text: str
    blocks: tuple[Block, ...]

    def as_arguments(self) -> dict[str, Any]:
        """The ``text`` and ``blocks`` arguments of ``chat.postMessage``/``chat.update``."""
        return {"text": self.text, "blocks": [dict(block) for block in self.blocks]}
