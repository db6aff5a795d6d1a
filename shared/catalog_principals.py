"""Slack users and user groups as the catalog names them (``users: [U...]``,
``usergroups: [S...]``), and the name rules every catalog part shares."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, model_validator

#: A command's (or a drift policy's command) name.
NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
#: Slack user ids (``U...``, ``W...`` for Enterprise Grid) and user group ids (``S...``).
SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")
SLACK_GROUP_ID = re.compile(r"^S[A-Z0-9]{2,20}$")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class Principals(_Model):
    """Slack users and user groups (a group allows each of its members)."""

    users: tuple[str, ...] = ()
    usergroups: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _ids_look_like_slack_ids(self) -> Principals:
        bad_users = [u for u in self.users if not SLACK_USER_ID.fullmatch(u)]
        bad_groups = [g for g in self.usergroups if not SLACK_GROUP_ID.fullmatch(g)]
        if bad_users:
            raise ValueError(f"not Slack user ids (U...): {', '.join(bad_users)}")
        if bad_groups:
            raise ValueError(f"not Slack user group ids (S...): {', '.join(bad_groups)}")
        return self

    @property
    def empty(self) -> bool:
        return not self.users and not self.usergroups

    def ids(self) -> tuple[str, ...]:
        return self.users + self.usergroups
