"""Settings from the environment (prefix ``RTC_``).

Everything has a default that runs a laptop demo: SQLite under ``RTC_DATA_DIR``,
an in-process broker, and mail written to an outbox folder. Production sets
``RTC_DATABASE_URL``, ``RTC_REDIS_URL``, ``RTC_SMTP_URL`` and ``RTC_BASE_URL``.
"""

from __future__ import annotations

import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

TERMS_VERSION = "2026-11-01"
PRIVACY_VERSION = "2026-11-01"


class ConfigError(Exception):
    """Bad configuration; the message is one line that names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RTC_", extra="ignore")

    data_dir: Path = Path("data")
    database_url: str | None = None
    redis_url: str | None = None
    smtp_url: str | None = None
    mail_from: str = "rtc_server <no-reply@localhost>"
    base_url: str = "http://127.0.0.1:8000"
    secret_key: str | None = Field(default=None, min_length=32)
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    clinic_name: str = "Riverside Community Clinic"
    clinic_timezone: str = "America/New_York"
    session_idle_seconds: int = Field(default=30 * 60, ge=60)
    session_absolute_seconds: int = Field(default=12 * 3600, ge=300)
    ws_max_per_user: int = Field(default=10, ge=1)
    ws_max_total: int = Field(default=20_000, ge=1)
    auto_migrate: bool = True
    log_level: str = "INFO"

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip().rstrip("/") for o in value.split(",") if o.strip()]
        return value

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL such as https://portal.example.org")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            value = "postgresql+asyncpg://" + value.split("://", 1)[1]
        if value.startswith("sqlite:///"):
            value = "sqlite+aiosqlite:///" + value.removeprefix("sqlite:///")
        if not (value.startswith("postgresql+asyncpg://") or value.startswith("sqlite+aiosqlite:///")):
            raise ValueError("must be a postgresql:// or sqlite:/// URL")
        return value

    @field_validator("redis_url", "smtp_url")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp(cls, value: str | None) -> str | None:
        if value and urlsplit(value).scheme not in ("smtp", "smtps", "smtp+starttls"):
            raise ValueError("must be smtp://host:port, smtps://… or smtp+starttls://…")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis(cls, value: str | None) -> str | None:
        if value and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be a redis:// URL")
        return value

    # Derived values -------------------------------------------------------

    @cached_property
    def database_url_effective(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'rtc_server.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url_effective.startswith("sqlite")

    @property
    def secure_cookies(self) -> bool:
        return self.base_url.startswith("https://")

    @property
    def origins(self) -> set[str]:
        """Origins allowed for browser requests and WebSocket handshakes."""
        parts = urlsplit(self.base_url)
        return {f"{parts.scheme}://{parts.netloc}", *self.allowed_origins}

    @cached_property
    def secret(self) -> bytes:
        """Key for HMACs; generated once and kept in the data dir when unset."""
        if self.secret_key:
            return self.secret_key.encode()
        path = self.data_dir / "secret_key"
        if path.exists():
            return path.read_text().strip().encode()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.touch(mode=0o600)
        path.write_text(key)
        return key.encode()

    @property
    def audit_head_file(self) -> Path:
        """Where the audit chain's head is recorded, outside the database."""
        return self.data_dir / "audit-head"

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning a validation error into one line naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        name = "RTC_" + str(err["loc"][0]).upper() if err["loc"] else "RTC_?"
        raise ConfigError(f"{name}: {err['msg']}") from None
