"""pharmacy directory, refill requests, controlled list, help desk tickets

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 18:00:00

Chained to the newest revision on file when written (0006); the integrator sets
``down_revision`` to whatever precedes it.
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_OPEN = "status IN ('requested', 'approved')"


def upgrade() -> None:
    op.create_table('controlled_medication',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('schedule', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('added_by', sa.Integer(), nullable=True),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code'),
    sa.UniqueConstraint('name')
    )
    op.create_table('pharmacy',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('name_norm', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('fax', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('address_line', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('city', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=True),
    sa.Column('zip', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('ncpdp_id', sqlmodel.sql.sqltypes.AutoString(length=7), nullable=True),
    sa.Column('organization_id', sa.Integer(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ncpdp_id'),
    sa.UniqueConstraint('organization_id')
    )
    op.create_index(op.f('ix_pharmacy_name_norm'), 'pharmacy', ['name_norm'], unique=False)
    op.create_table('preferred_pharmacy',
    sa.Column('patient_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('pharmacy_id', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['pharmacy_id'], ['pharmacy.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('patient_id')
    )
    op.create_index(op.f('ix_preferred_pharmacy_pharmacy_id'), 'preferred_pharmacy', ['pharmacy_id'], unique=False)
    op.create_table('help_ticket',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('contact_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('contact_email', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
    sa.Column('topic', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('requester_seen_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_staff_reply_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_help_ticket_patient_id'), 'help_ticket', ['patient_id'], unique=False)
    op.create_index(op.f('ix_help_ticket_status'), 'help_ticket', ['status'], unique=False)
    op.create_index(op.f('ix_help_ticket_updated_at'), 'help_ticket', ['updated_at'], unique=False)
    op.create_index(op.f('ix_help_ticket_user_id'), 'help_ticket', ['user_id'], unique=False)
    op.create_table('help_ticket_message',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('from_staff', sa.Boolean(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['user_account.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['ticket_id'], ['help_ticket.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_help_ticket_message_author_id'), 'help_ticket_message', ['author_id'], unique=False)
    op.create_index(op.f('ix_help_ticket_message_ticket_id'), 'help_ticket_message', ['ticket_id'], unique=False)
    op.create_table('refill_request',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('medication_id', sa.Integer(), nullable=False),
    sa.Column('practitioner_id', sa.Integer(), nullable=True),
    sa.Column('pharmacy_id', sa.Integer(), nullable=False),
    sa.Column('requested_by', sa.Integer(), nullable=True),
    sa.Column('medication_name', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('dosage', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=True),
    sa.Column('refills', sa.Integer(), nullable=True),
    sa.Column('decision_note', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('decided_by', sa.Integer(), nullable=True),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('send_attempts', sa.Integer(), nullable=False),
    sa.Column('send_error', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.ForeignKeyConstraint(['decided_by'], ['user_account.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['medication_id'], ['medication.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['pharmacy_id'], ['pharmacy.id'], ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['practitioner_id'], ['practitioner.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['requested_by'], ['user_account.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_refill_request_decided_by'), 'refill_request', ['decided_by'], unique=False)
    op.create_index(op.f('ix_refill_request_medication_id'), 'refill_request', ['medication_id'], unique=False)
    op.create_index(op.f('ix_refill_request_patient_id'), 'refill_request', ['patient_id'], unique=False)
    op.create_index(op.f('ix_refill_request_pharmacy_id'), 'refill_request', ['pharmacy_id'], unique=False)
    op.create_index('ix_refill_request_queue', 'refill_request', ['practitioner_id', 'status'], unique=False)
    op.create_index(op.f('ix_refill_request_requested_at'), 'refill_request', ['requested_at'], unique=False)
    op.create_index(op.f('ix_refill_request_requested_by'), 'refill_request', ['requested_by'], unique=False)
    op.create_index(op.f('ix_refill_request_status'), 'refill_request', ['status'], unique=False)
    # One open request per medication (see portal/refills/models.py).
    op.create_index('uq_refill_request_open_medication', 'refill_request', ['medication_id'], unique=True,
                    sqlite_where=sa.text(_OPEN), postgresql_where=sa.text(_OPEN))


def downgrade() -> None:
    op.drop_index('uq_refill_request_open_medication', table_name='refill_request')
    for name in ('decided_by', 'medication_id', 'patient_id', 'pharmacy_id', 'requested_at',
                 'requested_by', 'status'):
        op.drop_index(op.f(f'ix_refill_request_{name}'), table_name='refill_request')
    op.drop_index('ix_refill_request_queue', table_name='refill_request')
    op.drop_table('refill_request')
    op.drop_index(op.f('ix_help_ticket_message_ticket_id'), table_name='help_ticket_message')
    op.drop_index(op.f('ix_help_ticket_message_author_id'), table_name='help_ticket_message')
    op.drop_table('help_ticket_message')
    for name in ('user_id', 'updated_at', 'status', 'patient_id'):
        op.drop_index(op.f(f'ix_help_ticket_{name}'), table_name='help_ticket')
    op.drop_table('help_ticket')
    op.drop_index(op.f('ix_preferred_pharmacy_pharmacy_id'), table_name='preferred_pharmacy')
    op.drop_table('preferred_pharmacy')
    op.drop_index(op.f('ix_pharmacy_name_norm'), table_name='pharmacy')
    op.drop_table('pharmacy')
    op.drop_table('controlled_medication')
