"""Use cases: the only code that changes bookings, payments, refunds and the outbox."""
