"""request throttles shared by every web process

One fixed-window counter per (scope, hashed key, window start): magic links per email and per
address, booking creation per client and per address, dashboard sign-in failures per account and
per address (core/services/throttle.py).
"""
import sqlalchemy as sa
from alembic import op

import core.models

revision, down_revision = "0004", "0003"  # Alembic's chain


def upgrade() -> None:
    op.create_table(
        'throttle_counters',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('scope', sa.String(length=40), nullable=False),
        sa.Column('key_hash', sa.String(length=64), nullable=False),
        sa.Column('window_start', core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('window_end', core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('hits', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_throttle_counters')),
        sa.UniqueConstraint('scope', 'key_hash', 'window_start', name=op.f('uq_throttle_counters_scope')),
    )
    with op.batch_alter_table('throttle_counters') as batch_op:
        batch_op.create_index(batch_op.f('ix_throttle_counters_window_end'), ['window_end'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('throttle_counters') as batch_op:
        batch_op.drop_index(batch_op.f('ix_throttle_counters_window_end'))
    op.drop_table('throttle_counters')
