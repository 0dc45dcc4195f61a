"""The password policy and hashing."""

from __future__ import annotations

import bcrypt
import pytest

from services.auth import passwords
from services.auth.exceptions import WeakPassword


@pytest.mark.parametrize(
    "password",
    ["abcdefghijk", "short pass", "", "e\u0301" * 11],
)
def test_passwords_under_twelve_characters_are_rejected(password):
    """Fewer than 12 code points after NFC normalisation is refused."""
    with pytest.raises(WeakPassword) as caught:
        passwords.check_policy(password)
    assert caught.value.code == "PASSWORD_REJECTED"
    assert "password" in caught.value.fields


def test_length_is_counted_in_code_points_after_normalisation():
    """Twelve decomposed accented letters are twelve characters, so accepted."""
    assert passwords.check_policy("e\u0301" * 12) == "\u00e9" * 12


def test_a_password_of_128_characters_is_accepted_and_129_refused():
    """The upper limit is 128 characters."""
    passwords.check_policy("x7" * 64)
    with pytest.raises(WeakPassword):
        passwords.check_policy("x7" * 64 + "y")


def test_any_unicode_and_no_composition_rules():
    """Spaces, emoji and lower-case-only phrases are all fine."""
    for password in [
        "all lower case words",
        "パスワードはとても長いです",
        "🐈🐈🐈🐈🐈🐈🐈🐈🐈🐈🐈🐈",
    ]:
        passwords.check_policy(password)


@pytest.mark.parametrize("password", ["qwerty123456", "QWERTY123456", "1Qaz2wsx3edc"])
def test_common_passwords_are_rejected_whatever_their_case(password):
    """A password among the 10,000 most common is refused, case-insensitively."""
    with pytest.raises(WeakPassword) as caught:
        passwords.check_policy(password)
    assert "common" in caught.value.fields["password"][0]


def test_the_common_list_has_ten_thousand_entries():
    """The list is zxcvbn's 10,000 most frequent passwords."""
    assert 9_900 <= len(passwords.common_passwords()) <= 10_000
    assert "password" in passwords.common_passwords()


def test_a_64_character_password_over_72_bytes_works():
    """bcrypt's 72-byte limit does not cut a long multi-byte password."""
    password = "ü" * 64
    assert len(password.encode()) == 128
    hashed = passwords.hash_password(passwords.check_policy(password))
    assert passwords.verify_password(password, hashed)
    assert not passwords.verify_password("ü" * 63 + "u", hashed)


def test_two_long_passwords_sharing_their_first_72_bytes_differ():
    """No silent truncation: the 73rd byte counts."""
    first = "a" * 72 + "first"
    hashed = passwords.hash_password(first)
    assert passwords.verify_password(first, hashed)
    assert not passwords.verify_password("a" * 72 + "other", hashed)


def test_composed_and_decomposed_forms_of_a_password_match():
    """A password typed in NFD verifies against the NFC form it was set in."""
    hashed = passwords.hash_password("caf\u00e9 au lait please")
    assert passwords.verify_password("cafe\u0301 au lait please", hashed)


def test_the_default_cost_is_12_and_a_real_cost_12_hash_verifies(monkeypatch):
    """Without BCRYPT_ROUNDS the cost is 12; a cost-12 hash round-trips."""
    monkeypatch.delenv("BCRYPT_ROUNDS")
    monkeypatch.delenv("ALLOW_WEAK_BCRYPT")
    assert passwords.bcrypt_rounds() == 12
    hashed = passwords.hash_password("a perfectly fine passphrase")
    assert hashed.startswith("$2b$12$")
    assert passwords.verify_password("a perfectly fine passphrase", hashed)


def test_a_cost_below_12_is_refused_unless_weak_costs_are_allowed(monkeypatch):
    """BCRYPT_ROUNDS=4 only works with ALLOW_WEAK_BCRYPT=1."""
    monkeypatch.delenv("ALLOW_WEAK_BCRYPT")
    with pytest.raises(RuntimeError):
        passwords.hash_password("a perfectly fine passphrase")


def test_hashing_and_checking_run_in_the_thread_pool(monkeypatch):
    """bcrypt runs through eventlet.tpool.execute, off the hub."""
    calls = []
    real = passwords.tpool.execute

    def spy(func, *args):
        calls.append(func.__name__)
        return real(func, *args)

    monkeypatch.setattr(passwords.tpool, "execute", spy)
    hashed = passwords.hash_password("a perfectly fine passphrase")
    passwords.verify_password("a perfectly fine passphrase", hashed)
    passwords.verify_password("anything at all here", None)
    assert calls == ["_hash", "_verify", "_verify"]


def test_stored_hashes_are_plain_bcrypt_of_a_prehash():
    """The stored value is a bcrypt hash, not of the raw password."""
    hashed = passwords.hash_password("a perfectly fine passphrase")
    assert not bcrypt.checkpw(b"a perfectly fine passphrase", hashed.encode())
