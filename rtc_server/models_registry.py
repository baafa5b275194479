"""Import every table module so ``SQLModel.metadata`` is complete (alembic,
tests). Listed, not discovered: a new feature adds its models module here."""

from __future__ import annotations

import importlib

from sqlmodel import SQLModel

TABLE_MODULES = (
    "rtc_server.records.models",
    "rtc_server.auth.models",
    "rtc_server.audit",
    "rtc_server.notify.outbox",
    "rtc_server.portal.appointments.models",
    "rtc_server.pharmacy.models",
    "rtc_server.portal.refills.models",
    "rtc_server.portal.helpdesk.models",
    "rtc_server.portal.labs.models",
    "rtc_server.portal.records.models",
    "rtc_server.rooms.models",
    "rtc_server.chat.models",
    "rtc_server.jobs.models",
)


def metadata() -> object:
    for name in TABLE_MODULES:
        importlib.import_module(name)
    return SQLModel.metadata
