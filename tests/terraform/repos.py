"""Infrastructure repositories for tests: sample modules applied to a JSON cloud.

Shared by the detector's pipeline test and the end-to-end drift flow: a repository with a
``toilkit.yaml`` naming some of ``modules/`` as states, applied for real, and the two
console clicks that make ``drifting`` drift (and undo it).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from services.detector.config import DetectorConfig, load_config
from tests.terraform.testbed import Testbed, apply, edit_cloud


@dataclass
class Repo:
    """An infrastructure repository applied to a JSON cloud."""

    root: Path
    cloud: Path
    config: DetectorConfig


def make_repo(testbed: Testbed, root: Path, modules: tuple[str, ...], extra_yaml: str = "") -> Repo:
    """Copy ``modules`` into ``root`` as states of one repository and apply each.

    ``broken`` is copied but never applied (it cannot be). ``extra_yaml`` is appended to
    the ``toilkit.yaml`` (top-level settings such as ``channel:``).
    """
    root.mkdir(parents=True)
    cloud = root / "cloud.json"
    states = []
    for module in modules:
        path = testbed.copy_module(module, root)
        path = path.rename(root / module)
        if module != "broken":
            apply(path, testbed.environment(cloud))
        states.append(f"  - name: {module}\n    path: {module}\n")
    (root / "toilkit.yaml").write_text("states:\n" + "".join(states) + extra_yaml)
    return Repo(root=root, cloud=cloud, config=load_config(root / "toilkit.yaml"))


def drift_the_cloud(cloud: Path) -> None:
    """Retag the ``logs`` bucket and rotate the ``jobs`` queue's secret by hand."""
    _edit_by_hand(cloud, logs_env_tag="staging", jobs_secret="rotated-by-hand")


def repair_the_cloud(cloud: Path) -> None:
    """Undo :func:`drift_the_cloud` by hand (the code was right)."""
    _edit_by_hand(cloud, logs_env_tag="prod", jobs_secret="initial-secret")


def _edit_by_hand(cloud: Path, *, logs_env_tag: str, jobs_secret: str) -> None:
    """Set the ``logs`` bucket's ``env`` tag and the ``jobs`` queue's secret in the cloud."""

    def retag(bucket: dict[str, Any]) -> None:
        bucket["tags"]["env"] = logs_env_tag

    def rotate(queue: dict[str, Any]) -> None:
        queue["secret"] = jobs_secret

    edit_cloud(cloud, "cloud_bucket", "logs", retag)
    edit_cloud(cloud, "cloud_queue", "jobs", rotate)


class Clock:
    """The detector's clock: a scan "tomorrow" without waiting a day.

    Callable (the pipeline's ``clock``) and with ``now``/``sleep_until`` (the scheduler's
    :class:`~services.detector.scheduler.Clock`, as ``build_detector`` takes it). Setting
    ``current`` moves it; :meth:`advance_to` also wakes a scheduler waiting on it.
    """

    def __init__(self, start: datetime) -> None:
        self.current = start
        self._moved = asyncio.Event()

    def __call__(self) -> datetime:
        return self.current

    def now(self) -> datetime:
        return self.current

    def advance_to(self, moment: datetime) -> None:
        self.current = moment
        self._moved.set()

    async def sleep_until(self, moment: datetime) -> None:
        while self.current < moment:
            self._moved.clear()
            await self._moved.wait()
