"""Account tables. Secrets (password, security answer, tokens) are stored only
as hashes; ``UserPublic`` is the only shape that leaves the server."""

import enum
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import JSON, Column, DateTime, ForeignKey, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel


class Role(enum.StrEnum):
    patient = "patient"
    provider = "provider"
    staff = "staff"
    admin = "admin"
    #: A visit's invited guest (rooms.guests): no sign-in, no session; reaches one visit only.
    guest = "guest"


class UserStatus(enum.StrEnum):
    pending = "pending"  # registered, not yet activated
    active = "active"
    disabled = "disabled"


class SessionStage(enum.StrEnum):
    full = "full"
    mfa_pending = "mfa_pending"  # password ok, TOTP not yet given
    mfa_enroll = "mfa_enroll"  # password ok, role requires MFA and none is set up


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=nullable, index=index),
    )


class User(SQLModel, table=True):
    __tablename__ = "user_account"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64)
    username_norm: str = Field(max_length=64, unique=True)
    password_hash: str = Field(max_length=255)
    role: Role = Field(max_length=16)
    status: UserStatus = Field(default=UserStatus.pending, max_length=16)
    patient_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("patient.id", ondelete="RESTRICT"), unique=True),
    )
    practitioner_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("practitioner.id", ondelete="SET NULL"), unique=True),
    )  # a provider's row in the records on file (schedules, care team)
    display_name: str = Field(default="", max_length=200)
    email: str | None = Field(default=None, max_length=320, index=True)
    pending_email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=40)
    address_line: str | None = Field(default=None, max_length=200)
    city: str | None = Field(default=None, max_length=100)
    state: str | None = Field(default=None, max_length=50)
    zip: str | None = Field(default=None, max_length=20)
    #: The IANA zone the person chose for times (Account Settings); None: their device's.
    time_zone: str | None = Field(default=None, max_length=64)
    security_question: str | None = Field(default=None, max_length=200)
    security_answer_hash: str | None = Field(default=None, max_length=255)
    terms_version: str | None = Field(default=None, max_length=32)
    privacy_version: str | None = Field(default=None, max_length=32)
    terms_accepted_at: datetime | None = _ts()
    mfa_secret: str | None = Field(default=None, max_length=255)  # encrypted at rest
    mfa_enabled: bool = False
    notification_prefs: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    failed_logins: int = 0
    locked_until: datetime | None = _ts()
    password_changed_at: datetime | None = _ts()
    created_at: datetime | None = _ts(nullable=False)
    activated_at: datetime | None = _ts()


class AuthSession(SQLModel, table=True):
    """A server-side session. The cookie holds a random token; we keep its hash."""

    __tablename__ = "auth_session"

    id: str = Field(primary_key=True, max_length=64)  # sha256(token) hex
    public_id: str = Field(max_length=32, unique=True)  # shown in "your sessions"
    user_id: int = Field(
        sa_column=Column(Integer, ForeignKey("user_account.id", ondelete="CASCADE"), index=True,
                         nullable=False)
    )
    stage: SessionStage = Field(max_length=16)
    created_at: datetime | None = _ts(nullable=False)
    last_seen_at: datetime | None = _ts(nullable=False)
    expires_at: datetime | None = _ts(nullable=False)
    ended_at: datetime | None = _ts()
    ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=300)


class TokenPurpose(enum.StrEnum):
    activation = "activation"
    password_reset = "password_reset"  # noqa: S105 (a purpose name, not a secret)
    email_change = "email_change"


class AccountToken(SQLModel, table=True):
    """Single-use emailed token (>=128 bits random); only its hash is stored."""

    __tablename__ = "account_token"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    purpose: TokenPurpose = Field(max_length=32)
    user_id: int = Field(
        sa_column=Column(Integer, ForeignKey("user_account.id", ondelete="CASCADE"), index=True,
                         nullable=False)
    )
    email: str | None = Field(default=None, max_length=320)  # where it was sent / new email
    created_at: datetime | None = _ts(nullable=False)
    expires_at: datetime | None = _ts(nullable=False)
    used_at: datetime | None = _ts()


class RegistrationStatus(enum.StrEnum):
    awaiting_email = "awaiting_email"  # link sent to the email on file
    awaiting_verification = "awaiting_verification"  # no email on file: staff must verify
    approved = "approved"
    rejected = "rejected"
    activated = "activated"


class Registration(SQLModel, table=True):
    """A sign-up matched to a record on file, waiting for activation or staff review."""

    __tablename__ = "registration"
    __table_args__ = (UniqueConstraint("user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(
        sa_column=Column(Integer, ForeignKey("user_account.id", ondelete="CASCADE"),
                         nullable=False)
    )
    patient_id: int = Field(
        sa_column=Column(Integer, ForeignKey("patient.id", ondelete="CASCADE"), index=True,
                         nullable=False)
    )
    status: RegistrationStatus = Field(max_length=32, index=True)
    entered: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    created_at: datetime | None = _ts(nullable=False)
    decided_at: datetime | None = _ts()
    decided_by: int | None = None
    decision_note: str | None = Field(default=None, max_length=500)


class UserPublic(BaseModel):
    id: int
    username: str
    role: Role
    display_name: str
    mfa_enabled: bool
    patient_id: int | None
    time_zone: str | None = None


class RecoveryCode(SQLModel, table=True):
    """One-time two-factor recovery code; only its hash is stored."""

    __tablename__ = "mfa_recovery_code"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(
        sa_column=Column(Integer, ForeignKey("user_account.id", ondelete="CASCADE"), index=True,
                         nullable=False)
    )
    code_hash: str = Field(max_length=64)
    used_at: datetime | None = _ts()


class RateCounter(SQLModel, table=True):
    """Fixed-window counters shared by every instance (log-in, registration, mail)."""

    __tablename__ = "rate_counter"

    key: str = Field(primary_key=True, max_length=200)
    window_start: datetime | None = _ts(nullable=False)
    count: int = 0
