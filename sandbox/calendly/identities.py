"""The Calendly stand-in's deterministic identities: the user and event types of a bearer token.

The stand-in creates them the first time a token is seen; the URIs are computed, so anyone can know
them without HTTP. Plain Python with no dependencies: `core.demo_data` imports it so the demo
builders' Calendly user and event type URIs are the stand-in's own.
"""
from __future__ import annotations

import re
import uuid

# slug, name, duration (minutes), active, color, description
EVENT_TYPE_SPECS = (
    ("discovery-call", "Discovery call", 30, True, "#0069ff",
     "A short call to scope your app idea and agree the next steps."),
    ("pair-programming-session", "Pair-programming session", 60, True, "#8247f5",
     "We build a piece of your app together, screen shared."),
    ("architecture-review", "Architecture review", 90, True, "#17e885",
     "A deep review of your app's architecture, data model and deployment."),
    ("legacy-office-hours", "Legacy office hours", 45, False, "#ffa600",
     "Retired drop-in office hours."),
)


def sandbox_user_uuid(token: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "calendly-sandbox-user:" + token))


def event_type_uuid(user_uuid: str, slug: str) -> str:
    return str(uuid.uuid5(uuid.UUID(user_uuid), slug))


def sandbox_user_uri(public_url: str, token: str) -> str:
    """The URI the stand-in gives the user of ``token`` (no HTTP needed)."""
    return f"{public_url.rstrip('/')}/users/{sandbox_user_uuid(token)}"


def sandbox_event_type_uris(public_url: str, token: str) -> list[str]:
    """The URIs of the 4 event types of the user of ``token``, in listing order."""
    user = sandbox_user_uuid(token)
    return [f"{public_url.rstrip('/')}/event_types/{event_type_uuid(user, spec[0])}"
            for spec in EVENT_TYPE_SPECS]


def identity_from_token(token: str) -> tuple[str, str]:
    """(name, slug): ``sandbox-ada`` → ("Ada", "ada"); ``sandbox-ada-lovelace`` → ("Ada Lovelace",
    "ada-lovelace"); anything else → ("Sandbox Builder", "sandbox-builder-<8 hex of the uuid>")."""
    match = re.fullmatch(r"sandbox-([A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*)", token)
    if match:
        parts = re.split(r"[-_]", match.group(1))
        return " ".join(p.capitalize() for p in parts), "-".join(p.lower() for p in parts)
    return "Sandbox Builder", "sandbox-builder-" + sandbox_user_uuid(token)[:8]
