"""visits: guests invited by link, in-visit chat (issue 13)

- ``visit_invite`` gets the guest's session (``session_hash``, ``session_expires_at``) and
  ``revoked_at`` (the provider withdrew the link or removed its guest);
- ``visit_participant.chat_from_seq``: the visit chat's last seq when the person was admitted
  (a guest reads only what was said after it);
- ``chat_conversation.visit_id``: a video visit's in-call chat is a conversation of category
  ``visit`` tied to its visit (one per visit), kept with the visit's record;
- ``user_account.role`` accepts ``guest`` (PostgreSQL: the ``role`` enum type gets the value;
  SQLite stores the name as text).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 19:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        # Allowed inside a transaction since PostgreSQL 12; the value is usable once committed
        # (nothing in this migration writes it).
        op.execute("ALTER TYPE role ADD VALUE IF NOT EXISTS 'guest'")
    with op.batch_alter_table('visit_invite') as batch:
        batch.add_column(sa.Column('session_hash', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('session_expires_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True))
        batch.create_unique_constraint('uq_visit_invite_session_hash', ['session_hash'])
    with op.batch_alter_table('visit_participant') as batch:
        batch.add_column(sa.Column('chat_from_seq', sa.Integer(), nullable=True))
    with op.batch_alter_table('chat_conversation') as batch:
        batch.add_column(sa.Column('visit_id', sa.Integer(), nullable=True))
        batch.create_foreign_key('fk_chat_conversation_visit_id', 'visit', ['visit_id'], ['id'],
                                 ondelete='CASCADE')
        batch.create_unique_constraint('uq_chat_conversation_visit_id', ['visit_id'])


def downgrade() -> None:
    with op.batch_alter_table('chat_conversation') as batch:
        batch.drop_constraint('uq_chat_conversation_visit_id', type_='unique')
        batch.drop_constraint('fk_chat_conversation_visit_id', type_='foreignkey')
        batch.drop_column('visit_id')
    with op.batch_alter_table('visit_participant') as batch:
        batch.drop_column('chat_from_seq')
    with op.batch_alter_table('visit_invite') as batch:
        batch.drop_constraint('uq_visit_invite_session_hash', type_='unique')
        batch.drop_column('revoked_at')
        batch.drop_column('session_expires_at')
        batch.drop_column('session_hash')
    # PostgreSQL cannot drop one value of an enum type; guest accounts go with their visits'
    # invites only by hand, so the value stays (harmless: no code before 0009 writes it).
