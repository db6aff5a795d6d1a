"""The unit every ``render_*`` function returns and the Slack adapter sends."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.slack.blocks import MAX_NOTIFICATION_TEXT, Block, clip, fit_blocks


@dataclass(frozen=True)
class SlackMessage:
    """A message to post or an update to make: notification text and Block Kit blocks."""

    text: str
    blocks: tuple[Block, ...]

    @classmethod
    def fitted(cls, text: str, blocks: Sequence[Block | None]) -> SlackMessage:
        """The message with ``text`` as its notification text and ``blocks``, both cut to
        what Slack takes (:data:`MAX_NOTIFICATION_TEXT` characters, :func:`fit_blocks`)."""
        return cls(text=clip(text, MAX_NOTIFICATION_TEXT), blocks=fit_blocks(blocks))

    def as_arguments(self) -> dict[str, Any]:
        """The ``text`` and ``blocks`` arguments of ``chat.postMessage``/``chat.update``."""
        return {"text": self.text, "blocks": [dict(block) for block in self.blocks]}
