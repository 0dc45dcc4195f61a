"""The password policy and password hashing.

Policy (NIST SP 800-63B style): 12 to 128 characters counted as code points
after NFC normalisation, any Unicode, no composition rules, and not one of the
10,000 most common passwords (compared case-insensitively).

Hashing: bcrypt reads at most 72 bytes, so the NFC form of the password is
first reduced with HMAC-SHA256 and base64-encoded (44 bytes); every character
of a long password counts. bcrypt runs in eventlet's OS thread pool so that a
hash never stalls the other green threads of the process.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import unicodedata

import bcrypt
from eventlet import patcher, tpool

from services.auth.exceptions import WeakPassword

MIN_LENGTH = 12
MAX_LENGTH = 128
DEFAULT_ROUNDS = 12
MIN_ROUNDS = 12
COMMON_PASSWORDS_COUNT = 10_000

# A fixed, public key: it only separates these pre-hashes from plain SHA-256
# digests found elsewhere. It is not a secret pepper.
PREHASH_KEY = b"cpd-platform/auth/password-prehash/v1"


@functools.cache
def common_passwords() -> frozenset[str]:
    """The 10,000 most common passwords, lower-cased (from zxcvbn's list)."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    ranked = FREQUENCY_LISTS["passwords"][:COMMON_PASSWORDS_COUNT]
    return frozenset(word.casefold() for word in ranked)


def normalise(password: str) -> str:
    return unicodedata.normalize("NFC", password)


def policy_problems(password: object) -> list[str]:
    """Why a new password is refused; empty when it is acceptable."""
    if not isinstance(password, str):
        return ["Must be a string."]
    password = normalise(password)
    if len(password) < MIN_LENGTH:
        return [f"Must be at least {MIN_LENGTH} characters long."]
    if len(password) > MAX_LENGTH:
        return [f"Must be at most {MAX_LENGTH} characters long."]
    if password.casefold() in common_passwords():
        return ["Is one of the most common passwords; choose another."]
    return []


def check_policy(password: object, field: str = "password") -> str:
    """The NFC form of an acceptable password; WeakPassword otherwise."""
    problems = policy_problems(password)
    if problems:
        raise WeakPassword(fields={field: problems})
    assert isinstance(password, str)
    return normalise(password)


def bcrypt_rounds() -> int:
    """The bcrypt cost: ``BCRYPT_ROUNDS``, at least 12 unless weak costs are
    explicitly allowed with ``ALLOW_WEAK_BCRYPT=1`` (tests only)."""
    rounds = int(os.environ.get("BCRYPT_ROUNDS", str(DEFAULT_ROUNDS)))
    if rounds < MIN_ROUNDS and os.environ.get("ALLOW_WEAK_BCRYPT") != "1":
        raise RuntimeError(
            f"BCRYPT_ROUNDS={rounds} is below {MIN_ROUNDS}; "
            "set ALLOW_WEAK_BCRYPT=1 only in tests"
        )
    return rounds


def _prehash(password: str) -> bytes:
    digest = hmac.new(
        PREHASH_KEY, normalise(password).encode("utf-8"), hashlib.sha256
    ).digest()
    return base64.b64encode(digest)


# bcrypt runs in eventlet's thread pool so that the hub keeps serving other
# requests. More hashing threads than cores only make them queue for the CPU
# together, so the pool is sized to the cores unless EVENTLET_THREADPOOL_SIZE
# says otherwise; and each hashing thread runs at a lower priority, so that
# the hub thread (every other request of this process) is scheduled first.
if "EVENTLET_THREADPOOL_SIZE" not in os.environ:
    tpool.set_num_threads(max(2, os.cpu_count() or 2))
# The pool's threads are real OS threads: use the unpatched module for them.
threading = patcher.original("threading")
_thread_state = threading.local()
HASHING_NICENESS = 19


def _lower_priority_once() -> None:
    if getattr(_thread_state, "lowered", False):
        return
    _thread_state.lowered = True
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASHING_NICENESS)
    except (AttributeError, OSError):
        pass  # not Linux, or not allowed: hashing still works at normal priority


def _hash(password: str, rounds: int) -> str:
    _lower_priority_once()
    return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds)).decode("ascii")


def _verify(password: str, hashed: str) -> bool:
    _lower_priority_once()
    try:
        return bcrypt.checkpw(_prehash(password), hashed.encode("ascii"))
    except ValueError:
        return False


def hash_password(password: str) -> str:
    """A bcrypt hash of the password, computed off the eventlet hub."""
    return tpool.execute(_hash, password, bcrypt_rounds())


def verify_password(password: str, hashed: str | None) -> bool:
    """True if the password matches the hash, computed off the eventlet hub.

    With no hash (an unknown user, or one who never set a password) a dummy
    hash is checked, so that the answer takes as long either way.
    """
    if not isinstance(password, str):
        password = ""
    if hashed is None:
        tpool.execute(_verify, password, _dummy_hash(bcrypt_rounds()))
        return False
    return tpool.execute(_verify, password, hashed)


def needs_rehash(hashed: str) -> bool:
    """True if the hash was made at a lower cost than the current one."""
    try:
        cost = int(hashed.split("$")[2])
    except (IndexError, ValueError):
        return True
    return cost < bcrypt_rounds()


@functools.cache
def _dummy_hash(rounds: int) -> str:
    # Made once per cost, by the first unknown user's login: off the hub too.
    return tpool.execute(_hash, "not a password of anyone", rounds)
