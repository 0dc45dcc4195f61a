"""Keys of the audit log: the Ed25519 key that signs checkpoints, and the
per-data-subject AES-256-GCM keys that personal values are encrypted under.

The signing key lives in a file (``AUDIT_SIGNING_KEY_FILE``; on a laptop it
is generated into ``DATA_DIR`` when missing) and never in the database, so
someone who can rewrite the database cannot sign a rewritten history. The
subject keys live in the database, in a table outside the chain, so that an
erasure request can destroy one subject's key while the chain still verifies.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from plumbing import config
from services.audit.canonical import canonical_bytes

# The one list of field names whose values are personal. Wherever one of these
# names is a key inside an event's ``changes`` or ``data`` (at any depth), its
# value is stored encrypted under the data subject's key.
PERSONAL_FIELDS = frozenset(
    {
        "given_name",
        "family_name",
        "first_name",
        "last_name",
        "name",
        "full_name",
        "display_name",
        "email",
        "work_email",
        "username",
        "login",
        "phone",
        "comment",
        "comments",
        "reflection",
        "notes",
        "note",
        "text",
        "description",
        "feedback",
        "observation",
        "summary",
        "body",
        "message",
        "address",
        # Free text of training requests and evaluations.
        "reason",
        "rationale",
        "intended_impact",
        "impact",
        "will_change",
        "evidence_links",
        # Free text of reviews, objectives, observations and evidence.
        "success_criteria",
        "focus",
        "strengths",
        "areas_for_development",
        "actions",
        "response",
        "filename",
        "url",
    }
)

ENCRYPTED_PREFIX = "enc:v1:"
NONCE_BYTES = 12


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- checkpoint signing -----------------------------------------------------


def signing_key_path() -> Path:
    path = os.environ.get("AUDIT_SIGNING_KEY_FILE")
    if path:
        return Path(path)
    return config.data_dir() / "audit_signing_key.pem"


def generate_signing_key(path: Path) -> Ed25519PrivateKey:
    """Write a new Ed25519 private key (PKCS#8 PEM, mode 0600) to ``path``."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return key


def load_signing_key(path: Path | None = None) -> Ed25519PrivateKey:
    """The checkpoint key from ``AUDIT_SIGNING_KEY_FILE``, made when missing
    only if the variable is unset (the laptop default)."""
    explicit = path is not None or bool(os.environ.get("AUDIT_SIGNING_KEY_FILE"))
    path = path or signing_key_path()
    if not path.exists():
        if explicit:
            raise FileNotFoundError(f"audit signing key file {path} does not exist")
        try:
            return generate_signing_key(path)
        except FileExistsError:
            pass  # another process made it first
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key


def public_key_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_public_key(pem: bytes | str) -> Ed25519PublicKey:
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def key_id(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """First 16 hex digits of SHA-256 over the raw 32-byte public key."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return hashlib.sha256(raw).hexdigest()[:16]


def sign_statement(key: Ed25519PrivateKey, statement: dict[str, Any]) -> str:
    """Base64url (unpadded) Ed25519 signature over the statement's canonical bytes."""
    return b64(key.sign(canonical_bytes(statement)))


def signature_valid(
    public: Ed25519PublicKey, statement: dict[str, Any], signature: str
) -> bool:
    try:
        public.verify(unb64(signature), canonical_bytes(statement))
    except (InvalidSignature, ValueError):
        return False
    return True


# --- personal values --------------------------------------------------------


def new_subject_key() -> tuple[str, bytes]:
    """A fresh (key id, 256-bit AES key) for one data subject."""
    return secrets.token_hex(8), AESGCM.generate_key(bit_length=256)


def _aad(event_id: str, path: str) -> bytes:
    return f"{event_id}|{path}".encode()


def encrypt_value(
    key_id_: str, key: bytes, event_id: str, path: str, value: Any
) -> str:
    """``enc:v1:<key id>:<base64url(nonce || ciphertext+tag)>`` of the value's
    canonical JSON, bound to the event and field path by the AAD."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, canonical_bytes(value), _aad(event_id, path))
    return f"{ENCRYPTED_PREFIX}{key_id_}:{b64(nonce + sealed)}"


def is_encrypted(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(ENCRYPTED_PREFIX)


def encrypted_key_id(token: str) -> str:
    return token[len(ENCRYPTED_PREFIX) :].split(":", 1)[0]


def decrypt_value(key: bytes, event_id: str, path: str, token: str) -> Any:
    import json

    blob = unb64(token[len(ENCRYPTED_PREFIX) :].split(":", 1)[1])
    try:
        plain = AESGCM(key).decrypt(
            blob[:NONCE_BYTES], blob[NONCE_BYTES:], _aad(event_id, path)
        )
    except InvalidTag:
        raise ValueError("the value does not decrypt under this key") from None
    return json.loads(plain)
