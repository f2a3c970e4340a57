"""Calendly webhook signature: t=<unix seconds>,v1=hex(HMAC-SHA256(key, f"{t}." + raw body))."""
from __future__ import annotations

import hashlib
import hmac

import pytest

from core.calendly import SignatureError, sign_calendly_payload, verify_calendly_signature

KEY = "whsk_4q9Zr2mXv8LtP0bN6cJ1yH3s"
BODY = b'{"created_at":"2025-03-10T13:27:46.000000Z","event":"invitee.created","payload":{"uri":"https://api.calendly.com/scheduled_events/e1/invitees/i1"}}'
NOW = 1_741_613_266


def reason(body: bytes, header: str | None, key: str = KEY, **kwargs: object) -> str:
    with pytest.raises(SignatureError) as caught:
        verify_calendly_signature(body, header, key, now=kwargs.pop("now", NOW), **kwargs)  # type: ignore[arg-type]
    return caught.value.reason


def test_sign_matches_the_documented_construction() -> None:
    expected = hmac.new(KEY.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign_calendly_payload(BODY, KEY, NOW) == f"t={NOW},v1={expected}"


def test_valid_signature_passes() -> None:
    verify_calendly_signature(BODY, sign_calendly_payload(BODY, KEY, NOW), KEY, now=NOW + 5)


def test_default_timestamp_is_now() -> None:
    verify_calendly_signature(BODY, sign_calendly_payload(BODY, KEY), KEY)


def test_non_ascii_key_and_body_are_bytes_exact() -> None:
    key, body = "clé-secrète-ü", '{"name":"Zoë Ørsted"}'.encode()
    verify_calendly_signature(body, sign_calendly_payload(body, key, NOW), key, now=NOW)


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_header(header: str | None) -> None:
    assert reason(BODY, header) == "missing"


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        "v1=" + "a" * 64,  # no timestamp
        f"t={NOW}",  # no signature
        f"t=abc,v1={'a' * 64}",
        f"t=-5,v1={'a' * 64}",
        f"t={NOW},v1=not-hex",
        f"t={NOW},v1={'a' * 63}",
        f"t={NOW},t={NOW},v1={'a' * 64}",
        f"t={NOW},v1={'a' * 64},junk",
        "t=" + "9" * 5000 + ",v1=" + "a" * 64,
    ],
)
def test_malformed_header(header: str) -> None:
    assert reason(BODY, header) == "malformed"


def test_wrong_key_is_a_mismatch() -> None:
    assert reason(BODY, sign_calendly_payload(BODY, "another-key", NOW)) == "mismatch"


def test_one_byte_change_in_the_body_is_a_mismatch() -> None:
    header = sign_calendly_payload(BODY, KEY, NOW)
    tampered = BODY.replace(b"invitee.created", b"invitee.canceled")
    assert reason(tampered, header) == "mismatch"
    flipped = bytes([BODY[0] ^ 1]) + BODY[1:]
    assert reason(flipped, header) == "mismatch"
    assert reason(BODY + b" ", header) == "mismatch"  # e.g. re-serialised JSON


def test_changed_timestamp_is_a_mismatch() -> None:
    header = sign_calendly_payload(BODY, KEY, NOW).replace(f"t={NOW}", f"t={NOW + 1}")
    assert reason(BODY, header) == "mismatch"


def test_stale_signature_is_refused() -> None:
    header = sign_calendly_payload(BODY, KEY, NOW - 181)
    assert reason(BODY, header) == "stale"
    # Exactly at the tolerance is still fine.
    verify_calendly_signature(BODY, sign_calendly_payload(BODY, KEY, NOW - 180), KEY, now=NOW)


def test_future_signature_is_refused() -> None:
    assert reason(BODY, sign_calendly_payload(BODY, KEY, NOW + 181)) == "stale"
    verify_calendly_signature(BODY, sign_calendly_payload(BODY, KEY, NOW + 179), KEY, now=NOW)


def test_tolerance_is_configurable() -> None:
    header = sign_calendly_payload(BODY, KEY, NOW - 600)
    verify_calendly_signature(BODY, header, KEY, now=NOW, tolerance_seconds=900)
    assert reason(BODY, header, tolerance_seconds=60) == "stale"


def test_forged_old_signature_is_a_mismatch_not_stale() -> None:
    # The signature is checked first, so "stale" only ever describes a genuine delivery.
    assert reason(BODY, f"t={NOW - 10_000},v1={'0' * 64}") == "mismatch"


def test_any_of_several_v1_values_may_match() -> None:
    good = sign_calendly_payload(BODY, KEY, NOW).split("v1=")[1]
    other = sign_calendly_payload(BODY, "old-key", NOW).split("v1=")[1]
    verify_calendly_signature(BODY, f"t={NOW},v1={other},v1={good}", KEY, now=NOW)
    verify_calendly_signature(BODY, f"t={NOW}, v1={good.upper()}, v1={other}", KEY, now=NOW)
    # A garbled entry next to a good one is skipped; alone it is not enough.
    verify_calendly_signature(BODY, f"t={NOW},v1=zzz,v1={good}", KEY, now=NOW)
    assert reason(BODY, f"t={NOW},v1={other},v1={'f' * 64}") == "mismatch"


def test_unknown_schemes_are_ignored() -> None:
    good = sign_calendly_payload(BODY, KEY, NOW).split("v1=")[1]
    verify_calendly_signature(BODY, f"t={NOW},v0=abc,v1={good}", KEY, now=NOW)


def test_only_raw_bytes_are_accepted() -> None:
    header = sign_calendly_payload(BODY, KEY, NOW)
    with pytest.raises(TypeError):
        verify_calendly_signature(BODY.decode(), header, KEY, now=NOW)  # type: ignore[arg-type]
    verify_calendly_signature(bytearray(BODY), header, KEY, now=NOW)  # type: ignore[arg-type]


def test_empty_signing_key_is_a_configuration_error() -> None:
    with pytest.raises(ValueError):
        verify_calendly_signature(BODY, f"t={NOW},v1={'a' * 64}", "", now=NOW)
    with pytest.raises(ValueError):
        sign_calendly_payload(BODY, "")
