"""Messaging tunables, from the environment (prefix ``RTC_CHAT_``).

Kept beside the feature until the core settings absorb them; every instance
reads the same variables, and tests set values on ``app.state.chat.limits``.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ChatLimits(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RTC_CHAT_", extra="ignore")

    #: Messages a person may send per second, on average, per instance ...
    messages_per_second: float = Field(default=2.0, gt=0)
    #: ... with bursts up to this many (a pasted list, a quick back-and-forth).
    burst: float = Field(default=20.0, ge=1)
    #: Conversations one socket may follow live at once.
    follows_per_socket: int = Field(default=20, ge=1)
    #: A person is told a new message is waiting (``chat.unread`` on their user
    #: channel) at most once per conversation in this many seconds; the last
    #: count always follows.
    unread_notice_seconds: float = Field(default=1.0, ge=0)
    #: What the compose page says about replies and emergencies.
    reply_time: str = "within 2 business days"
    emergency_number: str = "911"
