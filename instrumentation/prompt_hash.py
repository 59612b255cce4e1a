"""Salted hashes of request messages, so repeated prompts can be counted without keeping text.

The instrumentors hash each request's messages (``ledger.prompt_hashes: true``) before the call
leaves, so the hashing lives beside them; the ledger sink (:mod:`costspan.exporters.ledger`)
owns the salt file, kept in the ledger's directory, and hands the salt over through
:func:`load_salt`.

The salt is random per ledger directory and never leaves it: the hash cannot be compared with
hashes from other installations or reversed by hashing guessed prompts without the salt file.
HMAC-SHA256 over a canonical JSON form (sorted keys, no whitespace) so that the same messages
give the same hash whatever dict order the client library used.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

SALT_FILE = "prompt-hash.salt"
SALT_BYTES = 32


def hash_messages(messages: object, salt: bytes) -> str:
    """Hex HMAC-SHA256 (128 bits kept) of the messages' canonical JSON; non-JSON values via str()."""
    canonical = json.dumps(messages, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hmac.new(salt, canonical.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def load_salt(directory: Path) -> bytes:
    """Read the directory's salt, creating it (mode 0600) on first use; concurrent creators agree."""
    path = Path(directory) / SALT_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_complete(path)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secrets.token_bytes(SALT_BYTES))
    return path.read_bytes()


def _read_complete(path: Path) -> bytes:
    # Another process created it an instant ago and may still be writing its 32 bytes.
    import time

    for _ in range(100):
        data = path.read_bytes()
        if len(data) >= SALT_BYTES:
            return data
        time.sleep(0.01)
    return path.read_bytes()
