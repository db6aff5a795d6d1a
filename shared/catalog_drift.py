"""The catalog's ``drift:`` section: who may press the drift report's buttons, and what
**Revert** runs (docs/drift-actions.md). Part of the catalog model (``shared/catalog.py``)."""

from __future__ import annotations

import fnmatch

from pydantic import BaseModel, ConfigDict, Field

from shared.catalog_principals import NAME_PATTERN, Principals


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


#: The parameters a ``drift.revert`` command must declare: what the Revert button fills in.
REVERT_PARAMETERS = ("state", "targets")


class DriftRevertPolicy(_Model):
    """What the drift report's **Revert** button runs (``drift: revert:`` in the catalog).

    Attributes:
        command: The catalog command it requests; it declares the parameters ``state``
            (the state's name) and ``targets`` (the drifted addresses, separated by
            spaces), and runs e.g. ``toilkit drift apply`` (docs/drift-actions.md). Who may
            request it, who approves and its preview are that command's, per environment.
        environments: State-name glob -> the command's environment, first match wins
            (``{"prod-*": production, "*": staging}``); the gateway decides it from the
            state, never from the button.
    """

    command: str = Field(pattern=NAME_PATTERN)
    environments: dict[str, str] = Field(min_length=1)

    def environment_for(self, state: str) -> str | None:
        """The environment a revert of ``state`` runs in, or None when no glob matches."""
        return next(
            (env for glob, env in self.environments.items() if fnmatch.fnmatchcase(state, glob)),
            None,
        )


class DriftActionsPolicy(_Model):
    """Who may press the drift buttons (``drift:`` in the catalog).

    An action left out is open to everyone in the workspace (as "I'm on it" is); name
    users or groups to restrict it.
    """

    ignore: Principals | None = Field(
        default=None, description="May write and remove ignore rules (Ignore…)."
    )
    rescan: Principals | None = Field(default=None, description="May press Re-scan now.")
    accept: Principals | None = Field(
        default=None, description="May press Accept into code (a branch for review)."
    )
    revert: DriftRevertPolicy | None = Field(
        default=None, description="The command Revert requests; no button without it."
    )
