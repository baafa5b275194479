"""records and labs: per-test hold rules, lab release state, cross-cover chart access

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 12:00:00

Chained to the newest revision on file when written (0005); the integrator sets
``down_revision`` to whatever precedes it.
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('lab_hold_rule',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('display', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('set_by', sa.Integer(), nullable=True),
    sa.Column('set_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    op.create_table('lab_release',
    sa.Column('observation_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('held_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('released_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('released_by', sa.Integer(), nullable=True),
    sa.Column('entered_by', sa.Integer(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('announced', sa.Boolean(), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['observation_id'], ['observation.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('observation_id')
    )
    with op.batch_alter_table('lab_release', schema=None) as batch_op:
        batch_op.create_index('ix_lab_release_patient_state', ['patient_id', 'state', 'opened_at'],
                              unique=False)
        batch_op.create_index('ix_lab_release_state', ['state'], unique=False)

    op.create_table('chart_access',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('chart_access', schema=None) as batch_op:
        batch_op.create_index('ix_chart_access_patient_id', ['patient_id'], unique=False)
        batch_op.create_index('ix_chart_access_user_patient', ['user_id', 'patient_id', 'expires_at'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('chart_access', schema=None) as batch_op:
        batch_op.drop_index('ix_chart_access_user_patient')
        batch_op.drop_index('ix_chart_access_patient_id')
    op.drop_table('chart_access')
    with op.batch_alter_table('lab_release', schema=None) as batch_op:
        batch_op.drop_index('ix_lab_release_state')
        batch_op.drop_index('ix_lab_release_patient_state')
    op.drop_table('lab_release')
    op.drop_table('lab_hold_rule')
