"""The Calendly API v2 stand-in (see `standin`)."""
