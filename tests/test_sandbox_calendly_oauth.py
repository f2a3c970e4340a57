"""The Calendly stand-in's OAuth (authorize page, token, revoke, expiring access tokens) and its
webhook subscription states, over real HTTP (uvicorn threads + requests), and the authorize page in
a real browser (screenshots under test-artifacts/browser/, desktop and phone)."""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.testclient import TestClient

from sandbox.calendly import oauth
from sandbox.calendly.identities import DEMO_OAUTH_IDENTITY, DEMO_OAUTH_REFRESH_TOKEN
from sandbox.calendly.oauth import s256
from sandbox.calendly.standin import create_app, sandbox_event_type_uris, sandbox_user_uri
from tests.browser_support import CHROMIUM, require_chromium
from tests.servers import free_port, serve

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CLIENT_ID, CLIENT_SECRET = "sandbox-client-id", "sandbox-client-secret"
CALLBACK = "http://service.test/calendly/oauth/callback"
HOOK_KEY = "catch-all-signing-key"
HTTP = requests.Session()
HTTP.trust_env = False


class Receiver:
    """Webhook receiver (each path's own signing key checked) and the app's OAuth callback page
    (what came back, shown as text: test values only)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.hooks: list[dict] = []
        self.keys: dict[str, str] = {"hook": HOOK_KEY}
        self.app = FastAPI()

        @self.app.get("/calendly/oauth/callback", response_class=HTMLResponse)
        def callback(request: Request):
            return "<h1>Back at the app</h1>" + "".join(f"<p>{k}={v}</p>" for k, v in request.query_params.items())

        @self.app.post("/{name}")
        async def hook(name: str, request: Request):
            raw = await request.body()
            parts = dict(p.split("=", 1) for p in request.headers.get("calendly-webhook-signature", "").split(",")
                         if "=" in p)
            expected = hmac.new(self.keys.get(name, "?").encode(), f"{parts.get('t')}.".encode() + raw,
                                hashlib.sha256).hexdigest()
            with self.lock:
                self.hooks.append({"path": name, "body": json.loads(raw),
                                   "valid": hmac.compare_digest(expected, parts.get("v1", ""))})
            return Response(status_code=200)

    def got(self, path: str) -> list[tuple[str, str, bool]]:
        with self.lock:
            return [(h["body"]["event"], h["body"]["payload"]["uri"], h["valid"]) for h in self.hooks
                    if h["path"] == path]


@pytest.fixture(scope="module")
def receiver():
    rec = Receiver()
    with serve(rec.app, free_port()) as url:
        rec.url = url
        yield rec


@pytest.fixture
def cal(receiver):
    with receiver.lock:
        receiver.hooks.clear()
    port = free_port()
    app = create_app(public_url=f"http://127.0.0.1:{port}", webhook_url=f"{receiver.url}/hook",
                     signing_key=HOOK_KEY, redirect_url=None)
    with serve(app, port) as url:
        yield url


# ------------------------------------------------------------------ helpers
def authorize_params(**extra) -> dict:
    return {"client_id": CLIENT_ID, "response_type": "code", "redirect_uri": CALLBACK, "state": "st-1", **extra}


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, s256(verifier)


def ticket_of(html: str) -> str:
    return re.search(r'name="ticket" value="([^"]+)"', html).group(1)


def answer(cal: str, ticket: str, decision: str, account: str | None = "sandbox-grace") -> requests.Response:
    form = {"ticket": ticket, "decision": decision, **({"account": account} if account else {})}
    return HTTP.post(f"{cal}/oauth/authorize", data=form, allow_redirects=False, timeout=10)


def query_of(location: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def approved_code(cal: str, challenge: str | None, account: str = "sandbox-grace", **extra) -> str:
    """Through the page: GET /oauth/authorize, then Allow as `account`."""
    params = authorize_params(**extra)
    if challenge:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    page = HTTP.get(f"{cal}/oauth/authorize", params=params, timeout=10)
    assert page.status_code == 200, page.text
    moved = answer(cal, ticket_of(page.text), "allow", account)
    assert moved.status_code == 303
    return query_of(moved.headers["location"])["code"]


def token(cal: str, auth=(CLIENT_ID, CLIENT_SECRET), **form) -> requests.Response:
    return HTTP.post(f"{cal}/oauth/token", data=form, auth=auth, timeout=10)


def connect(cal: str, account: str = "sandbox-grace") -> dict:
    verifier, challenge = pkce()
    code = approved_code(cal, challenge, account)
    got = token(cal, grant_type="authorization_code", code=code, redirect_uri=CALLBACK, code_verifier=verifier)
    assert got.status_code == 200, got.text
    return got.json()


def refresh(cal: str, refresh_token: str) -> requests.Response:
    return token(cal, grant_type="refresh_token", refresh_token=refresh_token)


def me(cal: str, access_token: str) -> requests.Response:
    return HTTP.get(f"{cal}/users/me", headers={"Authorization": f"Bearer {access_token}"}, timeout=10)


def api(cal: str, method: str, path: str, access_token: str, **kw) -> requests.Response:
    return HTTP.request(method, cal + path, headers={"Authorization": f"Bearer {access_token}"}, timeout=10, **kw)


def assert_invalid_grant(response: requests.Response, words: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_grant" and words in body["error_description"], body


# ------------------------------------------------------------------ the authorize page
def test_allow_redirects_with_a_code_and_the_state(cal):
    page = HTTP.get(f"{cal}/oauth/authorize", params=authorize_params(), timeout=10)
    assert page.status_code == 200
    assert "BuildAppsWith wants to connect to your Calendly account" in page.text
    assert "Grace — grace@sandbox.calendly.test" in page.text and 'id="account"' in page.text
    assert "service.test" in page.text                       # where the person goes back to
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    moved = answer(cal, ticket_of(page.text), "allow")
    assert moved.status_code == 303 and moved.headers["location"].startswith(CALLBACK + "?")
    got = query_of(moved.headers["location"])
    assert got["state"] == "st-1" and got["code"].startswith("sbx_code_") and set(got) == {"code", "state"}
    again = answer(cal, ticket_of(page.text), "allow")       # the page's ticket is single use
    assert again.status_code == 400 and "This request has expired" in again.text


def test_deny_redirects_with_access_denied_and_the_state(cal):
    page = HTTP.get(f"{cal}/oauth/authorize", params=authorize_params(state="st-deny"), timeout=10)
    moved = answer(cal, ticket_of(page.text), "deny", account=None)   # no account needed to deny
    assert moved.status_code == 303
    got = query_of(moved.headers["location"])
    assert (got["error"], got["state"]) == ("access_denied", "st-deny") and "code" not in got


def test_login_hint_names_the_account_being_connected(cal):
    page = HTTP.get(f"{cal}/oauth/authorize", params=authorize_params(login_hint="grace@demo.test"), timeout=10)
    assert "Account being connected" in page.text and "grace@sandbox.calendly.test" in page.text
    assert '<input type="hidden" name="account" value="sandbox-grace">' in page.text
    assert "Use another account" in page.text and 'id="account"' not in page.text
    # an identity key not in the list is offered too (tests connect fresh accounts this way)
    fresh = HTTP.get(f"{cal}/oauth/authorize", params=authorize_params(login_hint="sandbox-new-builder"), timeout=10)
    code = query_of(answer(cal, ticket_of(fresh.text), "allow", "sandbox-new-builder").headers["location"])["code"]
    grant = token(cal, grant_type="authorization_code", code=code, redirect_uri=CALLBACK).json()
    assert grant["owner"] == sandbox_user_uri(cal, "sandbox-new-builder")


def test_bad_authorize_requests_are_refused_clearly(cal):
    def get(**params):
        return HTTP.get(f"{cal}/oauth/authorize", params=params, allow_redirects=False, timeout=10)

    unknown = get(**authorize_params(client_id="someone-else"))
    assert unknown.status_code == 400 and "Unknown app" in unknown.text      # a page: no redirect
    for bad in ("javascript:alert(1)", "http://x.test/cb#frag", "/relative", "http://x.test/" + "a" * 2100):
        page = get(**authorize_params(redirect_uri=bad))
        assert page.status_code == 400 and "Invalid redirect address" in page.text
    wrong_type = get(**authorize_params(response_type="token"))
    assert wrong_type.status_code == 303
    assert query_of(wrong_type.headers["location"]) | {"error_description": ""} == {
        "error": "unsupported_response_type", "state": "st-1", "error_description": ""}
    plain = get(**authorize_params(code_challenge="a" * 43, code_challenge_method="plain"))
    assert query_of(plain.headers["location"])["error"] == "invalid_request"
    short = get(**authorize_params(code_challenge="abc", code_challenge_method="S256"))
    assert query_of(short.headers["location"])["error"] == "invalid_request"
    twice = HTTP.get(f"{cal}/oauth/authorize?client_id={CLIENT_ID}&client_id=x&response_type=code", timeout=10)
    assert twice.status_code == 400 and "appears more than once" in twice.text
    long_state = get(**authorize_params(state="s" * 1100))
    assert long_state.status_code == 400
    page = HTTP.get(f"{cal}/oauth/authorize", params=authorize_params(), timeout=10)
    nobody = answer(cal, ticket_of(page.text), "allow", account=None)
    assert nobody.status_code == 400 and "Choose the Calendly account to connect." in nobody.text
    stranger = answer(cal, ticket_of(page.text), "allow", account="pat_someone")
    assert stranger.status_code == 400                         # only the offered accounts
    assert answer(cal, "forged", "allow").status_code == 400
    huge = HTTP.post(f"{cal}/oauth/authorize", data={"ticket": "x" * 20_000}, timeout=10)
    assert huge.status_code == 400 and "could not be read" in huge.text


# ------------------------------------------------------------------ code exchange (PKCE)
def test_code_exchange_checks_pkce_redirect_uri_single_use_and_expiry(cal):
    verifier, challenge = pkce()
    code = approved_code(cal, challenge)
    wrong = token(cal, grant_type="authorization_code", code=code, redirect_uri=CALLBACK,
                  code_verifier=secrets.token_urlsafe(48))
    assert_invalid_grant(wrong, "code_verifier does not match")
    spent = token(cal, grant_type="authorization_code", code=code, redirect_uri=CALLBACK, code_verifier=verifier)
    assert_invalid_grant(spent, "already been used")           # a code tried with a wrong verifier is spent

    code = approved_code(cal, challenge)
    missing = token(cal, grant_type="authorization_code", code=code, redirect_uri=CALLBACK)
    assert_invalid_grant(missing, "code_verifier is missing")

    code = approved_code(cal, challenge)
    elsewhere = token(cal, grant_type="authorization_code", code=code, redirect_uri=CALLBACK + "/other",
                      code_verifier=verifier)
    assert_invalid_grant(elsewhere, "redirect_uri does not match")

    code = approved_code(cal, challenge)
    good = token(cal, grant_type="authorization_code", code=code, redirect_uri=CALLBACK, code_verifier=verifier)
    assert good.status_code == 200 and good.headers["cache-control"] == "no-store"
    grant = good.json()
    assert set(grant) == {"token_type", "access_token", "refresh_token", "scope", "created_at", "expires_in",
                          "owner", "organization"}
    assert (grant["token_type"], grant["expires_in"], grant["scope"]) == ("Bearer", 7200, "default")
    assert isinstance(grant["created_at"], int) and abs(grant["created_at"] - time.time()) < 60
    assert grant["owner"] == sandbox_user_uri(cal, "sandbox-grace")
    assert grant["organization"] == me(cal, grant["access_token"]).json()["resource"]["current_organization"]
    replayed = token(cal, grant_type="authorization_code", code=code, redirect_uri=CALLBACK, code_verifier=verifier)
    assert_invalid_grant(replayed, "already been used")
    assert me(cal, grant["access_token"]).status_code == 401   # a replayed code revokes what it bought
    assert_invalid_grant(refresh(cal, grant["refresh_token"]), "revoked")

    code = approved_code(cal, challenge)
    HTTP.post(f"{cal}/_sandbox/config", json={"clock_offset_seconds": 601}, timeout=10)   # 10 min 1 s later
    late = token(cal, grant_type="authorization_code", code=code, redirect_uri=CALLBACK, code_verifier=verifier)
    assert_invalid_grant(late, "expired")
    assert_invalid_grant(token(cal, grant_type="authorization_code", code="sbx_code_made-up",
                               redirect_uri=CALLBACK), "not valid")


def test_registered_redirect_uris_are_compared_exactly():
    app = create_app(public_url="http://cal.test", webhook_url=None, signing_key="k", redirect_url=None,
                     oauth_redirect_uris=(CALLBACK,))
    client = TestClient(app, base_url="http://cal.test")
    assert client.get("/oauth/authorize", params=authorize_params()).status_code == 200
    for near in (CALLBACK + "/", CALLBACK.replace("http:", "https:"), CALLBACK + "?x=1"):
        page = client.get("/oauth/authorize", params=authorize_params(redirect_uri=near), follow_redirects=False)
        assert page.status_code == 400 and "Invalid redirect address" in page.text


def test_client_authentication_and_malformed_token_requests(cal):
    code = approved_code(cal, None)
    wrong = token(cal, auth=(CLIENT_ID, "wrong"), grant_type="authorization_code", code=code, redirect_uri=CALLBACK)
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert "Basic" in wrong.headers["www-authenticate"]
    nobody = HTTP.post(f"{cal}/oauth/token", data={"grant_type": "authorization_code", "code": code}, timeout=10)
    assert nobody.status_code == 401 and nobody.json()["error"] == "invalid_client"
    in_body = HTTP.post(f"{cal}/oauth/token", timeout=10, data={   # credentials in the body work as Basic does
        "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    assert in_body.status_code == 200, in_body.text
    assert token(cal, grant_type="password").json()["error"] == "unsupported_grant_type"
    assert token(cal).json() == {"error": "invalid_request",
                                 "error_description": "The grant_type parameter is required."}
    twice = HTTP.post(f"{cal}/oauth/token", data="grant_type=refresh_token&grant_type=refresh_token",
                      auth=(CLIENT_ID, CLIENT_SECRET), timeout=10,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert twice.status_code == 400 and twice.json()["error"] == "invalid_request"
    huge = token(cal, grant_type="refresh_token", refresh_token="x" * 50_000)
    assert huge.status_code == 413 and huge.json()["error"] == "invalid_request"
    not_utf8 = HTTP.post(f"{cal}/oauth/token", data=b"grant_type=\xff\xfe", auth=(CLIENT_ID, CLIENT_SECRET),
                         headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10)
    assert not_utf8.status_code == 400 and not_utf8.json()["error"] == "invalid_request"


# ------------------------------------------------------------------ refresh, revoke, expiry
def test_refresh_tokens_rotate_and_are_single_use(cal):
    first = connect(cal)
    second = refresh(cal, first["refresh_token"])
    assert second.status_code == 200
    second = second.json()
    assert second["refresh_token"] != first["refresh_token"] and second["access_token"] != first["access_token"]
    assert second["owner"] == first["owner"] and second["organization"] == first["organization"]
    assert_invalid_grant(refresh(cal, first["refresh_token"]), "already been used")
    assert me(cal, first["access_token"]).status_code == 200   # the old access token lives until it expires
    third = refresh(cal, second["refresh_token"])
    assert third.status_code == 200 and me(cal, third.json()["access_token"]).status_code == 200
    assert_invalid_grant(refresh(cal, "sbx_ort_made-up"), "not valid")


def test_revoke_ends_both_tokens_of_a_grant(cal):
    one, two = connect(cal), connect(cal)
    revoked = HTTP.post(f"{cal}/oauth/revoke", timeout=10, data={
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "token": one["access_token"]})
    assert revoked.status_code == 200 and revoked.json() == {}
    gone = me(cal, one["access_token"])
    assert gone.status_code == 401 and gone.json() == {"title": "Unauthenticated",
                                                       "message": "The access token is invalid"}
    assert_invalid_grant(refresh(cal, one["refresh_token"]), "revoked")
    by_refresh = HTTP.post(f"{cal}/oauth/revoke", data={"token": two["refresh_token"]},
                           auth=(CLIENT_ID, CLIENT_SECRET), timeout=10)
    assert by_refresh.status_code == 200 and me(cal, two["access_token"]).status_code == 401
    unknown = HTTP.post(f"{cal}/oauth/revoke", data={"token": "whatever"}, auth=(CLIENT_ID, CLIENT_SECRET), timeout=10)
    assert unknown.status_code == 200                         # RFC 7009: nothing to tell
    wrong = HTTP.post(f"{cal}/oauth/revoke", data={"token": "x"}, auth=(CLIENT_ID, "nope"), timeout=10)
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    empty = HTTP.post(f"{cal}/oauth/revoke", data={}, auth=(CLIENT_ID, CLIENT_SECRET), timeout=10)
    assert empty.status_code == 400 and empty.json()["error"] == "invalid_request"


def test_an_expired_access_token_gets_401_and_the_refreshed_one_works(receiver):
    port = free_port()
    app = create_app(public_url=f"http://127.0.0.1:{port}", webhook_url=None, signing_key="k",
                     redirect_url=None, access_token_ttl=1)
    with serve(app, port) as cal:
        grant = connect(cal)
        assert grant["expires_in"] == 1 and me(cal, grant["access_token"]).status_code == 200
        time.sleep(1.1)
        expired = me(cal, grant["access_token"])
        assert expired.status_code == 401
        assert expired.json() == {"title": "Unauthenticated", "message": "The access token expired"}
        fresh = refresh(cal, grant["refresh_token"]).json()
        assert me(cal, fresh["access_token"]).json()["resource"]["uri"] == grant["owner"]
        # the controls: a longer lifetime from now on, and every live token expired at once
        settings = HTTP.post(f"{cal}/_sandbox/oauth/settings", json={"access_token_ttl_seconds": 600}, timeout=10)
        assert settings.json()["oauth"]["access_token_ttl_seconds"] == 600
        later = refresh(cal, fresh["refresh_token"]).json()
        assert later["expires_in"] == 600
        assert HTTP.post(f"{cal}/_sandbox/oauth/expire_access_tokens", timeout=10).json()["expired"] >= 1
        assert me(cal, later["access_token"]).json()["message"] == "The access token expired"
        bad = HTTP.post(f"{cal}/_sandbox/oauth/settings", json={"access_token_ttl_seconds": 0}, timeout=10)
        assert bad.status_code == 400


def test_oauth_tokens_act_as_the_approving_user_beside_personal_tokens(cal):
    grace = connect(cal)["access_token"]
    ada_uri = sandbox_user_uri(cal, "sandbox-ada")
    types = api(cal, "GET", "/event_types", grace, params={"user": sandbox_user_uri(cal, "sandbox-grace")})
    assert [t["uri"] for t in types.json()["collection"]] == sandbox_event_type_uris(cal, "sandbox-grace")
    link = api(cal, "POST", "/scheduling_links", grace, json={
        "max_event_count": 1, "owner": sandbox_event_type_uris(cal, "sandbox-grace")[0], "owner_type": "EventType"})
    assert link.status_code == 201
    assert api(cal, "GET", "/event_types", grace, params={"user": ada_uri}).status_code == 403
    assert me(cal, "sandbox-ada").json()["resource"]["uri"] == ada_uri          # personal tokens keep working
    assert me(cal, "sbx_oat_made-up").status_code == 401                       # ours, never a personal token
    assert me(cal, DEMO_OAUTH_REFRESH_TOKEN).status_code == 401                 # a refresh token is no bearer


def test_the_pre_issued_demo_refresh_token_works_once(cal):
    first = refresh(cal, DEMO_OAUTH_REFRESH_TOKEN)
    assert first.status_code == 200, first.text
    assert first.json()["owner"] == sandbox_user_uri(cal, DEMO_OAUTH_IDENTITY)
    assert_invalid_grant(refresh(cal, DEMO_OAUTH_REFRESH_TOKEN), "already been used")
    assert refresh(cal, first.json()["refresh_token"]).status_code == 200     # then it rotates like any other


def test_every_oauth_table_is_bounded(monkeypatch):
    monkeypatch.setattr(oauth, "MAX_CONSENTS", 5)
    monkeypatch.setattr(oauth, "MAX_CODES", 5)
    monkeypatch.setattr(oauth, "MAX_GRANTS", 5)
    app = create_app(public_url="http://cal.test", webhook_url=None, signing_key="k", redirect_url=None)
    client, store = TestClient(app, base_url="http://cal.test"), app.state.calendly_oauth
    for _ in range(12):
        assert client.get("/oauth/authorize", params=authorize_params()).status_code == 200
    codes = [query_of(client.post("/_sandbox/oauth/approve", json={**authorize_params(), "account": "sandbox-ada"})
                      .json()["redirect_url"])["code"] for _ in range(12)]
    grants = [client.post("/oauth/token", auth=(CLIENT_ID, CLIENT_SECRET), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}) for code in codes[-5:]]
    assert all(g.status_code == 200 for g in grants)
    for _ in range(10):
        grants.append(client.post("/oauth/token", auth=(CLIENT_ID, CLIENT_SECRET), data={
            "grant_type": "refresh_token", "refresh_token": grants[-1].json()["refresh_token"]}))
        assert grants[-1].status_code == 200
    assert (len(store.consents), len(store.codes), len(store.grants)) == (5, 5, 5)
    assert len(store.by_refresh) <= 5
    latest = grants[-1].json()["access_token"]
    assert client.get("/users/me", headers={"Authorization": f"Bearer {latest}"}).status_code == 200
    assert client.post("/oauth/token", auth=(CLIENT_ID, CLIENT_SECRET), data={    # evicted: refused, not a crash
        "grant_type": "authorization_code", "code": codes[0], "redirect_uri": CALLBACK}).status_code == 400


# ------------------------------------------------------------------ webhook subscriptions
def subscribe(cal: str, access_token: str, url: str, scope: str = "user", key: str = "own-key") -> requests.Response:
    me_ = me(cal, access_token).json()["resource"]
    return api(cal, "POST", "/webhook_subscriptions", access_token, json={
        "url": url, "events": ["invitee.created", "invitee.canceled"], "organization": me_["current_organization"],
        "user": me_["uri"], "scope": scope, "signing_key": key})


def book(cal: str, access_token: str, account: str) -> str:
    link = api(cal, "POST", "/scheduling_links", access_token, json={
        "max_event_count": 1, "owner": sandbox_event_type_uris(cal, account)[0], "owner_type": "EventType"})
    booked = HTTP.post(f"{cal}/_sandbox/links/{link.json()['resource']['booking_url'].rsplit('/', 1)[1]}/book",
                       json={"name": "Client", "email": "client@example.com"}, timeout=10)
    assert booked.status_code == 201, booked.text
    return booked.json()["invitee"]


def test_one_url_per_scope_409_and_a_disabled_subscription_gets_nothing(cal, receiver):
    grace, ada = connect(cal)["access_token"], connect(cal, "sandbox-ada")["access_token"]
    receiver.keys["own"] = "own-key"
    first = subscribe(cal, grace, f"{receiver.url}/own")
    assert first.status_code == 201 and first.json()["resource"]["state"] == "active"
    assert subscribe(cal, ada, f"{receiver.url}/own").status_code == 201     # another account, same URL: fine
    dup = subscribe(cal, grace, f"{receiver.url}/own")
    assert dup.status_code == 409
    assert dup.json() == {"title": "Already Exists", "message": "Hook with this url already exists"}
    sub_uuid = first.json()["resource"]["uri"].rsplit("/", 1)[1]
    invitee = book(cal, grace, "sandbox-grace")
    assert receiver.got("own") == [("invitee.created", invitee, True)]   # Ada's hears nothing of Grace

    disabled = HTTP.post(f"{cal}/_sandbox/webhook_subscriptions/{sub_uuid}/disable", timeout=10)
    assert disabled.status_code == 200 and disabled.json()["subscription"]["state"] == "disabled"
    listed = api(cal, "GET", "/webhook_subscriptions", grace, params={
        "organization": me(cal, grace).json()["resource"]["current_organization"], "scope": "user"}).json()
    assert [s["state"] for s in listed["collection"]] == ["disabled"]
    missed = book(cal, grace, "sandbox-grace")
    assert receiver.got("own") == [("invitee.created", invitee, True)]        # nothing sent, nothing recorded
    assert missed not in {d["invitee"] for d in HTTP.get(f"{cal}/_sandbox/state", timeout=10).json()["deliveries"]
                          if d["callback_url"].endswith("/own")}
    assert HTTP.post(f"{cal}/_sandbox/webhook_subscriptions/{sub_uuid}/enable", timeout=10).status_code == 200
    book(cal, grace, "sandbox-grace")
    assert len(receiver.got("own")) == 2
    assert HTTP.post(f"{cal}/_sandbox/webhook_subscriptions/{'0' * 8}-0000-0000-0000-{'0' * 12}/disable",
                     timeout=10).status_code == 404
    # one account cannot read or delete another's subscription
    assert api(cal, "DELETE", f"/webhook_subscriptions/{sub_uuid}", ada).status_code == 404
    assert api(cal, "DELETE", f"/webhook_subscriptions/{sub_uuid}", grace).status_code == 204


def test_subscribing_the_pre_registered_url_takes_that_host_off_the_catch_all(cal, receiver):
    grace, ada = connect(cal)["access_token"], connect(cal, "sandbox-ada")["access_token"]
    before = book(cal, grace, "sandbox-grace")
    assert receiver.got("hook") == [("invitee.created", before, True)]         # the catch-all, signed with its key
    own = subscribe(cal, grace, f"{receiver.url}/hook", key=HOOK_KEY)
    assert own.status_code == 201                       # not a 409: the catch-all is no scope of hers
    assert subscribe(cal, grace, f"{receiver.url}/hook", key=HOOK_KEY).status_code == 409
    mine, adas = book(cal, grace, "sandbox-grace"), book(cal, ada, "sandbox-ada")
    state = HTTP.get(f"{cal}/_sandbox/state", timeout=10).json()
    by_sub = {d["invitee"]: d["subscription"] for d in state["deliveries"]}
    assert by_sub[mine] == own.json()["resource"]["uri"]                       # once, through her own
    assert [i for _e, i, _v in receiver.got("hook")].count(mine) == 1
    assert by_sub[adas].rsplit("/", 1)[1] != own.json()["resource"]["uri"].rsplit("/", 1)[1]  # Ada: catch-all
    api(cal, "DELETE", "/webhook_subscriptions/" + own.json()["resource"]["uri"].rsplit("/", 1)[1], grace)
    gone = book(cal, grace, "sandbox-grace")                                   # deleted: nothing reaches us
    assert gone not in {i for _e, i, _v in receiver.got("hook")}


def test_the_runner_takes_oauth_options_and_prints_the_auth_base():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox.calendly", "--port", str(port), "--webhook-url", "",
         "--oauth-client-id", "my-app", "--oauth-client-secret", "my-secret", "--access-token-ttl", "90"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    cal = f"http://127.0.0.1:{port}"
    try:
        assert f"127.0.0.1:{port}" in proc.stdout.readline()
        printed = proc.stdout.readline()
        assert f"auth base {cal}" in printed and "my-app" in printed and "my-secret" not in printed
        deadline = time.time() + 10
        while True:
            try:
                approved = HTTP.post(f"{cal}/_sandbox/oauth/approve", timeout=5, json={
                    **authorize_params(client_id="my-app"), "account": "sandbox-ada"})
                break
            except requests.ConnectionError:
                assert time.time() < deadline
                time.sleep(0.05)
        code = query_of(approved.json()["redirect_url"])["code"]
        grant = token(cal, auth=("my-app", "my-secret"), grant_type="authorization_code", code=code,
                      redirect_uri=CALLBACK)
        assert grant.status_code == 200 and grant.json()["expires_in"] == 90
        assert refresh(cal, DEMO_OAUTH_REFRESH_TOKEN).status_code == 401   # the default client is not registered
    finally:
        proc.terminate()
        proc.wait(5)


# ------------------------------------------------------------------ in a real browser
@pytest.mark.browser
def test_the_authorize_page_in_a_browser_on_desktop_and_phone(cal, receiver):
    require_chromium()
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    back = f"{receiver.url}/calendly/oauth/callback"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        try:
            for name, viewport, decision in (("desktop", {"width": 1280, "height": 800}, "Allow"),
                                             ("phone", {"width": 390, "height": 844}, "Deny")):
                context = browser.new_context(viewport=viewport, is_mobile=viewport["width"] < 600)
                page = context.new_page()
                page.goto(f"{cal}/oauth/authorize?" + "&".join(
                    f"{k}={v}" for k, v in authorize_params(redirect_uri=back, state=f"st-{name}").items()))
                page.screenshot(path=str(ARTIFACTS / f"sandbox-oauth-authorize-{name}.png"), full_page=True)
                assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
                if decision == "Allow":
                    page.get_by_role("button", name="Allow").click()       # no account chosen yet: the browser asks
                    assert page.url.startswith(cal)
                    page.select_option("#account", label="Grace — grace@sandbox.calendly.test")
                page.get_by_role("button", name=decision).click()
                page.wait_for_url(back + "*")
                text = page.inner_text("body")
                assert f"state=st-{name}" in text
                assert ("code=sbx_code_" in text) if decision == "Allow" else ("error=access_denied" in text)
                hinted = context.new_page()
                hinted.goto(f"{cal}/oauth/authorize?" + "&".join(
                    f"{k}={v}" for k, v in authorize_params(redirect_uri=back, login_hint="grace@demo.test").items()))
                hinted.screenshot(path=str(ARTIFACTS / f"sandbox-oauth-authorize-hinted-{name}.png"), full_page=True)
                assert "Account being connected" in hinted.inner_text("body")
                context.close()
        finally:
            browser.close()
