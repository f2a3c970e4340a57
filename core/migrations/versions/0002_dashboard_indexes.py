"""dashboard indexes: list orders with their tie-breaker, covering ledger and overview indexes

Measured with `python -m bench.dashboard_data` on a million bookings (bench/README.md, "Dashboard
data"). Each new index extends one it replaces, so no query loses an index:

- bookings (created_at) → (created_at, id, builder_id, status, currency, start_time)
- bookings (builder_id, created_at) → (builder_id, created_at, id, status, currency, start_time)
- bookings (builder_id, start_time) → (builder_id, start_time, id); new: (start_time, id)
- payments (booking_id) → (booking_id, status, amount_cents, dispute_status)
- payments (created_at) → (created_at, status, currency, amount_cents, booking_id)
- refunds (booking_id) → (booking_id, status, amount_cents)

On PostgreSQL the indexes are built and dropped CONCURRENTLY, so a live system keeps taking
bookings and webhooks while this runs.
"""
from contextlib import nullcontext

from alembic import op

revision, down_revision = "0002", "0001"  # Alembic's chain

# (table, new index, its columns, the index it replaces, that one's columns)
CHANGES = [
    ("bookings", "ix_bookings_created_list",
     ["created_at", "id", "builder_id", "status", "currency", "start_time"], "ix_bookings_created", ["created_at"]),
    ("bookings", "ix_bookings_builder_created_list",
     ["builder_id", "created_at", "id", "status", "currency", "start_time"],
     "ix_bookings_builder_created", ["builder_id", "created_at"]),
    ("bookings", "ix_bookings_start_list", ["start_time", "id"], None, None),
    ("bookings", "ix_bookings_builder_start_list", ["builder_id", "start_time", "id"],
     "ix_bookings_builder_start", ["builder_id", "start_time"]),
    ("payments", "ix_payments_booking_ledger", ["booking_id", "status", "amount_cents", "dispute_status"],
     "ix_payments_booking_id", ["booking_id"]),
    ("payments", "ix_payments_created_ledger", ["created_at", "status", "currency", "amount_cents", "booking_id"],
     "ix_payments_created_at", ["created_at"]),
    ("refunds", "ix_refunds_booking_ledger", ["booking_id", "status", "amount_cents"],
     "ix_refunds_booking_id", ["booking_id"]),
]


def _outside_transaction():
    # CREATE/DROP INDEX CONCURRENTLY cannot run inside a transaction block.
    if op.get_bind().dialect.name == "postgresql":
        return op.get_context().autocommit_block()
    return nullcontext()


def _concurrently() -> dict:
    return {"postgresql_concurrently": True} if op.get_bind().dialect.name == "postgresql" else {}


def upgrade() -> None:
    with _outside_transaction():
        for table, name, columns, old_name, _old_columns in CHANGES:
            op.create_index(name, table, columns, unique=False, if_not_exists=True, **_concurrently())
            if old_name:
                op.drop_index(old_name, table_name=table, if_exists=True, **_concurrently())


def downgrade() -> None:
    with _outside_transaction():
        for table, name, _columns, old_name, old_columns in reversed(CHANGES):
            if old_name:
                op.create_index(old_name, table, old_columns, unique=False, if_not_exists=True, **_concurrently())
            op.drop_index(name, table_name=table, if_exists=True, **_concurrently())
