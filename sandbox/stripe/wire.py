"""Stripe's wire format for the stand-in: nested form decoding, errors, ids, amounts, list pages.

Stripe requests are `application/x-www-form-urlencoded` with brackets for nesting
(`line_items[0][price_data][currency]=usd`, `metadata[booking_id]=b1`, `expand[]=payment_intent`);
`decode_form` turns them into nested dicts and lists of strings. The helpers below coerce and
check values the way Stripe does, raising `StripeError`, which carries Stripe's error body.
"""
from __future__ import annotations

import re
import secrets
import string
from decimal import Decimal
from typing import Any, Callable
from urllib.parse import parse_qsl

API_VERSION = "2025-01-27.acacia"

ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx",
                "vnd", "vuv", "xaf", "xof", "xpf"}
THREE_DECIMAL = {"bhd", "jod", "kwd", "omr", "tnd"}
SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "krw": "₩", "inr": "₹", "cad": "CA$",
           "aud": "A$", "nzd": "NZ$", "chf": "CHF ", "sek": "SEK ", "nok": "NOK ", "dkk": "DKK "}
# Stripe's minimum charge amounts (minor units) for the currencies we are likely to meet.
MINIMUM_AMOUNT = {"usd": 50, "eur": 50, "gbp": 30, "cad": 50, "aud": 50, "chf": 50, "jpy": 50,
                  "nzd": 50, "sek": 300, "nok": 300, "dkk": 250}

_ALNUM = string.ascii_letters + string.digits
_KEY_RE = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEGMENT_RE = re.compile(r"\[([^\[\]]*)\]")


class StripeError(Exception):
    """An error answered in Stripe's shape: {"error": {"type", "message", "param", "code"}}."""

    def __init__(self, message: str, *, status: int = 400, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message, self.status, self.type, self.param, self.code = message, status, type, param, code

    def body(self) -> dict:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.param:
            error["param"] = self.param
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        return {"error": error}


def not_found(kind: str, object_id: str, *, param: str = "id", status: int = 404) -> StripeError:
    return StripeError(f"No such {kind}: '{object_id}'", status=status, param=param,
                       code="resource_missing")


def api_error_body(message: str = "An unknown error occurred") -> dict:
    return {"error": {"type": "api_error", "message": message}}


def rate_limit_body() -> dict:
    return {"error": {"type": "invalid_request_error", "code": "rate_limit",
                      "message": "Too many requests made to the API too quickly",
                      "doc_url": "https://stripe.com/docs/error-codes/rate-limit"}}


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


# ---------------------------------------------------------------------------- form decoding

def decode_form(raw: str) -> dict:
    """`a[b][0][c]=1&e[]=x` → {"a": {"b": [{"c": "1"}]}, "e": ["x"]}; values stay strings."""
    root: dict = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        match = _KEY_RE.match(key)
        parts = [match.group(1), *_SEGMENT_RE.findall(match.group(2))] if match else [key]
        node = root
        for depth, part in enumerate(parts):
            if part == "":
                part = str(sum(1 for k in node if k.isdigit()))
            last = depth == len(parts) - 1
            existing = node.get(part)
            if last:
                if isinstance(existing, dict):
                    raise StripeError(f"Invalid value for {key}: it is an object", param=key)
                node[part] = value
            else:
                if existing is None:
                    existing = node[part] = {}
                elif not isinstance(existing, dict):
                    raise StripeError(f"Invalid object: {key}", param=key)
                node = existing
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


# ---------------------------------------------------------------------------- value checks

def check_params(params: dict, allowed: set[str] | frozenset[str], prefix: str = "") -> None:
    for key in params:
        if key not in allowed:
            name = f"{prefix}[{key}]" if prefix else key
            raise StripeError(f"Received unknown parameter: {name}", param=name)


def require(params: dict, key: str, param: str | None = None) -> Any:
    value = params.get(key)
    if value is None or value == "":
        name = param or key
        raise StripeError(f"Missing required param: {name}.", param=name, code="parameter_missing")
    return value


def to_int(value: Any, param: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        number = int(value)
    else:
        raise StripeError(f"Invalid integer: {value}", param=param, code="parameter_invalid_integer")
    if minimum is not None and number < minimum:
        raise StripeError(f"This value must be greater than or equal to {minimum}.", param=param)
    if maximum is not None and number > maximum:
        raise StripeError(f"This value must be less than or equal to {maximum}.", param=param)
    return number


def to_bool(value: Any, param: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise StripeError(f"Invalid boolean: {value}", param=param)


def to_str(value: Any, param: str, *, max_length: int | None = None) -> str:
    if not isinstance(value, str):
        raise StripeError(f"Invalid string: {value!r}", param=param)
    if max_length is not None and len(value) > max_length:
        raise StripeError(f"Invalid string: {value[:20]}...; must be at most {max_length} characters",
                          param=param)
    return value


def as_dict(value: Any, param: str) -> dict:
    if value == "" or value is None:
        return {}
    if isinstance(value, list):  # numeric keys (e.g. metadata[0]) were listified
        return {str(i): v for i, v in enumerate(value)}
    if not isinstance(value, dict):
        raise StripeError("Invalid object", param=param)
    return value


def as_list(value: Any, param: str) -> list:
    if value == "" or value is None:
        return []
    if not isinstance(value, list):
        raise StripeError("Invalid array", param=param)
    return value


def metadata(value: Any, param: str = "metadata", base: dict | None = None) -> dict:
    """Stripe's metadata rules; empty strings unset a key. Returns the merged metadata."""
    result = dict(base or {})
    for key, item in as_dict(value, param).items():
        if len(key) > 40:
            raise StripeError(f"Metadata keys can have up to 40 characters; '{key}' is too long.",
                              param=f"{param}[{key}]")
        if not isinstance(item, str):
            raise StripeError(f"Invalid string: {item!r}", param=f"{param}[{key}]")
        if len(item) > 500:
            raise StripeError("Metadata values can have up to 500 characters.", param=f"{param}[{key}]")
        if item == "":
            result.pop(key, None)
        else:
            result[key] = item
    if len(result) > 50:
        raise StripeError("You can have up to 50 metadata keys.", param=param)
    return result


def expand_paths(params: dict) -> list[str]:
    return [to_str(p, "expand") for p in as_list(params.get("expand"), "expand")]


def created_filter(value: Any, param: str = "created") -> Callable[[int], bool]:
    """`created=123` or `created[gte]=…&created[lt]=…` → a predicate on timestamps."""
    if value is None:
        return lambda ts: True
    if not isinstance(value, dict):
        exact = to_int(value, param)
        return lambda ts: ts == exact
    check_params(value, {"gt", "gte", "lt", "lte"}, param)
    bounds = {op: to_int(v, f"{param}[{op}]") for op, v in value.items()}
    ops = {"gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
           "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b}
    return lambda ts: all(ops[op](ts, bound) for op, bound in bounds.items())


def paginate(items: list[dict], params: dict, url: str, kind: str) -> dict:
    """A Stripe list page of `items` (already newest first)."""
    limit = to_int(params.get("limit", 10), "limit", minimum=1, maximum=100)
    ids = [item["id"] for item in items]
    after, before = params.get("starting_after"), params.get("ending_before")
    if after:
        if after not in ids:
            raise not_found(kind, after, param="starting_after", status=400)
        window = items[ids.index(after) + 1:]
        page = window[:limit]
    elif before:
        if before not in ids:
            raise not_found(kind, before, param="ending_before", status=400)
        window = items[:ids.index(before)]
        page = window[-limit:]
    else:
        window = items
        page = window[:limit]
    return {"object": "list", "data": page, "has_more": len(window) > limit, "url": url}


# ---------------------------------------------------------------------------- amounts

def currency_decimals(currency: str) -> int:
    currency = currency.lower()
    if currency in ZERO_DECIMAL:
        return 0
    return 3 if currency in THREE_DECIMAL else 2


def format_amount(amount: int, currency: str) -> str:
    """Minor units → display text: (1250, "usd") → "$12.50"; (1500, "jpy") → "¥1,500"."""
    decimals = currency_decimals(currency)
    text = f"{Decimal(amount).scaleb(-decimals):,.{decimals}f}"
    symbol = SYMBOLS.get(currency.lower())
    return f"{symbol}{text}" if symbol else f"{text} {currency.upper()}"
