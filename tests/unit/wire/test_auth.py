"""Authentication scrambles, both roles, cross-checked against PyMySQL's client implementation."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pymysql import _auth as pymysql_auth

from dal.wire.auth import (
    RSAKeys,
    native_check,
    native_response,
    new_scramble,
    password_matches,
    sha2_check,
    sha2_response,
)
from dal.wire.client import rsa_encrypt

passwords = st.binary(min_size=1, max_size=64)
scrambles = st.binary(min_size=20, max_size=20)


def native_hash(password: bytes) -> bytes:
    """What the server stores for mysql_native_password: SHA1(SHA1(pw))."""
    return hashlib.sha1(hashlib.sha1(password).digest()).digest()


def sha2_hash(password: bytes) -> bytes:
    """What DAL stores for caching_sha2_password fast auth: SHA256(SHA256(pw))."""
    return hashlib.sha256(hashlib.sha256(password).digest()).digest()


@pytest.fixture(scope="module")
def keys() -> RSAKeys:
    return RSAKeys()


# -- mysql_native_password -----------------------------------------------------------------------

@settings(max_examples=30)
@given(passwords, scrambles)
def test_native_response_and_check_agree(password: bytes, scramble: bytes) -> None:
    response = native_response(password, scramble)
    assert len(response) == 20
    assert native_check(response, scramble, native_hash(password))


@settings(max_examples=30)
@given(passwords, passwords, scrambles)
def test_native_check_rejects_wrong_password(right: bytes, wrong: bytes, scramble: bytes) -> None:
    assume(right != wrong)
    assert not native_check(native_response(wrong, scramble), scramble, native_hash(right))


@settings(max_examples=30)
@given(passwords, scrambles, scrambles)
def test_native_check_rejects_other_scramble(password: bytes, a: bytes, b: bytes) -> None:
    assume(a != b)
    assert not native_check(native_response(password, a), b, native_hash(password))


@settings(max_examples=30)
@given(st.binary(max_size=64), scrambles)
def test_native_response_matches_pymysql(password: bytes, scramble: bytes) -> None:
    assert native_response(password, scramble) == pymysql_auth.scramble_native_password(
        password, scramble)


@settings(max_examples=30)
@given(passwords, scrambles, st.binary(max_size=40))
def test_native_check_refuses_bad_lengths(password: bytes, scramble: bytes, junk: bytes) -> None:
    assume(len(junk) != 20)
    assert not native_check(junk, scramble, native_hash(password))


def test_native_empty_password() -> None:
    assert native_response(b"", b"s" * 20) == b""
    assert not native_check(b"", b"s" * 20, native_hash(b""))


# -- caching_sha2_password -----------------------------------------------------------------------

@settings(max_examples=30)
@given(passwords, scrambles)
def test_sha2_response_and_check_agree(password: bytes, scramble: bytes) -> None:
    response = sha2_response(password, scramble)
    assert len(response) == 32
    assert sha2_check(response, scramble, sha2_hash(password))


@settings(max_examples=30)
@given(passwords, passwords, scrambles)
def test_sha2_check_rejects_wrong_password(right: bytes, wrong: bytes, scramble: bytes) -> None:
    assume(right != wrong)
    assert not sha2_check(sha2_response(wrong, scramble), scramble, sha2_hash(right))


@settings(max_examples=30)
@given(passwords, scrambles, scrambles)
def test_sha2_check_rejects_other_scramble(password: bytes, a: bytes, b: bytes) -> None:
    assume(a != b)
    assert not sha2_check(sha2_response(password, a), b, sha2_hash(password))


@settings(max_examples=30)
@given(st.binary(max_size=64), scrambles)
def test_sha2_response_matches_pymysql(password: bytes, scramble: bytes) -> None:
    assert sha2_response(password, scramble) == pymysql_auth.scramble_caching_sha2(
        password, scramble)


@settings(max_examples=30)
@given(passwords, scrambles, st.binary(max_size=40))
def test_sha2_check_refuses_bad_lengths(password: bytes, scramble: bytes, junk: bytes) -> None:
    assume(len(junk) != 32)
    assert not sha2_check(junk, scramble, sha2_hash(password))


def test_sha2_empty_password() -> None:
    assert sha2_response(b"", b"s" * 20) == b""
    assert not sha2_check(b"", b"s" * 20, sha2_hash(b""))


def test_scramble_beyond_20_bytes_is_ignored() -> None:
    """An auth-switch scramble arrives with its trailing NUL: only the first 20 bytes count."""
    scramble = bytes(range(1, 21))
    assert native_response(b"pw", scramble + b"\x00") == native_response(b"pw", scramble)
    assert sha2_response(b"pw", scramble + b"\x00") == sha2_response(b"pw", scramble)


# -- scrambles -----------------------------------------------------------------------------------

def test_new_scramble_is_20_printable_bytes_without_nul_or_dollar() -> None:
    seen = set()
    for _ in range(500):
        s = new_scramble()
        assert len(s) == 20
        assert all(33 <= b <= 126 for b in s), s
        assert b"\x00" not in s
        assert b"$" not in s, s
        seen.add(s)
    assert len(seen) == 500


# -- RSA full auth -------------------------------------------------------------------------------

rsa_passwords = st.binary(min_size=1, max_size=100).filter(lambda p: not p.endswith(b"\x00"))


@given(rsa_passwords, scrambles)
@settings(max_examples=15, deadline=None)
def test_rsa_round_trip_as_dal_client_encrypts(keys: RSAKeys, password: bytes,
                                               scramble: bytes) -> None:
    ciphertext = rsa_encrypt(keys.public_pem(), password, scramble)
    assert len(ciphertext) == 256
    assert keys.decrypt_password(ciphertext, scramble) == password


@given(rsa_passwords, scrambles)
@settings(max_examples=15, deadline=None)
def test_rsa_round_trip_as_pymysql_encrypts(keys: RSAKeys, password: bytes,
                                            scramble: bytes) -> None:
    ciphertext = pymysql_auth.sha2_rsa_encrypt(password, scramble, keys.public_pem())
    assert keys.decrypt_password(ciphertext, scramble) == password


def test_rsa_public_key_is_stable_pem(keys: RSAKeys) -> None:
    pem = keys.public_pem()
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert keys.public_pem() == pem


def test_rsa_wrong_scramble_does_not_give_the_password(keys: RSAKeys) -> None:
    ciphertext = rsa_encrypt(keys.public_pem(), b"secret", b"a" * 20)
    assert keys.decrypt_password(ciphertext, b"b" * 20) != b"secret"


# -- password_matches ----------------------------------------------------------------------------

@settings(max_examples=30)
@given(passwords, passwords)
def test_password_matches(password: bytes, other: bytes) -> None:
    assume(password != other)
    assert password_matches(password, native_hash(password), None)
    assert password_matches(password, None, sha2_hash(password))
    assert password_matches(password, native_hash(password), sha2_hash(password))
    assert not password_matches(other, native_hash(password), None)
    assert not password_matches(other, None, sha2_hash(password))
    assert not password_matches(password, None, None)


def test_password_matches_prefers_sha2_hash() -> None:
    """With both hashes stored, the sha2 one decides."""
    assert not password_matches(b"a", native_hash(b"a"), sha2_hash(b"b"))
    assert password_matches(b"b", native_hash(b"a"), sha2_hash(b"b"))
