"""Secrets at rest: Calendly tokens encrypted (Fernet), passwords hashed (scrypt), tokens hashed."""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


class DecryptionError(Exception):
    """A stored secret cannot be decrypted with the current APP_SECRET_KEY."""


def _fernet(app_secret_key: str) -> Fernet:
    # Fernet wants 32 url-safe base64 bytes; derive them from our one application secret.
    digest = hashlib.sha256(b"calendly-token-encryption:" + app_secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt_secret(plaintext: str, app_secret_key: str) -> str:
    return _fernet(app_secret_key).encrypt(plaintext.encode()).decode()


def decrypt_secret(ciphertext: str, app_secret_key: str) -> str:
    try:
        return _fernet(app_secret_key).decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise DecryptionError("stored secret cannot be decrypted: was APP_SECRET_KEY changed?") from None


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    derived = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    return "$".join(
        ["scrypt", str(_SCRYPT_N), str(_SCRYPT_R), str(_SCRYPT_P),
         base64.b64encode(salt).decode(), base64.b64encode(derived).decode()]
    )


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_b64, hash_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(hash_b64)
        derived = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt_b64), n=int(n), r=int(r), p=int(p),
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(derived, expected)


def hash_token(token: str) -> str:
    """For one-time tokens (magic links): store only the SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()
