"""The stand-in's OAuth endpoints (same origin as its API, as ``CALENDLY_AUTH_BASE`` in sandbox mode):

- ``GET /oauth/authorize``   the page where a person allows or denies the app (see ``oauth``)
- ``POST /oauth/authorize``  their answer: back to ``redirect_uri`` with ``code`` or ``error``, and ``state``
- ``POST /oauth/token``      ``authorization_code`` (PKCE S256) and ``refresh_token`` grants
- ``POST /oauth/revoke``     revokes an access or refresh token
- ``/_sandbox/oauth/...``    test controls: summary, token lifetime, expire access tokens, approve
                             without the page

Client authentication: ``client_id`` + ``client_secret`` in the form body, or HTTP Basic.
"""
from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from .api import BodyTooLarge, capped_body, get_state, json_body
from .identities import OAUTH_ACCOUNTS, account_for_hint, identity_from_token, sandbox_email
from .model import CalendlyState, invalid
from .oauth import CHALLENGE_RE, CONSENT_TTL, SCOPE, Consent, Grant, OAuthError, OAuthStore
from .pages import render

router = APIRouter()
MAX_FORM_BYTES = 8192
MAX_URL_CHARS, MAX_STATE_CHARS = 2000, 1024
AUTHORIZE_PARAMS = ("client_id", "response_type", "redirect_uri", "state", "code_challenge",
                    "code_challenge_method", "login_hint", "scope")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
PAGE_HEADERS = {**NO_STORE, "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
                "Content-Security-Policy": "frame-ancestors 'none'"}
PERMISSIONS = ("See your profile, event types and scheduled events",
               "Create single-use booking links for your event types",
               "Cancel your scheduled events",
               "Be told when someone books, cancels or is marked a no-show")


def get_store(request: Request) -> OAuthStore:
    return request.app.state.calendly_oauth


class PageError(Exception):
    """The authorize request cannot be trusted to redirect anywhere: shown as a page."""

    def __init__(self, title: str, text: str):
        super().__init__(text)
        self.title, self.text = title, text


class RedirectError(Exception):
    """An authorize error told to the app at its (valid) redirect URI."""

    def __init__(self, url: str):
        super().__init__(url)
        self.url = url


def with_query(url: str, params: dict) -> str:
    params = {k: v for k, v in params.items() if v is not None}
    return url + ("&" if urlsplit(url).query else "?") + urlencode(params)


def valid_redirect_uri(value) -> bool:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_URL_CHARS:
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not parts.fragment


def consent_from(store: OAuthStore, params: dict, now) -> Consent:
    """The validated authorization request (raises PageError or RedirectError)."""
    if params.get("client_id") != store.client_id:
        raise PageError("Unknown app", "This app is not registered with Calendly (unknown client_id). "
                        "Go back to the app and tell its owner.")
    redirect_uri = params.get("redirect_uri")
    if not valid_redirect_uri(redirect_uri) or (store.redirect_uris and redirect_uri not in store.redirect_uris):
        raise PageError("Invalid redirect address", "The app sent an invalid redirect_uri, so Calendly "
                        "cannot send you back. Go back to the app and tell its owner.")
    state = params.get("state")
    if state is not None and len(state) > MAX_STATE_CHARS:
        raise PageError("Invalid request", "The app's state parameter is too long.")

    def refuse(error: str, description: str) -> RedirectError:
        return RedirectError(with_query(redirect_uri, {"error": error, "error_description": description,
                                                       "state": state}))

    if params.get("response_type") != "code":
        raise refuse("unsupported_response_type", "response_type must be code")
    challenge, method = params.get("code_challenge"), params.get("code_challenge_method")
    if challenge is not None or method is not None:
        if method != "S256":
            raise refuse("invalid_request", "code_challenge_method must be S256")
        if not isinstance(challenge, str) or not CHALLENGE_RE.fullmatch(challenge):
            raise refuse("invalid_request", "code_challenge must be the base64url SHA-256 of the code_verifier")
    return Consent(store.client_id, redirect_uri, state, challenge,
                   account_for_hint(params.get("login_hint")), now + CONSENT_TTL)


def single_params(pairs: list[tuple[str, str]], names) -> dict:
    """The named parameters, each at most once (a repeated one makes the request invalid)."""
    out: dict[str, str] = {}
    for key, value in pairs:
        if key in names:
            if key in out:
                raise ValueError(key)
            out[key] = value
    return out


# ---------------------------------------------------------------- the authorize page
def accounts(hint: str | None) -> list[dict]:
    keys = list(OAUTH_ACCOUNTS) + ([hint] if hint and hint not in OAUTH_ACCOUNTS else [])
    return [{"key": key, "name": identity_from_token(key)[0], "email": sandbox_email(key)} for key in keys]


def message_page(title: str, text: str, status: int = 400) -> HTMLResponse:
    response = render("message.html", status, title=title, message=text, ok=False, details=[],
                      links=[], zone=None)
    response.headers.update(PAGE_HEADERS)
    return response


def authorize_page(store: OAuthStore, ticket: str, consent: Consent, *, error: str | None = None,
                   status: int = 200, other_account_url: str | None = None) -> HTMLResponse:
    hint = consent.account_hint
    chosen = next((a for a in accounts(hint) if a["key"] == hint), None)
    response = render("authorize.html", status, title=f"Connect {store.app_name}", app_name=store.app_name,
                      ticket=ticket, accounts=accounts(hint), chosen=chosen, error=error,
                      permissions=PERMISSIONS, return_host=urlsplit(consent.redirect_uri).netloc,
                      other_account_url=other_account_url)
    response.headers.update(PAGE_HEADERS)
    return response


@router.get("/oauth/authorize", response_class=HTMLResponse)
def authorize(request: Request):
    state, store = get_state(request), get_store(request)
    try:
        params = single_params(list(request.query_params.multi_items()), AUTHORIZE_PARAMS)
    except ValueError as repeated:
        return message_page("Invalid request", f"The parameter {repeated} appears more than once.")
    with state.lock:
        try:
            consent = consent_from(store, params, state.now())
        except PageError as problem:
            return message_page(problem.title, problem.text)
        except RedirectError as refused:
            return RedirectResponse(refused.url, status_code=303)
        ticket = store.open_consent(consent, state.now())
    other = None
    if consent.account_hint:
        other = "/oauth/authorize?" + urlencode({k: v for k, v in params.items() if k != "login_hint"})
    return authorize_page(store, ticket, consent, other_account_url=other)


@router.post("/oauth/authorize")
async def authorize_answer(request: Request):
    state, store = get_state(request), get_store(request)
    expired = ("This request has expired", f"Nothing was connected. Go back to {store.app_name} and "
               "press Connect Calendly again.")
    try:
        raw = (await capped_body(request, MAX_FORM_BYTES)).decode("utf-8", "replace")
        form = single_params(parse_qsl(raw, max_num_fields=20), ("ticket", "decision", "account"))
    except (BodyTooLarge, ValueError):
        return message_page("Invalid request", "The form could not be read. Go back and try again.")
    with state.lock:
        now = state.now()
        consent = store.consents.get(form.get("ticket", ""))
        if consent is None or consent.expires_at <= now:
            return message_page(*expired)
        decision, account = form.get("decision"), form.get("account")
        if decision == "allow" and account not in [a["key"] for a in accounts(consent.account_hint)]:
            return authorize_page(store, form["ticket"], consent, status=400,
                                  error="Choose the Calendly account to connect.")
        if decision not in ("allow", "deny"):
            return authorize_page(store, form["ticket"], consent, status=400, error="Choose Allow or Deny.")
        store.take_consent(form["ticket"], now)
        if decision == "deny":
            target = with_query(consent.redirect_uri, {
                "error": "access_denied", "error_description": "The user denied access to their Calendly account.",
                "state": consent.state})
        else:
            target = with_query(consent.redirect_uri, {"code": store.issue_code(consent, account, now),
                                                       "state": consent.state})
    return RedirectResponse(target, status_code=303, headers=NO_STORE)


# ---------------------------------------------------------------- token and revoke
async def oauth_form(request: Request, names) -> dict:
    try:
        raw = await capped_body(request, MAX_FORM_BYTES)
    except BodyTooLarge:
        raise OAuthError("invalid_request", "The request body is too large.", 413)
    try:
        return single_params(parse_qsl(raw.decode("utf-8"), strict_parsing=bool(raw.strip()), max_num_fields=20),
                             (*names, "client_id", "client_secret"))
    except UnicodeDecodeError:
        raise OAuthError("invalid_request", "The request body must be form-encoded UTF-8.")
    except ValueError as repeated:
        raise OAuthError("invalid_request", f"The request is malformed or repeats a parameter ({repeated}).")


def client_credentials(request: Request, form: dict) -> tuple[str | None, str | None]:
    """From HTTP Basic when sent (a different client_id in the body fails), else from the body."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return form.get("client_id"), form.get("client_secret")
    try:
        client_id, _, secret = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    if form.get("client_id") not in (None, client_id):
        return None, None
    return client_id, secret


def token_json(state: CalendlyState, grant: Grant) -> dict:
    user = state.user_for_token(grant.identity)
    return {"token_type": "Bearer", "access_token": grant.access_token,
            "refresh_token": grant.refresh_token, "scope": SCOPE,
            "created_at": int(grant.created_at.timestamp()),
            "expires_in": int((grant.expires_at - grant.created_at).total_seconds()),
            "owner": state.user_uri(user), "organization": state.uri("organizations", user.org_uuid)}


@router.post("/oauth/token")
async def token(request: Request):
    state, store = get_state(request), get_store(request)
    form = await oauth_form(request, ("grant_type", "code", "redirect_uri", "code_verifier", "refresh_token"))
    client_id, secret = client_credentials(request, form)
    store.authenticate(client_id, secret)
    grant_type = form.get("grant_type")
    with state.lock:
        if grant_type == "authorization_code":
            grant = store.exchange_code(code=form.get("code"), redirect_uri=form.get("redirect_uri"),
                                        code_verifier=form.get("code_verifier"), client_id=client_id,
                                        now=state.now())
        elif grant_type == "refresh_token":
            grant = store.refresh(refresh_token=form.get("refresh_token"), client_id=client_id, now=state.now())
        elif not grant_type:
            raise OAuthError("invalid_request", "The grant_type parameter is required.")
        else:
            raise OAuthError("unsupported_grant_type", "grant_type must be authorization_code or refresh_token.")
        return JSONResponse(token_json(state, grant), headers=NO_STORE)


@router.post("/oauth/revoke")
async def revoke(request: Request):
    """RFC 7009: 200 for a revoked or unknown token alike."""
    state, store = get_state(request), get_store(request)
    form = await oauth_form(request, ("token", "token_type_hint"))
    client_id, secret = client_credentials(request, form)
    store.authenticate(client_id, secret)
    if not form.get("token"):
        raise OAuthError("invalid_request", "The token parameter is required.")
    with state.lock:
        store.revoke(form["token"], client_id)
    return JSONResponse({}, headers=NO_STORE)


# ---------------------------------------------------------------- test controls
@router.get("/_sandbox/oauth")
def oauth_summary(request: Request):
    state = get_state(request)
    with state.lock:
        return {"oauth": get_store(request).summary(state.now())}


@router.post("/_sandbox/oauth/settings")
def oauth_settings(request: Request, body: dict = Depends(json_body)):
    """``{"access_token_ttl_seconds": N}``: the lifetime of access tokens issued from now on."""
    ttl = body.get("access_token_ttl_seconds")
    if set(body) != {"access_token_ttl_seconds"} or not isinstance(ttl, int) or isinstance(ttl, bool) \
            or not 1 <= ttl <= 31_536_000:
        raise invalid("access_token_ttl_seconds", "must be a whole number of seconds, 1 to 31536000")
    state = get_state(request)
    with state.lock:
        get_store(request).access_token_ttl = ttl
        return {"oauth": get_store(request).summary(state.now())}


@router.post("/_sandbox/oauth/expire_access_tokens")
def oauth_expire(request: Request):
    """Every live access token expires now (the API answers 401 until the app refreshes)."""
    state = get_state(request)
    with state.lock:
        return {"expired": get_store(request).expire_access_tokens(state.now())}


@router.post("/_sandbox/oauth/approve")
def oauth_approve(request: Request, body: dict = Depends(json_body)):
    """The authorize page's Allow without a browser: the authorize parameters plus ``account`` (an
    identity key) → ``{"redirect_url": redirect_uri?code=…&state=…}``."""
    state, store = get_state(request), get_store(request)
    params = {k: v for k, v in body.items() if k in AUTHORIZE_PARAMS and isinstance(v, str)}
    account = body.get("account")
    if account_for_hint(account) != account:
        raise invalid("account", "must be an identity key such as sandbox-grace")
    with state.lock:
        try:
            consent = consent_from(store, {"response_type": "code", **params}, state.now())
        except PageError as problem:
            raise invalid("client_id" if problem.title == "Unknown app" else "redirect_uri", problem.text)
        except RedirectError as refused:
            return {"redirect_url": refused.url}
        return {"redirect_url": with_query(consent.redirect_uri, {
            "code": store.issue_code(consent, account, state.now()), "state": consent.state})}
