"""The batch service's settings (``TOILKIT_BATCH_*`` environment variables)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, SecretStr

from shared.catalog import DEMO_CATALOG
from shared.env_settings import EnvConfigDict, EnvSettings
from shared.options_fetch import DEFAULT_CACHE_DIR, OptionsCacheDir
from shared.settings import WorkerSettings


class BatchSettings(EnvSettings):
    """Where the catalog is, where run logs go, and how runs are watched.

    Nested worker settings use ``__``: ``TOILKIT_BATCH_WORKER__CONCURRENCY=4``.
    """

    model_config = EnvConfigDict(
        env_prefix="TOILKIT_BATCH_", env_nested_delimiter="__", extra="ignore"
    )

    catalog_path: Path = Field(
        default=DEMO_CATALOG, description="The command catalog (YAML); default: the demo one."
    )
    worker: WorkerSettings = WorkerSettings()

    log_group: str = Field(default="/toilkit/batch", min_length=1, max_length=512)
    log_dir: Path = Field(
        default=Path(".toilkit/runs"), description="Local copies of run logs (local runner)."
    )
    console_log_links: bool | None = Field(
        default=None,
        description="Link CloudWatch's console (True) or the local log file (False); "
        "default: the console on AWS, the file on an emulator.",
    )
    log_tail_lines: int = Field(default=20, ge=1, le=200)
    progress_enabled: bool = Field(
        default=True,
        description="Publish a running run's last log lines and elapsed time (live "
        "progress in its Slack message).",
    )
    progress_interval_seconds: float = Field(
        default=10,
        ge=1,
        le=3600,
        description="Seconds between two progress updates of one run (at least 1; keep "
        "the 10 s default in production: Slack rate-limits chat.update).",
    )
    progress_tail_lines: int = Field(
        default=10, ge=1, le=50, description="How many last log lines a progress update shows."
    )

    kill_grace_seconds: NonNegativeFloat = Field(
        default=10, description="SIGTERM, then this long, then SIGKILL."
    )
    poll_initial_seconds: NonNegativeFloat = Field(
        default=2, description="First wait between status polls of a remote run."
    )
    poll_max_seconds: NonNegativeFloat = 30
    completion_queue_url: str | None = Field(
        default=None,
        description="SQS queue fed by an EventBridge rule with Step Functions execution "
        "status changes; without it, remote runs are polled.",
    )
    approval_sweep_seconds: PositiveFloat = Field(
        default=15, description="How often expired approval requests are closed."
    )
    record_retention_days: PositiveInt = 400
    schedules_enabled: bool = Field(
        default=True,
        description="Tick the catalog's schedules in this process (off: another does).",
    )
    schedule_tick_seconds: PositiveFloat = Field(default=20, description="How often it ticks.")
    options_refresh_seconds: PositiveFloat = Field(
        default=30,
        description="How often the lists of listed choices (options_from) are looked at; "
        "each is fetched again when older than its ttl_seconds.",
    )
    options_cache_dir: OptionsCacheDir = DEFAULT_CACHE_DIR
    schedule_lookback_seconds: PositiveFloat = Field(
        default=1200,
        description="How far back a tick looks for a due run; at least the period of the "
        "housekeeping invocation on AWS (15 min by default).",
    )

    slack_bot_token: SecretStr | None = Field(
        default=None, description="Resolves Slack user groups (usergroups:read)."
    )
    slack_api_url: str | None = Field(
        default=None, description="Slack Web API base URL (the stand-in's, in tests)."
    )
    group_cache_seconds: NonNegativeFloat = 60
