"""The Calendly stand-in's deterministic identities: the user and event types of a bearer token.

The stand-in creates them the first time a token is seen; the URIs are computed, so anyone can know
them without HTTP. Plain Python with no dependencies: `core.demo_data` imports it so the demo
builders' Calendly user and event type URIs are the stand-in's own.

Every token gets `EVENT_TYPE_SPECS`, except the demo builders in `EVENT_TYPE_SPECS_BY_TOKEN`, who
each offer their own sessions (the demo data prices exactly these).
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


def _spec(slug: str, name: str, minutes: int, color: str, description: str) -> tuple:
    return (slug, name, minutes, True, color, description)


# The demo builders' own event types ("sandbox-ada" keeps the default ones above).
EVENT_TYPE_SPECS_BY_TOKEN = {
    "sandbox-grace": (
        _spec("code-review", "Code review", 45, "#0069ff",
              "I read your pull request or repository with you and leave a written list of fixes."),
        _spec("debugging-rescue", "Debugging rescue", 60, "#e55cff",
              "Bring the bug that has eaten your week; we find it together."),
        _spec("mvp-sprint-planning", "MVP sprint planning", 120, "#17e885",
              "Turn your idea into a two-week plan: scope, stack, milestones and the first tickets."),
    ),
    "sandbox-linus": (
        _spec("quick-question", "Quick question", 15, "#ffa600",
              "Fifteen minutes for one focused question about your backend."),
        _spec("backend-pairing", "Backend pairing", 60, "#0069ff",
              "APIs, queues and background jobs, built together on your code."),
        _spec("database-tuning", "Database tuning", 90, "#8247f5",
              "Slow queries, indexes and migrations: we measure first, then fix."),
    ),
    "sandbox-yuki": (
        _spec("mobile-app-consult", "Mobile app consultation", 30, "#ff4f00",
              "Native, Flutter or React Native? We pick the right path for your app."),
        _spec("mobile-pairing", "iOS and Android pairing", 60, "#0069ff",
              "Hands-on help with your Swift or Kotlin code, screen shared."),
        _spec("app-store-launch-review", "App Store launch review", 90, "#17e885",
              "A checklist review before you submit: privacy, screenshots, crash reports, pricing."),
    ),
    "sandbox-priya": (
        _spec("product-teardown", "Product teardown", 45, "#e55cff",
              "An honest walk through your product as a new user sees it, with a written summary."),
        _spec("no-code-build-session", "No-code build session", 60, "#0069ff",
              "Bubble, Webflow or Airtable: we build the next piece of your app together."),
    ),
    "sandbox-mateo": (
        _spec("ux-review", "UX review", 40, "#ffa600",
              "Your key screens reviewed for clarity, accessibility and flow."),
        _spec("design-system-workshop", "Design system workshop", 120, "#8247f5",
              "Tokens, components and the rules that keep your app consistent as it grows."),
    ),
    "sandbox-chloe": (
        _spec("ai-feature-scoping", "AI feature scoping", 30, "#17e885",
              "Is an LLM the right tool here? We decide, and estimate the cost."),
        _spec("llm-integration-pairing", "LLM integration pairing", 75, "#0069ff",
              "Prompts, retrieval and evaluations wired into your app, together."),
        _spec("launch-readiness-audit", "Launch readiness audit", 120, "#ff4f00",
              "Monitoring, backups, rate limits and costs checked before real users arrive."),
    ),
    "sandbox-kwame": (
        _spec("payments-integration", "Payments integration", 60, "#0069ff",
              "Stripe Checkout, webhooks and refunds done right the first time."),
        _spec("security-review", "Security review", 90, "#e55cff",
              "Authentication, secrets and the OWASP top ten, checked against your code."),
    ),
}


def event_type_specs(token: str) -> tuple:
    """The event types the stand-in gives the user of ``token``, in listing order."""
    return EVENT_TYPE_SPECS_BY_TOKEN.get(token, EVENT_TYPE_SPECS)


def sandbox_user_uuid(token: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "calendly-sandbox-user:" + token))


def event_type_uuid(user_uuid: str, slug: str) -> str:
    return str(uuid.uuid5(uuid.UUID(user_uuid), slug))


def sandbox_user_uri(public_url: str, token: str) -> str:
    """The URI the stand-in gives the user of ``token`` (no HTTP needed)."""
    return f"{public_url.rstrip('/')}/users/{sandbox_user_uuid(token)}"


def sandbox_event_type_uris(public_url: str, token: str) -> list[str]:
    """The URIs of the event types of the user of ``token``, in listing order."""
    user = sandbox_user_uuid(token)
    return [f"{public_url.rstrip('/')}/event_types/{event_type_uuid(user, spec[0])}"
            for spec in event_type_specs(token)]


def identity_from_token(token: str) -> tuple[str, str]:
    """(name, slug): ``sandbox-ada`` → ("Ada", "ada"); ``sandbox-ada-lovelace`` → ("Ada Lovelace",
    "ada-lovelace"); anything else → ("Sandbox Builder", "sandbox-builder-<8 hex of the uuid>")."""
    match = re.fullmatch(r"sandbox-([A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*)", token)
    if match:
        parts = re.split(r"[-_]", match.group(1))
        return " ".join(p.capitalize() for p in parts), "-".join(p.lower() for p in parts)
    return "Sandbox Builder", "sandbox-builder-" + sandbox_user_uuid(token)[:8]


# ---------------------------------------------------------------- OAuth accounts
# The accounts the stand-in's OAuth authorization page offers: each is the user of its identity
# key (the personal token of that user), so an OAuth-connected demo builder keeps the URIs the demo
# data already points at.
OAUTH_ACCOUNTS = ("sandbox-ada", *EVENT_TYPE_SPECS_BY_TOKEN)

# `make run`'s demo starts with one builder already connected through OAuth: the stand-in accepts
# this refresh token, issued to the default client for Grace, once per start (then it rotates like
# any other). The demo stores it for Grace with an access token that has already expired, so the
# first API call refreshes it.
DEMO_OAUTH_IDENTITY = "sandbox-grace"
DEMO_OAUTH_REFRESH_TOKEN = "sbx_ort_demo-grace-connected-through-oauth"

IDENTITY_RE = re.compile(r"sandbox-[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*")
SANDBOX_EMAIL_DOMAIN = "sandbox.calendly.test"


def sandbox_email(token: str) -> str:
    return f"{identity_from_token(token)[1]}@{SANDBOX_EMAIL_DOMAIN}"


def account_for_hint(hint: str | None) -> str | None:
    """The identity key a `login_hint` names: the key itself (`sandbox-grace`, any well-formed
    one), the account's sandbox email, or an email whose local part is a listed account's slug
    (`grace@demo.test`, the demo builder's own address). None when it names nobody."""
    hint = (hint or "").strip().lower()
    if not hint or len(hint) > 100:
        return None
    if IDENTITY_RE.fullmatch(hint):
        return hint
    local, at, _domain = hint.partition("@")
    if at and IDENTITY_RE.fullmatch("sandbox-" + local):
        key = "sandbox-" + local
        if key in OAUTH_ACCOUNTS or hint == sandbox_email(key):
            return key
    return None
