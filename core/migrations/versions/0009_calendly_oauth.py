"""builders connect their own Calendly: OAuth tokens, connection status, managed webhook subscriptions

`builders`: how the builder's Calendly is connected (personal token or OAuth), its status and why,
the OAuth refresh token (encrypted) and access-token expiry, our webhook subscription as last seen,
and the last reconcile. Builders that already have a token are `connected` by `token`.
`calendly_oauth_states`: one row per "Connect Calendly" in flight (state hash, PKCE verifier).
"""
import sqlalchemy as sa
from alembic import op

import core.models

revision, down_revision = "0009", "0008"  # Alembic's chain

UTC_DATETIME = core.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("builders") as batch:
        batch.add_column(sa.Column("calendly_auth", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("calendly_status", sa.String(length=16), nullable=False,
                                   server_default="waiting"))
        batch.add_column(sa.Column("calendly_status_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("calendly_connected_at", UTC_DATETIME, nullable=True))
        batch.add_column(sa.Column("calendly_refresh_token_encrypted", sa.Text(), nullable=True))
        batch.add_column(sa.Column("calendly_token_expires_at", UTC_DATETIME, nullable=True))
        batch.add_column(sa.Column("calendly_subscription_uri", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("calendly_subscription_state", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("calendly_subscription_checked_at", UTC_DATETIME, nullable=True))
        batch.add_column(sa.Column("calendly_last_reconcile_at", UTC_DATETIME, nullable=True))
    op.execute("UPDATE builders SET calendly_auth = 'token', calendly_status = 'connected' "
               "WHERE calendly_token_encrypted IS NOT NULL")
    op.create_table(
        "calendly_oauth_states",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("builder_id", sa.Integer(), nullable=False),
        sa.Column("dashboard_session_id", sa.Integer(), nullable=True),
        sa.Column("code_verifier_encrypted", sa.Text(), nullable=False),
        sa.Column("started_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.Column("used_at", UTC_DATETIME, nullable=True),
        sa.ForeignKeyConstraint(["builder_id"], ["builders.id"],
                                name=op.f("fk_calendly_oauth_states_builder_id_builders")),
        sa.ForeignKeyConstraint(["dashboard_session_id"], ["dashboard_sessions.id"],
                                name=op.f("fk_calendly_oauth_states_dashboard_session_id_dashboard_sessions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendly_oauth_states")),
        sa.UniqueConstraint("state_hash", name=op.f("uq_calendly_oauth_states_state_hash")),
    )
    op.create_index(op.f("ix_calendly_oauth_states_builder_id"), "calendly_oauth_states", ["builder_id"])
    op.create_index(op.f("ix_calendly_oauth_states_expires_at"), "calendly_oauth_states", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_calendly_oauth_states_expires_at"), table_name="calendly_oauth_states")
    op.drop_index(op.f("ix_calendly_oauth_states_builder_id"), table_name="calendly_oauth_states")
    op.drop_table("calendly_oauth_states")
    with op.batch_alter_table("builders") as batch:
        for column in ("calendly_last_reconcile_at", "calendly_subscription_checked_at",
                       "calendly_subscription_state", "calendly_subscription_uri", "calendly_token_expires_at",
                       "calendly_refresh_token_encrypted", "calendly_connected_at", "calendly_status_reason",
                       "calendly_status", "calendly_auth"):
            batch.drop_column(column)
