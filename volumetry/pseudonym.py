"""Stable keyed pseudonyms for patient identifiers (``volumetry run --pseudonymize``).

A pseudonym is ``"P"`` followed by the first 16 hex digits of
HMAC-SHA256(key, identifier). The same key gives the same pseudonym for the
same identifier across runs and sites; without the key a pseudonym cannot be
reversed or recomputed from a guessed identifier.

The key is taken, in this order, from

1. the environment variable :data:`KEY_ENV` (``VOLUMETRY_PSEUDONYM_KEY``), any text;
2. the key file :data:`KEY_FILE` (``pseudonym.key``) in the output folder;
3. otherwise a new random 256-bit key is written to that file (mode 0600).

Keep the key file (or the variable) secret and apart from the shared results:
whoever holds it can link pseudonyms back to identifiers they already know.

Dates are moved with the identifiers (:meth:`Pseudonymizer.date_shift_days`): every
date of one subject goes back by the same keyed number of days (1 to
:data:`MAX_DATE_SHIFT_DAYS`), so intervals between a subject's scans — days from
baseline, course windows — are kept while the calendar dates are not (DICOM PS3.15's
"retain longitudinal temporal information with modified dates" option).

DICOM instance UIDs are replaced too (:meth:`Pseudonymizer.uid`): a scanner's UIDs often
embed the acquisition date and time (``1.3.12.2.1107.5.2.30.67060.2022040715044210837860713``)
and name the real study in a PACS. A pseudo UID is ``2.25.`` followed by the decimal of the
first :data:`UID_BITS` bits of HMAC-SHA256(key, ``"uid\0"`` + real UID): the same real UID gives
the same pseudo UID in every output of every run with the key.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from .errors import InputError

#: Environment variable holding the pseudonymisation key.
KEY_ENV = "VOLUMETRY_PSEUDONYM_KEY"
#: Key file name inside the output folder.
KEY_FILE = "pseudonym.key"
#: Hex digits of the HMAC kept in a pseudonym (64 bits).
PSEUDONYM_HEX_DIGITS = 16
#: A subject's dates move back by 1 to this many days (about ten years).
MAX_DATE_SHIFT_DAYS = 3652
#: Bits of the HMAC kept in a pseudo UID (``2.25.`` + at most 37 digits: 42 characters, under
#: DICOM's 64).
UID_BITS = 120


def load_key(out_dir: str | Path, *, create: bool = True) -> bytes:
    """The pseudonymisation key (see the module docstring for where it comes from).

    Raises
    ------
    InputError
        The key file exists but is empty or unreadable, or is missing and
        ``create`` is False.
    """
    env = os.environ.get(KEY_ENV)
    if env:
        return env.encode("utf-8")
    path = Path(out_dir) / KEY_FILE
    if path.is_file():
        try:
            key = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"pseudonym key file {path} cannot be read ({exc}); restore it or set {KEY_ENV}") from None
        if not key:
            raise InputError(f"pseudonym key file {path} is empty; restore it or set {KEY_ENV}")
        return key.encode("ascii")
    if not create:
        raise InputError(f"no pseudonym key: set {KEY_ENV} or put the key file {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key + "\n")
    return key.encode("ascii")


class Pseudonymizer:
    """Maps identifiers to stable keyed pseudonyms.

    Parameters
    ----------
    key : bytes
        The secret key (see :func:`load_key`).
    """

    def __init__(self, key: bytes) -> None:
        if not key:
            raise InputError("the pseudonymisation key is empty")
        self._key = bytes(key)

    def __call__(self, identifier: object) -> str:
        """The pseudonym of ``identifier`` (``"P"`` + 16 hex digits)."""
        digest = hmac.new(self._key, str(identifier).encode("utf-8"), hashlib.sha256).hexdigest()
        return "P" + digest[:PSEUDONYM_HEX_DIGITS]

    def date_shift_days(self, identifier: object) -> int:
        """Days (1 to :data:`MAX_DATE_SHIFT_DAYS`) by which the dates of ``identifier`` (a real
        subject identifier) move back: keyed like the pseudonym, the same for every date of the
        subject, and not derivable from the pseudonym without the key."""
        digest = hmac.new(self._key, b"date-shift\x00" + str(identifier).encode("utf-8"), hashlib.sha256).digest()
        return 1 + int.from_bytes(digest[:8], "big") % MAX_DATE_SHIFT_DAYS

    def uid(self, real: object) -> str:
        """The keyed pseudo UID (``2.25.<decimal>``, at most 42 characters) standing for the
        instance UID ``real`` (study, series, SOP instance or frame of reference UID)."""
        digest = hmac.new(self._key, b"uid\x00" + str(real).encode("utf-8"), hashlib.sha256).digest()
        return "2.25." + str(int.from_bytes(digest[:UID_BITS // 8], "big"))

    def path_key(self, real_path: str) -> str:
        """Keyed digest (64 hex digits) of a file's resolved path: the results database's key of
        the file's remembered SHA-256 in a pseudonymised folder (a plain SHA-256 of the path would
        confirm a guessed path, and paths often hold names and dates)."""
        return hmac.new(self._key, b"path\x00" + real_path.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:  # never show the key
        return "Pseudonymizer(<key hidden>)"
