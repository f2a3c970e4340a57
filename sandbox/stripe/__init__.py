"""The Stripe stand-in (see `standin`)."""
