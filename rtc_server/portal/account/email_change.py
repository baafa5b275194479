"""Contact details and the email change.

Phone and address change at once. A new email address waits in
``pending_email`` until the link mailed to it is followed, and asking for one
needs the current password, so a hijacked session cannot move the account to
an attacker's mailbox. A link is good only while its address is still the
pending one: changing back, asking for another address or changing the
password spends every outstanding link, and ``confirm_email`` also checks the
address against ``pending_email``.
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from rtc_server import audit
from rtc_server.auth import emailed_tokens
from rtc_server.auth.actor import Actor, RequestMeta
from rtc_server.auth.models import TokenPurpose, User
from rtc_server.config import Settings
from rtc_server.errors import InvalidInput, NotFound
from rtc_server.notify.outbox import queue_mail
from rtc_server.portal.account.notices import confirm_new_email, queue_security_notice
from rtc_server.portal.account.service import (
    AccountOut,
    Address,
    ContactChange,
    account_view,
    load_user,
    record_action,
    require_password,
)


def _same_address(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.casefold() == b.casefold()


async def update_contact(
    db: AsyncSession, actor: Actor, change: ContactChange, *, settings: Settings
) -> AccountOut:
    """Apply the fields present in ``change``; returns the account. A new email
    address gets a confirmation link, and the current one a notice.

    An ``email`` different from the current one needs ``current_password``
    (422 on that field when missing or wrong; a wrong one counts toward the
    lockout). The current email again cancels a pending change and spends its link.
    """
    user = await load_user(db, actor)
    given = change.model_fields_set
    new_email: str | None = None
    if "email" in given:
        if change.email is None:
            raise InvalidInput("email", "An email address is required.")
        new_email = str(change.email)
        if not _same_address(new_email, user.email):
            # Before any change: a wrong password commits the failure count.
            await require_password(db, actor, user, change.current_password, settings)

    changed: list[str] = []
    if "phone" in given and change.phone != user.phone:
        user.phone = change.phone
        changed.append("phone")
    if "address" in given:
        addr = change.address or Address()
        new = (addr.line, addr.city, addr.state, addr.zip)
        if new != (user.address_line, user.city, user.state, user.zip):
            user.address_line, user.city, user.state, user.zip = new
            changed.append("address")

    token: str | None = None
    cancelled = False
    if new_email is not None:
        if _same_address(new_email, user.email):
            cancelled = user.pending_email is not None
            user.pending_email = None
            await emailed_tokens.revoke(db, user.id or 0, TokenPurpose.email_change)
        elif not _same_address(new_email, user.pending_email):
            user.pending_email = new_email
            # issue() spends any earlier email-change link.
            token = await emailed_tokens.issue(
                db, user_id=user.id or 0, purpose=TokenPurpose.email_change, email=new_email
            )
        # else: the same pending address again; its link already went out.
    db.add(user)
    if changed:
        await record_action(db, actor, "account.contact_update")
    if token:
        await record_action(db, actor, "account.email_change_request")
    if cancelled:
        await record_action(db, actor, "account.email_change_cancel")
    if token and new_email:
        queue_mail(db, confirm_new_email(user=user, to=new_email, token=token, settings=settings))
        queue_security_notice(
            db, user=user, settings=settings, kind="email_change_requested",
            subject="your email address is changing",
            what="Someone signed in to your account asked to change its email address. The "
                 "change takes effect only when the link sent to the new address is followed.",
        )
    await db.commit()
    return account_view(user)


async def confirm_email(db: AsyncSession, *, token: str, meta: RequestMeta) -> None:
    """Follow an email-change link: the token is the proof, with or without a
    session. Raises NotFound (``token_invalid``) or Gone (``token_expired`` /
    ``token_used``); a link whose address is no longer the pending one is
    spent, audited as a failure and answered like an unknown link."""
    row = await emailed_tokens.consume(db, token, TokenPurpose.email_change)
    user = await db.get(User, row.user_id)
    if user is None:
        raise NotFound("This link is not valid.", code="token_invalid")
    if not row.email or not _same_address(user.pending_email, row.email):
        await audit.record(
            db, action="account.email_change", outcome="failure", actor_id=user.id,
            actor_role=user.role, resource=f"user:{user.id}", request_id=meta.request_id, ip=meta.ip,
        )
        await db.commit()
        raise NotFound("This link is not valid.", code="token_invalid")
    user.email = row.email
    user.pending_email = None
    db.add(user)
    await audit.record(
        db, action="account.email_change", actor_id=user.id, actor_role=user.role,
        resource=f"user:{user.id}", request_id=meta.request_id, ip=meta.ip,
    )
    await db.commit()
