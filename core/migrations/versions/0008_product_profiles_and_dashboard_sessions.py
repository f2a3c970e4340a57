"""builder bios, dashboard users' time zones, dashboard sessions that survive a reload

`builders.bio`: what clients read about a builder on the home page and profile.
`dashboard_users.timezone`: the zone a builder or admin chose to read times in.
`dashboard_sessions`: one row per signed-in dashboard browser (a cookie carries the id, the row
keeps its hash, lifetime and revocation), so a reload no longer signs people out.
"""
import sqlalchemy as sa
from alembic import op

import core.models

revision, down_revision = "0008", "0007"  # Alembic's chain


def upgrade() -> None:
    with op.batch_alter_table("builders") as batch:
        batch.add_column(sa.Column("bio", sa.Text(), nullable=True))
    with op.batch_alter_table("dashboard_users") as batch:
        batch.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))
    op.create_table(
        "dashboard_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", core.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["dashboard_users.id"],
                                name=op.f("fk_dashboard_sessions_user_id_dashboard_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboard_sessions")),
        sa.UniqueConstraint("session_hash", name=op.f("uq_dashboard_sessions_session_hash")),
    )
    op.create_index(op.f("ix_dashboard_sessions_user_id"), "dashboard_sessions", ["user_id"], unique=False)
    op.create_index(op.f("ix_dashboard_sessions_expires_at"), "dashboard_sessions", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_dashboard_sessions_expires_at"), table_name="dashboard_sessions")
    op.drop_index(op.f("ix_dashboard_sessions_user_id"), table_name="dashboard_sessions")
    op.drop_table("dashboard_sessions")
    with op.batch_alter_table("dashboard_users") as batch:
        batch.drop_column("timezone")
    with op.batch_alter_table("builders") as batch:
        batch.drop_column("bio")
