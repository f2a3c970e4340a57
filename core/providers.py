"""Ready-made Calendly clients from our settings, one per builder (Stripe is called through
`core.stripe.gateway`)."""
from __future__ import annotations

import logging

from sqlalchemy import Engine
from sqlalchemy.orm import object_session

from core.calendly import CalendlyAPIError, CalendlyClient
from core.config import get_settings
from core.models import Builder
from core.security import decrypt_secret

log = logging.getLogger(__name__)


def calendly_token(builder: Builder) -> str:
    if not builder.calendly_token_encrypted:
        raise ValueError(f"builder {builder.id} has no Calendly token")
    return decrypt_secret(builder.calendly_token_encrypted, get_settings().app_secret_key)


class OAuthCalendlyClient(CalendlyClient):
    """A client for a builder connected through OAuth. The token is fetched at the first request
    (refreshed first if it is about to expire; core.services.calendly_connection.access_token), so
    building a client inside a transaction takes no lock. A 401 refreshes once and retries once."""

    _PENDING = "token-not-fetched-yet"

    def __init__(self, engine: Engine, builder_id: int, base_url: str, **options) -> None:
        super().__init__(self._PENDING, base_url, **options)
        self._engine = engine
        self.builder_id = builder_id

    def __repr__(self) -> str:
        return f"OAuthCalendlyClient(builder_id={self.builder_id}, base_url={self.base_url!r})"

    def _request(self, method: str, url: str, **kwargs) -> dict:
        from core.services.calendly_connection import access_token
        if self._token == self._PENDING:
            self._token = access_token(self._engine, self.builder_id)
        try:
            return super()._request(method, url, **kwargs)
        except CalendlyAPIError as error:
            if error.status != 401:
                raise
        refused = self._token
        self._token = access_token(self._engine, self.builder_id, force_refresh=True, stale_token=refused)
        log.info("Calendly answered 401 for builder %s: token renewed, request retried once", self.builder_id)
        return super()._request(method, url, **kwargs)


def _engine_of(builder: Builder) -> Engine:
    """The engine the builder was read with (a test's, or the process's), without a read-only
    session's options: a refresh must take the write lock."""
    session = object_session(builder)
    bind = session.get_bind() if session is not None else None
    while bind is not None and hasattr(bind, "_proxied"):  # an Engine.execution_options() view
        bind = bind._proxied
    if isinstance(bind, Engine):
        return bind
    from core.db import get_engine
    return get_engine()


def calendly_for(builder: Builder, **options) -> CalendlyClient:
    """The builder's Calendly client: their personal access token as is, or their OAuth token kept
    fresh. A disconnected builder raises CalendlyDisconnected (a CalendlyError) when it is used."""
    base_url = get_settings().calendly_api_base
    if builder.calendly_auth == "oauth" or builder.calendly_status == "disconnected":
        return OAuthCalendlyClient(_engine_of(builder), builder.id, base_url, **options)
    return CalendlyClient(calendly_token(builder), base_url, **options)
