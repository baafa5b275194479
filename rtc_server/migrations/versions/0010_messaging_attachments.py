"""messaging: attachments, refill requests in conversations (issue 12)

- ``chat_attachment``: uploaded files (images, PDF) owned by their uploader until a
  message carries them;
- ``chat_message.attachments``: the files a message carries (JSON, written with it);
- ``chat_conversation.refill_request_id``: the structured refill request a ``refill``
  conversation carries;
- ``presence`` (who has an open page on which instance) and ``notice_digest`` (batched
  "you have a new message" notices, claimed once across instances).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 19:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'chat_attachment',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('uploader_id', sa.Integer(), nullable=True),
        sa.Column('conversation_id', sa.Integer(), nullable=True),
        sa.Column('message_id', sa.Integer(), nullable=True),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('content_type', sa.String(length=64), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['uploader_id'], ['user_account.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['conversation_id'], ['chat_conversation.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['message_id'], ['chat_message.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('key'),
    )
    op.create_index('ix_chat_attachment_uploader_id', 'chat_attachment', ['uploader_id'])
    op.create_index('ix_chat_attachment_conversation_id', 'chat_attachment', ['conversation_id'])
    op.create_index('ix_chat_attachment_message_id', 'chat_attachment', ['message_id'])
    op.create_index('ix_chat_attachment_created_at', 'chat_attachment', ['created_at'])
    with op.batch_alter_table('chat_message') as batch:
        batch.add_column(sa.Column('attachments', sa.Text(), nullable=True))
    with op.batch_alter_table('chat_conversation') as batch:
        batch.add_column(sa.Column('refill_request_id', sa.Integer(), nullable=True))
        batch.create_foreign_key('fk_chat_conversation_refill_request_id', 'refill_request',
                                 ['refill_request_id'], ['id'], ondelete='SET NULL')
        batch.create_unique_constraint('uq_chat_conversation_refill_request_id', ['refill_request_id'])


    op.create_table(
        'presence',
        sa.Column('instance_id', sa.String(length=32), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('instance_id', 'user_id'),
    )
    op.create_index('ix_presence_user_id', 'presence', ['user_id'])
    op.create_table(
        'notice_digest',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('first_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('claimed_by', sa.String(length=32), nullable=True),
        sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('outcome', sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('uq_notice_digest_pending', 'notice_digest', ['user_id', 'kind'], unique=True,
                    sqlite_where=sa.text("status = 'pending'"),
                    postgresql_where=sa.text("status = 'pending'"))
    op.create_index('ix_notice_digest_status_due', 'notice_digest', ['status', 'due_at'])


def downgrade() -> None:
    op.drop_table('notice_digest')
    op.drop_table('presence')
    with op.batch_alter_table('chat_conversation') as batch:
        batch.drop_constraint('uq_chat_conversation_refill_request_id', type_='unique')
        batch.drop_constraint('fk_chat_conversation_refill_request_id', type_='foreignkey')
        batch.drop_column('refill_request_id')
    with op.batch_alter_table('chat_message') as batch:
        batch.drop_column('attachments')
    op.drop_table('chat_attachment')
