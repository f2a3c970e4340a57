"""Calendly slots bound to their booking; strays and payment mismatches recorded

They are history rows (causes stray_slot_refused, slot_mismatch_found, payment_mismatch); this
index lets the dashboard list them without reading the whole history.
"""
from contextlib import nullcontext

from alembic import op

revision, down_revision = "0007", "0006"  # Alembic's chain


def _concurrently():
    """On PostgreSQL the index is built CONCURRENTLY (outside a transaction), so a live system
    keeps writing history while millions of rows are indexed."""
    if op.get_bind().dialect.name == "postgresql":
        return op.get_context().autocommit_block(), {"postgresql_concurrently": True}
    return nullcontext(), {}


def upgrade() -> None:
    block, options = _concurrently()
    with block:
        op.create_index("ix_booking_history_cause", "booking_history", ["cause", "id"],
                        if_not_exists=True, **options)


def downgrade() -> None:
    block, options = _concurrently()
    with block:
        op.drop_index("ix_booking_history_cause", table_name="booking_history", if_exists=True, **options)
