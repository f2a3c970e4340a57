"""The whole system, live, for one test: the web service and both sandbox stand-ins on free
ports, wired to each other exactly as in `make run`, on the test's database.

    def test_something(live):
        booking_id = live.book()          # profile → sign-in → book → Calendly slot → PENDING_PAYMENT
        live.pay(booking_id)              # /payment → Stripe Checkout → pay → CONFIRMED
"""
from __future__ import annotations

import re
from contextlib import ExitStack
from dataclasses import dataclass, field

import pytest
import requests

from core.db import session_scope
from core.models import Booking
from core.services import catalog, scheduling
from tests.servers import free_port, serve

BUILDER_TOKEN = "sandbox-ada"
PRICES = (4900, 14900, 24900)


@dataclass
class LiveSystem:
    web: str
    calendly: str
    stripe: str
    engine: object
    settings: object
    builder_id: int = 0
    host_uri: str = ""  # the builder's Calendly user at the stand-in
    session_type_ids: list[int] = field(default_factory=list)
    event_type_ids: list[str] = field(default_factory=list)

    # ------------------------------------------------------------ sandbox controls
    def calendly_sandbox(self, method: str, path: str, body: dict | None = None) -> requests.Response:
        return requests.request(method, f"{self.calendly}/_sandbox{path}", json=body, timeout=30)

    def stripe_sandbox(self, method: str, path: str, body: dict | None = None) -> requests.Response:
        return requests.request(method, f"{self.stripe}/_sandbox{path}", json=body, timeout=30)

    def stripe_state(self) -> dict:
        return self.stripe_sandbox("GET", "/state").json()

    def calendly_state(self) -> dict:
        return self.calendly_sandbox("GET", "/state").json()

    def slot(self, type_index: int = 0) -> dict[str, str]:
        """`invitee_envelope` arguments for a slot that really is a booking's of this session type:
        the stand-in's event type, hosted by the builder."""
        return {"event_type": f"{self.calendly}/event_types/{self.event_type_ids[type_index]}",
                "host": self.host_uri}

    def admin(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.settings.admin_api_token}"}
        return requests.request(method, f"{self.web}{path}", headers=headers, timeout=30, **kwargs)

    def booking(self, booking_id: str) -> dict:
        response = self.admin("GET", f"/api/bookings/{booking_id}")
        assert response.status_code == 200, response.text
        return response.json()

    # ------------------------------------------------------------ a client's journey
    def signed_in_client(self, email: str = "client@example.com", name: str = "Casey Client") -> requests.Session:
        browser = requests.Session()
        page = browser.get(f"{self.web}/login?next=/profile/{self.builder_id}")
        csrf = _csrf(page.text)
        sent = browser.post(f"{self.web}/login", data={"email": email, "name": name, "csrf_token": csrf,
                                                       "next": f"/profile/{self.builder_id}"})
        assert sent.status_code == 200, sent.text
        link = re.search(r'id="magic-link" class="btn" href="([^"]+)"', sent.text).group(1).replace("&amp;", "&")
        assert browser.get(link).status_code == 200
        return browser

    def start_booking(self, browser: requests.Session, type_index: int = 0) -> tuple[str, str]:
        """POST /bookings from the profile page; returns (booking id, Calendly booking page URL)."""
        profile = browser.get(f"{self.web}/profile/{self.builder_id}")
        answer = browser.post(f"{self.web}/bookings", allow_redirects=False, data={
            "event_type_id": self.event_type_ids[type_index], "builder_id": str(self.builder_id),
            "csrf_token": _csrf(profile.text)})
        assert answer.status_code == 303, answer.text
        location = answer.headers["location"]
        booking_id = re.search(r"utm_content=(bk_[0-9a-f]{20})", location).group(1)
        return booking_id, location

    def pick_slot(self, calendly_url: str, start_time: str | None = None) -> dict:
        """Book through the stand-in's JSON shortcut (same effects as the form); returns its answer."""
        link = calendly_url.split("/book/")[1].split("?")[0]
        query = dict(part.split("=", 1) for part in calendly_url.split("?", 1)[1].split("&"))
        body = {"name": requests.utils.unquote(query.get("name", "")).replace("+", " "),
                "email": requests.utils.unquote(query.get("email", "")),
                "utm_content": query.get("utm_content"), "utm_source": query.get("utm_source")}
        if start_time:
            body["start_time"] = start_time
        answer = self.calendly_sandbox("POST", f"/links/{link}/book", body)
        assert answer.status_code == 201, answer.text
        return answer.json()

    def book(self, browser: requests.Session | None = None, type_index: int = 0) -> str:
        browser = browser or self.signed_in_client()
        booking_id, calendly_url = self.start_booking(browser, type_index)
        self.pick_slot(calendly_url)
        return booking_id

    def payment_url(self, booking_id: str) -> str:
        """The client's payment link as our emails carry it (with the token that shows the booking
        to its owner): /payment/{id} without it shows a stranger nothing (issue 9)."""
        from core.services.booking_access import payment_path
        return f"{self.web}{payment_path(booking_id)}"

    def checkout(self, booking_id: str) -> str:
        """GET the client's payment link → the Checkout Session id it redirects to."""
        answer = requests.get(self.payment_url(booking_id), allow_redirects=False, timeout=30)
        assert answer.status_code == 303, answer.text
        return answer.headers["location"].rsplit("/", 1)[1]

    def pay(self, booking_id: str) -> str:
        checkout_id = self.checkout(booking_id)
        paid = self.stripe_sandbox("POST", f"/checkout/{checkout_id}/pay")
        assert paid.status_code == 200, paid.text
        return checkout_id

    def let_checkout_expire(self, booking_id: str) -> str:
        """The client never pays: Stripe expires the booking's Checkout Session now; its id."""
        checkout_id = self.checkout(booking_id)
        expired = self.stripe_sandbox("POST", f"/checkout/{checkout_id}/expire-now")
        assert expired.status_code == 200, expired.text
        return checkout_id

    def drain(self):
        from core.worker import drain_outbox
        return drain_outbox(self.engine, limit=500)

    def status(self, booking_id: str) -> str:
        with session_scope(self.engine, read_only=True) as session:
            return session.get(Booking, booking_id).status


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


@pytest.fixture
def live(engine, settings_env):
    from webhook_service.app import create_app
    from sandbox.calendly import standin as calendly_standin
    from sandbox.stripe import standin as stripe_standin

    ports = {name: free_port() for name in ("web", "calendly", "stripe")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    # The first "complete your payment" goes out at once here, so a settled system has nothing left
    # to do; its delay (PAYMENT_NUDGE_AFTER_MINUTES) is tested in tests/test_mail_timing.py.
    settings = settings_env(public_base_url=urls["web"], calendly_api_base=urls["calendly"],
                            stripe_api_base=urls["stripe"], run_outbox_after_request="true",
                            payment_nudge_after_minutes="0")
    scheduling.EVENT_TYPES.clear()
    calendly_app = calendly_standin.create_app(
        public_url=urls["calendly"], webhook_url=f"{urls['web']}/api/webhooks/calendly",
        signing_key=settings.calendly_webhook_signing_key, redirect_url=f"{urls['web']}/payment/calendly-return")
    stripe_app = stripe_standin.create_app(
        secret_key=settings.stripe_secret_key, webhook_url=f"{urls['web']}/api/webhooks/stripe",
        webhook_secret=settings.stripe_webhook_secret, public_url=urls["stripe"])
    with ExitStack() as stack:
        stack.enter_context(serve(calendly_app, ports["calendly"]))
        stack.enter_context(serve(stripe_app, ports["stripe"]))
        stack.enter_context(serve(create_app(), ports["web"]))
        system = LiveSystem(urls["web"], urls["calendly"], urls["stripe"], engine, settings)
        _add_builder(system)
        yield system
    scheduling.EVENT_TYPES.clear()


def _add_builder(system: LiveSystem) -> None:
    from core.calendly import CalendlyClient
    client = CalendlyClient(BUILDER_TOKEN, system.calendly)
    user = client.get_current_user()
    event_types = [et for et in client.list_event_types(user["uri"], active=None)]
    with session_scope(system.engine) as session:
        builder = catalog.add_builder(session, name="Ada Lovelace", email="ada@example.com",
                                      calendly_token=BUILDER_TOKEN, calendly_user=user)
        system.builder_id = builder.id
        system.host_uri = user["uri"]
        for event_type, price in zip([et for et in event_types if et["active"]], PRICES):
            row = catalog.set_price(session, builder_id=builder.id, event_type=event_type, amount_cents=price,
                                    currency="USD")
            system.session_type_ids.append(row.id)
            system.event_type_ids.append(scheduling.event_type_uuid(event_type["uri"]))
