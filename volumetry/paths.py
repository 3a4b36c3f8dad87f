"""Safe output paths from untrusted names (DICOM tags, manifest cells).

Everything volumetry writes goes under one output folder. Names that come from
the data — a PatientID such as ``../../x``, a visit label with a slash, a
series description with control characters — are turned into plain labels by
:func:`safe_label`, and every output path is built with :func:`safe_join`,
which refuses any path that would resolve outside the output folder.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from .errors import InputError

_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]+")
_NOT_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")

#: Longest label kept from a name, in characters (longer names are cut and hashed).
MAX_LABEL_CHARS = 64


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def safe_label(name: object) -> str:
    """A BIDS-style label (letters and digits only) for a subject, visit or lesion name.

    A name that is already a plain label of at most :data:`MAX_LABEL_CHARS`
    characters is returned unchanged. Any other name loses its other characters
    and gets ``x`` and 8 hex digits of its SHA-256 appended, so that two
    different names never give the same label (``"01-A"`` → ``"01Ax3f…"``,
    ``"../../x"`` → ``"xx…"``).

    Parameters
    ----------
    name : object
        The untrusted name (converted with ``str``).

    Returns
    -------
    str
        Non-empty, matches ``[A-Za-z0-9]+``.
    """
    text = str(name)
    if text and len(text) <= MAX_LABEL_CHARS and not _NOT_ALNUM.search(text):
        return text
    kept = _NOT_ALNUM.sub("", text)[: MAX_LABEL_CHARS - 9]
    return f"{kept}x{_short_hash(text)}"


def safe_filename(name: object) -> str:
    """A file-name component (letters, digits, ``.``, ``_``, ``-``; no leading dot),
    hashed like :func:`safe_label` when anything had to change."""
    text = str(name)
    if (text and len(text) <= MAX_LABEL_CHARS and not _NOT_FILENAME.search(text)
            and not text.startswith(".")):
        return text
    kept = _NOT_FILENAME.sub("_", text).lstrip(".")[: MAX_LABEL_CHARS - 9]
    return f"{kept}x{_short_hash(text)}"


def safe_join(root: str | Path, *parts: str) -> Path:
    """Join ``parts`` under ``root`` and check that the result stays inside it.

    Parameters
    ----------
    root : str or pathlib.Path
        The output folder.
    *parts : str
        Relative path components (already sanitised; checked again here).

    Returns
    -------
    pathlib.Path
        The absolute path.

    Raises
    ------
    InputError
        When a part is absolute or the joined path resolves outside ``root``
        (through ``..`` or a symbolic link).
    """
    base = Path(root).resolve()
    for part in parts:
        if Path(part).is_absolute():
            raise InputError(f"refusing to write to absolute path {part!r}: outputs stay inside {base}")
    target = base.joinpath(*parts).resolve()
    if target != base and base not in target.parents:
        raise InputError(
            f"refusing to write {'/'.join(parts)!r}: it resolves to {target}, outside the output folder {base}"
        )
    return target
