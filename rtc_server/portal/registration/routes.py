"""Registration, activation, the password policy, and the staff verification queue.

Replies that must not tell whether a record or an account exists are built
before any mail is sent: mail goes in a background task after the response,
and they take at least ``timing.MIN_RESPONSE_SECONDS`` whatever was found.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from rtc_server.api import api_route, json_response, path_int, read_body
from rtc_server.auth.current import require_actor
from rtc_server.auth.password_policy import MAX_LENGTH, MIN_LENGTH, RULES
from rtc_server.auth.timing import response_floor
from rtc_server.context import db, meta, settings
from rtc_server.db import as_utc
from rtc_server.notify.mail import with_mail
from rtc_server.portal.registration import service, verification
from rtc_server.portal.registration.service import CHECK_EMAIL_MESSAGE, RegisterForm


class CheckEmailOut(BaseModel):
    status: str = "check_email"
    message: str = CHECK_EMAIL_MESSAGE


class ActivateIn(BaseModel):
    token: str


class ActivatedOut(BaseModel):
    status: str = "activated"


class ResendIn(BaseModel):
    email: str


class AcceptedOut(BaseModel):
    status: str = "check_email"


class PasswordPolicyOut(BaseModel):
    min_length: int
    max_length: int
    rules: list[str]


class EnteredOut(BaseModel):
    first_name: str
    last_name: str
    birth_date: str
    zip: str
    email: str


class RecordOnFileOut(BaseModel):
    id: int
    name: str
    birth_date: date
    zip: str | None
    mrn: str | None
    phone: str | None


class VerificationOut(BaseModel):
    id: int
    created_at: str
    entered: EnteredOut
    patient: RecordOnFileOut


class ApproveIn(BaseModel):
    note: str | None = Field(default=None, max_length=500)


class RejectIn(BaseModel):
    reason: str = Field(max_length=500)


class DecisionOut(BaseModel):
    status: str


async def register(request: Request) -> Response:
    """Register against the record on file (same reply whether or not it matched)."""
    async with response_floor():
        form = await read_body(request, RegisterForm)
        async with db(request) as session:
            mails = await service.register(session, form=form, meta=meta(request),
                                           settings=settings(request))
    return with_mail(json_response(CheckEmailOut(), 202), request, mails)


async def activate(request: Request) -> Response:
    """Activate an account with the emailed token."""
    body = await read_body(request, ActivateIn)
    async with db(request) as session:
        await service.activate(session, token=body.token, meta=meta(request))
    return json_response(ActivatedOut())


async def resend_activation(request: Request) -> Response:
    """Email a new activation link to a pending account (always 202)."""
    async with response_floor():
        body = await read_body(request, ResendIn)
        async with db(request) as session:
            mails = await service.resend_activation(session, email=body.email,
                                                    meta=meta(request), settings=settings(request))
    return with_mail(json_response(AcceptedOut(), 202), request, mails)


async def password_policy(_request: Request) -> Response:
    """The password rules, to show before someone types (the 422 messages are authoritative)."""
    return json_response(PasswordPolicyOut(min_length=MIN_LENGTH, max_length=MAX_LENGTH,
                                           rules=RULES[1:]))


def _verification_out(item: verification.Verification) -> VerificationOut:
    reg, patient = item.registration, item.patient
    created_at = as_utc(reg.created_at)
    created = created_at.isoformat() if created_at else ""
    return VerificationOut(
        id=reg.id or 0, created_at=created,
        entered=EnteredOut.model_validate(
            {k: str(reg.entered.get(k) or "") for k in EnteredOut.model_fields}
        ),
        patient=RecordOnFileOut(id=patient.id or 0, name=patient.display_name,
                                birth_date=patient.birth_date, zip=patient.zip, mrn=patient.mrn,
                                phone=patient.phone),
    )


async def list_verifications(request: Request) -> Response:
    """Registrations waiting for staff to confirm the patient's identity (staff and admins)."""
    actor = await require_actor(request)
    async with db(request) as session:
        items = await verification.list_verifications(session, actor=actor)
    return json_response([_verification_out(i).model_dump(mode="json") for i in items])


async def approve(request: Request) -> Response:
    """Identity confirmed: mail the activation link to the entered email."""
    actor = await require_actor(request)
    registration_id = path_int(request)
    body = await read_body(request, ApproveIn)
    async with db(request) as session:
        mails = await verification.approve(session, actor=actor, registration_id=registration_id,
                                      note=body.note, settings=settings(request))
    return with_mail(json_response(DecisionOut(status="approved")), request, mails)


async def reject(request: Request) -> Response:
    """Identity not confirmed: reject, freeing the record to be registered again."""
    actor = await require_actor(request)
    registration_id = path_int(request)
    body = await read_body(request, RejectIn)
    async with db(request) as session:
        await verification.reject(session, actor=actor, registration_id=registration_id,
                             reason=body.reason)
    return json_response(DecisionOut(status="rejected"))


routes: list[BaseRoute] = [
    api_route("/auth/register", register, methods=["POST"], body=RegisterForm,
              response=CheckEmailOut, status_code=202, auth="public", tag="registration"),
    api_route("/auth/activate", activate, methods=["POST"], body=ActivateIn,
              response=ActivatedOut, auth="public", tag="registration"),
    api_route("/auth/activate/resend", resend_activation, methods=["POST"], body=ResendIn,
              response=AcceptedOut, status_code=202, auth="public", tag="registration"),
    api_route("/auth/password-policy", password_policy, methods=["GET"],
              response=PasswordPolicyOut, auth="public", tag="registration"),
    api_route("/staff/verifications", list_verifications, methods=["GET"],
              response=VerificationOut, response_list=True, tag="staff"),
    api_route("/staff/verifications/{id:int}/approve", approve, methods=["POST"], body=ApproveIn,
              response=DecisionOut, tag="staff"),
    api_route("/staff/verifications/{id:int}/reject", reject, methods=["POST"], body=RejectIn,
              response=DecisionOut, tag="staff"),
]
