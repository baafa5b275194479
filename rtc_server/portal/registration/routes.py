"""Registration, activation, the sign-up rules, and the staff verification queue.

Replies that must not tell whether a record or an account exists (register,
resend) take at least ``Settings.response_floor_seconds`` whatever was found
(``floor=True``), and their mail is queued in the outbox, sent by a worker.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response
from starlette.routing import BaseRoute

from rtc_server import rules
from rtc_server.api import ApiRoute, Call, json_response
from rtc_server.auth.password_policy import MAX_LENGTH, MIN_LENGTH, RULES
from rtc_server.db import as_utc
from rtc_server.portal.registration import activation, service, verification
from rtc_server.portal.registration.service import RegisterForm


class CheckEmailOut(BaseModel):
    status: str = "check_email"
    message: str
    review_business_days: int


class SignUpRulesOut(BaseModel):
    """The rules the sign-up and activation pages check as people type (the
    server's 422 messages stay authoritative). Patterns are ECMAScript, ``u`` flag."""

    name_max: int
    birth_date_min: date
    zip_pattern: str
    username_min: int
    username_max: int
    username_pattern: str
    username_rule: str
    password_min: int
    password_max: int
    question_min: int
    question_max: int
    answer_min: int
    answer_max: int
    review_business_days: int


class TokenIn(BaseModel):
    token: str


class ActivationStartOut(BaseModel):
    step: activation.Step
    first_name: str | None


class ActivateIn(activation.Credentials):
    model_config = ConfigDict(extra="ignore")

    token: str


class FieldProblemOut(BaseModel):
    field: str
    message: str


class ActivationCheckOut(BaseModel):
    username_available: bool | None
    fields: list[FieldProblemOut]


class ActivatedOut(BaseModel):
    status: str = "activated"
    username: str


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
    email: str | None
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


async def register(call: Call) -> Response:
    """Register against the record on file (same reply whether or not it matched)."""
    await service.register(call.db, form=call.body, meta=call.meta, settings=call.settings)
    return json_response(CheckEmailOut(message=service.check_email_message(call.settings),
                                      review_business_days=service.review_days(call.settings)), 202)


async def sign_up_rules(call: Call) -> Response:
    """The sign-up rules, for the pages to check before sending."""
    return json_response(SignUpRulesOut(
        name_max=service.NAME_MAX, birth_date_min=service.EARLIEST_BIRTH,
        zip_pattern=rules.ZIP_PATTERN.pattern,
        username_min=rules.USERNAME_MIN, username_max=rules.USERNAME_MAX,
        # Python's \w is Unicode-aware; this is its ECMAScript spelling (``u`` flag).
        username_pattern=r"^[\p{L}\p{N}_.@+\-]+$", username_rule=rules.USERNAME_RULE,
        password_min=MIN_LENGTH, password_max=MAX_LENGTH,
        question_min=rules.QUESTION_MIN, question_max=rules.QUESTION_MAX,
        answer_min=rules.ANSWER_MIN, answer_max=rules.ANSWER_MAX,
        review_business_days=service.review_days(call.settings),
    ))


async def activation_start(call: Call) -> Response:
    """What the activation page asks for; the link stays unused."""
    got = await activation.start(call.db, token=call.body.token)
    return json_response(ActivationStartOut(step=got.step, first_name=got.first_name))


async def activation_check(call: Call) -> Response:
    """Live check of a username (free?) and password (rules) for a live link."""
    got = await activation.check(call.db, token=call.body.token, choice=call.body, meta=call.meta,
                                settings=call.settings)
    return json_response(ActivationCheckOut(
        username_available=got.username_available,
        fields=[FieldProblemOut(field=f, message=m) for f, m in got.problems],
    ))


async def activate(call: Call) -> Response:
    """Activate an account with the emailed link, choosing its username and password."""
    username = await activation.activate(call.db, token=call.body.token, choice=call.body,
                                        meta=call.meta, settings=call.settings)
    return json_response(ActivatedOut(username=username))


async def resend_activation(call: Call) -> Response:
    """Email a new activation link to a pending account (always 202)."""
    await activation.resend(call.db, email=call.body.email, meta=call.meta, settings=call.settings)
    return json_response(AcceptedOut(), 202)


async def password_policy(call: Call) -> Response:
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
                               birth_date=patient.birth_date, zip=patient.zip, email=patient.email,
                               mrn=patient.mrn, phone=patient.phone),
    )


async def list_verifications(call: Call) -> Response:
    """Registrations waiting for staff to confirm the patient's identity (staff and admins)."""
    items = await verification.list_verifications(call.db, actor=call.actor)
    return json_response([_verification_out(i).model_dump(mode="json") for i in items])


async def approve(call: Call) -> Response:
    """Identity confirmed: mail the activation link to the entered email."""
    await verification.approve(call.db, actor=call.actor, registration_id=call.path_int(),
                              note=call.body.note if call.body else None, settings=call.settings)
    return json_response(DecisionOut(status="approved"))


async def reject(call: Call) -> Response:
    """Identity not confirmed: reject, freeing the record to be registered again."""
    await verification.reject(call.db, actor=call.actor, registration_id=call.path_int(),
                             reason=call.body.reason)
    return json_response(DecisionOut(status="rejected"))


routes: list[BaseRoute] = [
    ApiRoute("/auth/register", register, methods=["POST"], body=RegisterForm,
             response=CheckEmailOut, status_code=202, auth="public", tag="registration", floor=True),
    ApiRoute("/auth/sign-up-rules", sign_up_rules, methods=["GET"],
             response=SignUpRulesOut, auth="public", tag="registration"),
    ApiRoute("/auth/activate/start", activation_start, methods=["POST"], body=TokenIn,
             response=ActivationStartOut, auth="public", tag="registration"),
    ApiRoute("/auth/activate/check", activation_check, methods=["POST"], body=ActivateIn,
             response=ActivationCheckOut, auth="public", tag="registration"),
    ApiRoute("/auth/activate", activate, methods=["POST"], body=ActivateIn,
             response=ActivatedOut, auth="public", tag="registration"),
    ApiRoute("/auth/activate/resend", resend_activation, methods=["POST"], body=ResendIn,
             response=AcceptedOut, status_code=202, auth="public", tag="registration", floor=True),
    ApiRoute("/auth/password-policy", password_policy, methods=["GET"],
             response=PasswordPolicyOut, auth="public", tag="registration"),
    ApiRoute("/staff/verifications", list_verifications, methods=["GET"],
             response=VerificationOut, response_list=True, tag="staff"),
    ApiRoute("/staff/verifications/{id:int}/approve", approve, methods=["POST"], body=ApproveIn,
             response=DecisionOut, tag="staff"),
    ApiRoute("/staff/verifications/{id:int}/reject", reject, methods=["POST"], body=RejectIn,
             response=DecisionOut, tag="staff"),
]
