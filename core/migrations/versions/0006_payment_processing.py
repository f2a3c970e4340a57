"""payments on their way (bank transfers) keep the slot

`bookings.payment_processing_since`: set when Checkout completes with a delayed payment method
(payment_status "unpaid"), cleared when the payment succeeds or fails.
"""
import sqlalchemy as sa
from alembic import op

import core.models

revision, down_revision = "0006", "0005"  # Alembic's chain


def upgrade() -> None:
    with op.batch_alter_table("bookings") as batch:
        batch.add_column(sa.Column("payment_processing_since", core.models.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bookings") as batch:
        batch.drop_column("payment_processing_since")
