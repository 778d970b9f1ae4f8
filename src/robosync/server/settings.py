"""Every ``ROBOSYNC_*`` setting of the server, read once and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "ROBOSYNC_"
# Every command defaults to this folder (relative to where it runs).
DATA_DIR_DEFAULT = "robosync-data"
SQLITE_FILE = "robosync.sqlite"


class Settings(BaseSettings):
    """Server configuration; each field is the environment variable ``ROBOSYNC_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    data_dir: Path = Field(
        default=Path(DATA_DIR_DEFAULT),
        description="folder for the SQLite database, the local blob store and its secret",
    )
    host: str = Field(default="127.0.0.1", description="address to listen on")
    port: int = Field(default=8000, description="port to listen on")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db "
        "(default sqlite:///DATA_DIR/robosync.sqlite)",
    )
    public_url: str | None = Field(
        default=None,
        description="base URL robots use to reach this API, used in local-store URLs "
        "(default http://HOST:PORT)",
    )
    s3_endpoint: str | None = Field(
        default=None, description="S3 endpoint URL; with S3_BUCKET selects the S3 store"
    )
    s3_bucket: str | None = Field(default=None, description="S3 bucket for blobs")
    s3_access_key: str | None = Field(default=None, description="S3 access key id")
    s3_secret_key: str | None = Field(default=None, description="S3 secret access key")
    s3_region: str = Field(default="us-east-1", description="S3 region")
    s3_addressing_style: str = Field(
        default="path", description="S3 addressing style: path or virtual"
    )
    s3_public_endpoint: str | None = Field(
        default=None, description="S3 endpoint robots use, if it differs from S3_ENDPOINT"
    )
    presign_expiry_seconds: int = Field(
        default=900, ge=1, description="lifetime of presigned upload and download URLs"
    )
    trash_days: float = Field(
        default=30,
        ge=0,
        description="days a deleted project stays restorable before `gc` purges it",
    )
    upload_expiry_seconds: int = Field(
        default=24 * 3600, ge=60, description="lifetime of an unfinished (resumable) upload"
    )
    max_commit_lines: int = Field(
        default=200_000, ge=1, description="most put/delete lines one commit may have"
    )
    max_line_bytes: int = Field(
        default=8192, ge=256, description="longest NDJSON line of a commit, in bytes"
    )
    max_body_bytes: int = Field(
        default=256 * 1024 * 1024, ge=1024, description="largest commit body, in bytes"
    )

    rate_limit: str = Field(
        default="1200/minute",
        description="per-user request rate, e.g. 1200/minute (empty: no limit)",
    )
    max_inflight_uploads: int = Field(
        default=2000,
        ge=0,
        description="per-user cap on uploads presigned but not completed (0: no cap)",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis URL for rate-limit state shared by replicas (default in-process)",
    )
    redis_key_prefix: str = Field(
        default="robosync",
        min_length=1,
        description="prefix of the Redis keys, to share one Redis between deployments",
    )
    metrics_token: str | None = Field(
        default=None,
        min_length=16,
        description="bearer token Prometheus must send to read /metrics "
        "(unset: /metrics is open to anyone who reaches the API)",
    )
    session_hours: float = Field(
        default=12, gt=0, description="how long a console sign-in lasts, in hours"
    )
    signin_rate_per_user: str = Field(
        default="10/minute", description="console sign-in attempts allowed per user name"
    )
    signin_rate_per_address: str = Field(
        default="30/minute", description="console sign-in attempts allowed per client address"
    )
    thumbnail_workers: int = Field(
        default=2, ge=1, description="threads that make thumbnails (each decodes one image)"
    )
    # Chosen by bench/console.py (docs/PERFORMANCE.md, "Web console"): Pillow was
    # faster on large JPEGs (what cameras write); peak RSS was the same within 5%.
    thumbnail_library: Literal["pyvips", "pillow"] = Field(
        default="pillow", description="library that decodes images for thumbnails"
    )
    log_format: Literal["json", "text"] = Field(
        default="json", description="log lines as JSON objects (json) or readable text (text)"
    )
    log_level: str = Field(default="info", description="lowest level logged: debug, info, ...")

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to SQLite inside the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir.resolve() / SQLITE_FILE}"

    @property
    def effective_public_url(self) -> str:
        """The base URL robots reach the API at, without a trailing slash."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def uses_s3(self) -> bool:
        """Whether blobs go to an S3 store rather than the local one."""
        return bool(self.s3_endpoint and self.s3_bucket)


def env_help() -> str:
    """One line per ``ROBOSYNC_*`` variable with its description, for ``--help``."""
    lines = []
    for name, field in Settings.model_fields.items():
        default = "" if field.default is None else f" [default: {field.default}]"
        lines.append(f"  {ENV_PREFIX}{name.upper():<24} {field.description}{default}")
    return "\n".join(lines)
