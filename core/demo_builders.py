"""Who the demo builders are: name, bio, time zone, working hours, and the prices of their sessions.

Each builder is the sandbox Calendly user of their token (`sandbox/calendly/identities.py` says which
event types that user offers); a price here is keyed by the event type's slug, so a demo session
type is always one the stand-in serves and booking from the profile page works for every builder.
Prices are in minor units (cents, pence; yen have none: 5000 JPY is ¥5,000).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from sandbox.calendly.identities import EVENT_TYPE_SPECS


@dataclass(frozen=True)
class DemoBuilder:
    token: str
    name: str
    email: str
    timezone: str
    work_hours: tuple[int, int]  # local start and end hour, Monday to Friday
    currency: str
    prices: dict[str, int]       # event type slug → price in minor units
    bio: str


DEMO_BUILDERS = (
    DemoBuilder("sandbox-ada", "Ada Lovelace", "ada@demo.test", "Europe/London", (9, 17), "USD",
                {"discovery-call": 4900, "pair-programming-session": 14900, "architecture-review": 24900},
                "Full-stack engineer who has shipped twelve SaaS products. I help founders go from "
                "idea to a first paying customer with Python, Postgres and a lot of pragmatism."),
    DemoBuilder("sandbox-grace", "Grace Hopper", "grace@demo.test", "America/New_York", (9, 17), "USD",
                {"code-review": 3900, "debugging-rescue": 11900, "mvp-sprint-planning": 29900},
                "Twenty years of finding bugs other people gave up on. Former tech lead at two fintech "
                "start-ups; I like TypeScript, tests and plain explanations."),
    DemoBuilder("sandbox-linus", "Linus Berg", "linus@demo.test", "Europe/Berlin", (8, 16), "EUR",
                {"quick-question": 2500, "backend-pairing": 12000, "database-tuning": 21000},
                "Backend and database specialist. Go, Rust and PostgreSQL; I make slow apps fast and "
                "fragile ones boring."),
    DemoBuilder("sandbox-yuki", "Yuki Tanaka", "yuki@demo.test", "Asia/Tokyo", (10, 18), "JPY",
                {"mobile-app-consult": 5000, "mobile-pairing": 15000, "app-store-launch-review": 25000},
                "Mobile developer with apps in the App Store top charts. Swift, Kotlin and Flutter; "
                "sessions in English or Japanese."),
    DemoBuilder("sandbox-priya", "Priya Sharma", "priya@demo.test", "Europe/London", (10, 18), "GBP",
                {"product-teardown": 6000, "no-code-build-session": 9500},
                "No-code builder and product coach. I have launched forty MVPs on Bubble and Webflow "
                "and I will tell you honestly when you need code."),
    DemoBuilder("sandbox-mateo", "Mateo Álvarez", "mateo@demo.test", "Europe/Madrid", (9, 15), "EUR",
                {"ux-review": 7000, "design-system-workshop": 28000},
                "Product designer turned front-end developer. Figma to React without losing the "
                "details on the way."),
    DemoBuilder("sandbox-chloe", "Chloe Nguyen", "chloe@demo.test", "Australia/Sydney", (8, 16), "USD",
                {"ai-feature-scoping": 5900, "llm-integration-pairing": 17900, "launch-readiness-audit": 34900},
                "Machine-learning engineer building AI features that earn their cost. Based in Sydney, "
                "so early mornings in Europe and evenings in the US work well."),
    DemoBuilder("sandbox-kwame", "Kwame Mensah", "kwame@demo.test", "Africa/Accra", (9, 17), "GBP",
                {"payments-integration": 11000, "security-review": 18000},
                "Payments and security engineer. Stripe, webhooks and refunds that add up; I have "
                "reviewed the security of more than a hundred apps."),
)

# For large demo sets: more builders, so that no one's calendar is overfull.
_FIRST = "Amara Bruno Carmen Dev Elif Farid Greta Hana Ines Jonas Kai Lena Mika Nia Omar Pia".split()
_LAST = "Novak Rossi Haddad Silva Okafor Ito Dubois Kowalski Chen Garcia Berg Smith".split()
_ZONES = (("Europe/London", "GBP"), ("Europe/Paris", "EUR"), ("America/Chicago", "USD"),
          ("America/Los_Angeles", "USD"), ("Asia/Tokyo", "JPY"), ("Asia/Singapore", "USD"))
_SKILLS = ("web apps", "mobile apps", "APIs", "data pipelines", "e-commerce", "internal tools")


def extra_builders(count: int, seed: int) -> list[DemoBuilder]:
    """`count` more builders with the stand-in's default event types, made up from `seed`."""
    rng = random.Random(seed)
    active = [spec for spec in EVENT_TYPE_SPECS if spec[3]]
    builders = []
    for n in range(1, count + 1):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        zone, currency = rng.choice(_ZONES)
        base = rng.choice((29, 39, 49, 59))  # 49 → $49.00, €49.00, £49.00 or ¥4,900
        prices = {slug: base * factor * 100 for factor, (slug, *_rest) in zip((1, 3, 5), active)}
        builders.append(DemoBuilder(
            f"sandbox-demo-builder-{n}", f"{first} {last}", f"builder{n}@demo.test", zone,
            (rng.choice((8, 9, 10)), rng.choice((16, 17, 18))), currency, prices,
            f"Freelance developer focused on {rng.choice(_SKILLS)} and {rng.choice(_SKILLS)}."))
    return builders
