"""rejected webhooks kept small (size, hash, prefix) and a retention policy

A rejected or invalid delivery keeps its kept headers, its size, the SHA-256 of its body and a
bounded prefix of it (`core.services.webhook_ingest`). Rows stored before this revision keep
their whole body (NULL size and hash); `python -m core prune-webhooks` ages them out.
"""
import sqlalchemy as sa
from alembic import op

revision, down_revision = "0003", "0002"  # Alembic's chain


def upgrade() -> None:
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('body_size', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('body_sha256', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.drop_column('body_sha256')
        batch_op.drop_column('body_size')
