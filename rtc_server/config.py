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

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError
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
    #: Shown in every page's header and footer, on the help desk and in "please call" messages.
    clinic_phone: str | None = None
    #: Opening hours as the clinic writes them, e.g. "Mon-Fri 8am-6pm".
    clinic_hours: str | None = None
    #: Business days a staff check of a registration takes (told to applicants).
    verification_review_days: int = Field(default=2, ge=1, le=30)
    #: Patients may cancel or reschedule until this many hours before the visit.
    appointment_cancel_cutoff_hours: int = Field(default=24, ge=0)
    #: Reminders go out this many hours before each appointment.
    appointment_reminder_hours: Annotated[list[int], NoDecode] = Field(default_factory=lambda: [72, 24])
    #: Open times are offered this many weeks ahead.
    appointment_booking_weeks: int = Field(default=8, ge=1, le=52)
    #: Nothing can be booked sooner than this many minutes from now.
    appointment_min_notice_minutes: int = Field(default=60, ge=0)
    # Video visits (docs/visits.md, docs/deployment.md for coturn).
    #: STUN and TURN server URLs handed to browsers (comma-separated), e.g. turn:turn.example.org:3478.
    stun_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    turn_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: coturn's static-auth-secret: participants get short-lived TURN REST credentials from it.
    turn_secret: str | None = None
    turn_ttl_seconds: int = Field(default=14400, ge=60)
    #: Relay all media through TURN so neither side learns the other's IP address.
    ice_relay_only: bool = False
    #: Device checks (aiortc echoes media back) at once per instance, and their length.
    device_check_max: int = Field(default=3, ge=0)
    device_check_seconds: float = Field(default=45.0, gt=0)
    session_idle_seconds: int = Field(default=30 * 60, ge=60)
    session_absolute_seconds: int = Field(default=12 * 3600, ge=300)
    ws_max_per_user: int = Field(default=10, ge=1)
    ws_max_total: int = Field(default=20_000, ge=1)
    auto_migrate: bool = True
    log_level: str = "INFO"

    # Tunables. Tests set the delays near zero, except the tests that assert them.
    #: Wait after a failed sign-in: this many seconds per recent failure ...
    login_delay_step_seconds: float = Field(default=0.2, ge=0)
    #: ... up to this many.
    login_delay_max_seconds: float = Field(default=2.0, ge=0)
    #: Sign-in attempts per IP address in 15 minutes before 429.
    login_ip_limit: int = Field(default=50, ge=1)
    #: Answers that must not tell what was found take at least this long (auth.timing).
    response_floor_seconds: float = Field(default=0.4, ge=0)
    #: How often an open socket re-checks its session (events announce ends at once).
    ws_recheck_seconds: float = Field(default=15.0, gt=0)
    #: A request body must arrive within this many seconds (else 408).
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    #: The mail worker looks for due mail at least this often (it is also woken on commit).
    mail_poll_seconds: float = Field(default=5.0, gt=0)
    #: First retry of a failed send after this many seconds, doubling each time ...
    mail_retry_seconds: float = Field(default=30.0, ge=0)
    #: ... until this many attempts, then the mail is given up (and its body deleted).
    mail_max_attempts: int = Field(default=8, ge=1)
    #: A claimed mail whose sender vanished (a crashed instance) is claimable again after this.
    mail_claim_seconds: float = Field(default=300.0, gt=0)

    # --- visits ---
    #: How long a visit's invitation link for a guest (an interpreter, a family member)
    #: may be redeemed, in minutes; a guest's session lasts while the visit is open.
    visit_invite_ttl_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)

    # --- messaging ---
    #: Messages a person may send per second, on average, per instance ...
    chat_messages_per_second: float = Field(default=2.0, gt=0)
    #: ... with bursts up to this many (a pasted list, a quick back-and-forth).
    chat_burst: float = Field(default=20.0, ge=1)
    #: Conversations one socket may follow live at once.
    chat_follows_per_socket: int = Field(default=20, ge=1)
    #: A person is told a new message is waiting (``chat.unread`` on their user channel)
    #: at most once per conversation in this many seconds; the last count always follows.
    chat_unread_notice_seconds: float = Field(default=1.0, ge=0)
    #: What the compose page says about replies and emergencies.
    chat_reply_time: str = "within 2 business days"
    chat_emergency_number: str = "911"
    #: Largest file a message may carry (images: PNG, JPEG, GIF, WebP; PDF), in bytes.
    chat_attachment_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    #: An upload no message carries is deleted after this many hours.
    chat_attachment_unused_hours: float = Field(default=24.0, gt=0)
    #: Uploads no message carries yet that one person may hold at once (count, and
    #: total bytes); past either, an upload is refused (429 ``too_many_unsent_uploads``).
    chat_attachment_unused_files: int = Field(default=10, ge=1)
    chat_attachment_unused_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    #: Uploads one person may have in progress at once, per instance (429 ``too_many_uploads``).
    chat_uploads_in_flight: int = Field(default=2, ge=1)
    #: Uploads are refused (507 ``storage_full``) while the attachment directory's
    #: file system has less free space than this, in bytes.
    chat_attachment_min_free_bytes: int = Field(default=512 * 1024 * 1024, ge=0)
    #: A new message for someone with no open page is told by email/SMS (their
    #: ``new_messages`` choice) after this many seconds, one notice per burst.
    chat_notice_delay_seconds: float = Field(default=120.0, gt=0)
    #: After a notice went out, the next waits until the person has read what it
    #: was about (they came back), or at most this many seconds.
    chat_notice_backoff_seconds: float = Field(default=3600.0, ge=0)
    #: How often an instance confirms in the database who has a page open on it
    #: (a crashed instance's claims expire after three of these).
    presence_heartbeat_seconds: float = Field(default=15.0, gt=0)

    @field_validator("stun_urls", "turn_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            return [u.strip() for u in value.split(",") if u.strip()]
        return value

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip().rstrip("/") for o in value.split(",") if o.strip()]
        return value

    @field_validator("appointment_reminder_hours", mode="before")
    @classmethod
    def _split_hours(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(h) for h in value.split(",") if h.strip()]
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

    @model_validator(mode="after")
    def _shared_key_for_several_instances(self) -> Settings:
        # Several instances (Redis, PostgreSQL) must share one key: a key generated
        # per instance would leave each unable to read the others' two-factor secrets.
        shared = self.redis_url or (self.database_url or "").startswith("postgresql")
        if shared and not self.secret_key:
            raise PydanticCustomError(
                "secret_key_required",
                "RTC_SECRET_KEY must be set (the same on every instance) when RTC_REDIS_URL or a "
                "PostgreSQL RTC_DATABASE_URL is set; generate one with: "
                "python -c 'import secrets; print(secrets.token_urlsafe(48))'",
            )
        return self

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
        from rtc_server.datadir import ensure_private_dir

        ensure_private_dir(self.data_dir)
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
        if not err["loc"]:  # a rule across variables: its message names them
            raise ConfigError(str(err["msg"])) from None
        name = "RTC_" + str(err["loc"][0]).upper()
        raise ConfigError(f"{name}: {err['msg']}") from None
