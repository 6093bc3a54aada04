"""Authentication scrambles: mysql_native_password and caching_sha2_password, both roles.

Server role checks a client's response against a stored hash, so that config files need no
plaintext: SHA1(SHA1(pw)) for native, SHA256(SHA256(pw)) for caching_sha2 fast auth.
"""

from __future__ import annotations

import hashlib
import hmac
import os

NATIVE = b"mysql_native_password"
CACHING_SHA2 = b"caching_sha2_password"
CLEAR = b"mysql_clear_password"

# caching_sha2_password AuthMoreData codes.
SHA2_FAST_OK = b"\x01\x03"
SHA2_FULL_AUTH = b"\x01\x04"
SHA2_REQUEST_PUBLIC_KEY = b"\x02"


def new_scramble() -> bytes:
    """20 random bytes with no NUL and no '$' that clients could mistake for a terminator."""
    raw = bytearray(os.urandom(20))
    for i, b in enumerate(raw):
        c = (b % 93) + 33  # 33..125, then skip '$' (36): printable 33..126 without '$'
        raw[i] = c + (c >= 36)
    return bytes(raw)


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def native_response(password: bytes, scramble: bytes) -> bytes:
    """Client role: SHA1(pw) XOR SHA1(scramble + SHA1(SHA1(pw)))."""
    if not password:
        return b""
    h1 = hashlib.sha1(password).digest()
    h2 = hashlib.sha1(h1).digest()
    return _xor(h1, hashlib.sha1(scramble[:20] + h2).digest())


def native_check(response: bytes, scramble: bytes, stored: bytes) -> bool:
    """Server role: does ``response`` prove knowledge of the password whose SHA1(SHA1) is stored?"""
    if len(response) != 20:
        return False
    h1 = _xor(response, hashlib.sha1(scramble[:20] + stored).digest())
    return hmac.compare_digest(hashlib.sha1(h1).digest(), stored)


def sha2_response(password: bytes, scramble: bytes) -> bytes:
    """Client role: XOR(SHA256(pw), SHA256(SHA256(SHA256(pw)) || nonce))."""
    if not password:
        return b""
    p1 = hashlib.sha256(password).digest()
    p2 = hashlib.sha256(p1).digest()
    return _xor(p1, hashlib.sha256(p2 + scramble[:20]).digest())


def sha2_check(response: bytes, scramble: bytes, stored: bytes) -> bool:
    """Server role fast auth: ``stored`` is SHA256(SHA256(pw))."""
    if len(response) != 32:
        return False
    p1 = _xor(response, hashlib.sha256(stored + scramble[:20]).digest())
    return hmac.compare_digest(hashlib.sha256(p1).digest(), stored)


def password_matches(password: bytes, native: bytes | None, sha2: bytes | None) -> bool:
    """Check a cleartext password (from the full-auth path) against whichever hash is stored."""
    if sha2 is not None:
        return hmac.compare_digest(
            hashlib.sha256(hashlib.sha256(password).digest()).digest(), sha2)
    if native is not None:
        return hmac.compare_digest(hashlib.sha1(hashlib.sha1(password).digest()).digest(), native)
    return False


class RSAKeys:
    """An RSA key pair for caching_sha2_password full auth over plain TCP.

    Generated on first use (about 50 ms) unless files are configured later.
    """

    def __init__(self) -> None:
        self._private = None
        self._pem: bytes | None = None

    def public_pem(self) -> bytes:
        self._ensure()
        assert self._pem is not None
        return self._pem

    def decrypt_password(self, ciphertext: bytes, scramble: bytes) -> bytes:
        """RSA-OAEP(SHA-1) decrypt, then undo the XOR with the repeated scramble; drop the NUL."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        self._ensure()
        plain = self._private.decrypt(  # type: ignore[union-attr]
            ciphertext,
            padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None),
        )
        nonce = scramble[:20]
        clear = bytes(b ^ nonce[i % len(nonce)] for i, b in enumerate(plain))
        return clear.rstrip(b"\x00")

    def _ensure(self) -> None:
        if self._private is not None:
            return
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        self._private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._pem = self._private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
