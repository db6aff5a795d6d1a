"""The detector's process settings (``TOILKIT_DETECTOR_*``).

What to scan lives in ``toilkit.yaml`` (:mod:`services.detector.config`); these say where
that file is and how this process runs: ``TOILKIT_DETECTOR_CONFIG=/repo/toilkit.yaml`` or
``TOILKIT_DETECTOR_REPO=/repo``, the Terraform executable, the local scheduler switch,
and the worker (``TOILKIT_DETECTOR_WORKER__HANDLER_TIMEOUT=7200``...).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import Field, PositiveFloat, model_validator

from services.detector.config import (
    CONFIG_FILE_NAME,
    DetectorConfig,
    config_for_repo,
    load_config,
)
from shared.env_settings import EnvConfigDict, EnvSettings
from shared.settings import WorkerSettings


def _detector_worker() -> WorkerSettings:
    # A scan plans every state and may take many minutes: one at a time per process
    # (states are planned concurrently inside it), with a long handler budget; the
    # heartbeat keeps the request hidden meanwhile.
    return WorkerSettings(concurrency=1, handler_timeout=3600)


class DetectorSettings(EnvSettings):
    """Settings of the detector process.

    Attributes:
        config: ``toilkit.yaml`` to read.
        repo: A repository to discover states in, when there is no ``config``.
        terraform: The Terraform executable; overrides ``terraform:`` in the file.
        work_dir: Where plans are written during a scan (removed after each scan).
        plugin_cache_dir: Terraform's shared plugin cache.
        scheduler: Run the states' schedules in this process (``toilkit up``); switch
            off where EventBridge runs them.
        worker: How the detector's queue is consumed.
        run_limit_seconds: How long the process that runs a scan may run: the drift-scan
            CodeBuild project's build timeout there (Terraform sets it), the worker's
            ``handler_timeout`` when unset. A scan that takes most of it is warned about in
            the digest before it starts being cut off.
    """

    model_config = EnvConfigDict(
        env_prefix="TOILKIT_DETECTOR_", env_nested_delimiter="__", extra="ignore"
    )

    config: Path | None = None
    repo: Path | None = None
    terraform: str | None = None
    work_dir: Path = Field(default_factory=lambda: Path(tempfile.gettempdir()) / "toilkit-detector")
    plugin_cache_dir: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "toilkit" / "terraform-plugins"
    )
    scheduler: bool = True
    worker: WorkerSettings = Field(default_factory=_detector_worker)
    run_limit_seconds: PositiveFloat | None = None

    @property
    def scan_run_limit(self) -> float:
        """The time a whole scan has in this process."""
        return self.run_limit_seconds or self.worker.handler_timeout

    @model_validator(mode="after")
    def _one_source(self) -> DetectorSettings:
        if self.config is not None and self.repo is not None:
            raise ValueError("set TOILKIT_DETECTOR_CONFIG or TOILKIT_DETECTOR_REPO, not both")
        return self

    def load_detector_config(self, cwd: Path | None = None) -> DetectorConfig | None:
        """The configuration these settings point to; ``None`` when nothing is set and
        the working directory has no ``toilkit.yaml``.

        Raises:
            ConfigError: The file or repository cannot be used.
        """
        if self.config is not None:
            return load_config(self.config)
        if self.repo is not None:
            return config_for_repo(self.repo)
        default_file = (cwd or Path.cwd()) / CONFIG_FILE_NAME
        if default_file.is_file():
            return load_config(default_file)
        return None
