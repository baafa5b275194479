"""appointments: published availability, idempotency keys, reminders; cancel/reschedule columns

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 12:00:00

Until revision 0003 exists this revises 0002 (the integrator sets it to 0003).
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0004'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('provider_availability',
    sa.Column('practitioner_id', sa.Integer(), nullable=False),
    sa.Column('schedule_id', sa.Integer(), nullable=False),
    sa.Column('weekly', sa.JSON(), nullable=False),
    sa.Column('breaks', sa.JSON(), nullable=False),
    sa.Column('days_off', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('visit_minutes', sa.Integer(), nullable=False),
    sa.Column('time_zone', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('published', sa.Boolean(), nullable=False),
    sa.Column('updated_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['practitioner_id'], ['practitioner.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['schedule_id'], ['schedule.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('practitioner_id')
    )
    with op.batch_alter_table('provider_availability', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_provider_availability_schedule_id'), ['schedule_id'], unique=False)

    op.create_table('idempotency_key',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('response', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('request_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', 'key')
    )
    with op.batch_alter_table('idempotency_key', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_idempotency_key_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_idempotency_key_user_id'), ['user_id'], unique=False)

    op.create_table('appointment_reminder',
    sa.Column('appointment_id', sa.Integer(), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('offset_hours', sa.Integer(), nullable=False),
    sa.Column('claimed_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('channels', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointment.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('appointment_id', 'offset_hours')
    )
    with op.batch_alter_table('appointment_reminder', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_appointment_reminder_appointment_id'), ['appointment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_appointment_reminder_due_at'), ['due_at'], unique=False)

    # Plain ADD COLUMN (no table copy on SQLite), so the appointment table's
    # partial unique indexes against double booking stay exactly as they are.
    op.add_column('appointment', sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('appointment', sa.Column('replaced_by_id', sa.Integer(), nullable=True))
    op.create_index(op.f('ix_appointment_replaced_by_id'), 'appointment', ['replaced_by_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_appointment_replaced_by_id'), table_name='appointment')
    op.drop_column('appointment', 'replaced_by_id')
    op.drop_column('appointment', 'cancelled_at')
    with op.batch_alter_table('appointment_reminder', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_appointment_reminder_due_at'))
        batch_op.drop_index(batch_op.f('ix_appointment_reminder_appointment_id'))
    op.drop_table('appointment_reminder')
    with op.batch_alter_table('idempotency_key', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_idempotency_key_user_id'))
        batch_op.drop_index(batch_op.f('ix_idempotency_key_created_at'))
    op.drop_table('idempotency_key')
    with op.batch_alter_table('provider_availability', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_provider_availability_schedule_id'))
    op.drop_table('provider_availability')
