"""server-side client sessions (sign-out ends them; revocable)

`client_sessions`: one row per signed-in client session (the cookie carries the id, the row keeps
its hash), with its lifetime and revocation. `login_tokens.remember`: the sign-in form's "keep me
signed in" choice, carried by the magic link to the session it opens.
"""
import sqlalchemy as sa
from alembic import op

import core.models

revision, down_revision = "0005", "0004"  # Alembic's chain


def upgrade() -> None:
    op.create_table(
        "client_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_hash", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("remember", sa.Boolean(), nullable=False),
        sa.Column("created_at", core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", core.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_sessions")),
        sa.UniqueConstraint("session_hash", name=op.f("uq_client_sessions_session_hash")),
    )
    op.create_index(op.f("ix_client_sessions_email"), "client_sessions", ["email"], unique=False)
    op.create_index(op.f("ix_client_sessions_expires_at"), "client_sessions", ["expires_at"], unique=False)
    with op.batch_alter_table("login_tokens") as batch:
        batch.add_column(sa.Column("remember", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("login_tokens") as batch:
        batch.drop_column("remember")
    op.drop_index(op.f("ix_client_sessions_expires_at"), table_name="client_sessions")
    op.drop_index(op.f("ix_client_sessions_email"), table_name="client_sessions")
    op.drop_table("client_sessions")
