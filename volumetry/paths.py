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


#: The database that marks a folder as volumetry's output folder (``volumetry.store.DB_NAME``).
OUTPUT_MARKER = "results.sqlite"
#: What a folder may hold before the first run into it: the pseudonymisation key given for
#: ``--pseudonymize`` (``volumetry.pseudonym.KEY_FILE``); hidden files are also left alone.
OUTPUT_ALLOWED_BEFORE = ("pseudonym.key",)


def check_output_folder(out_dir: str | Path) -> None:
    """Check that a run may write into ``out_dir`` without touching anything but its own outputs.

    A folder that does not exist yet, is empty, or holds only :data:`OUTPUT_ALLOWED_BEFORE`
    and hidden files is fine, and so is the folder of an earlier run (it holds
    :data:`OUTPUT_MARKER`). Any other folder holding files is refused: the run would
    overwrite its ``volumes.csv``, ``report/`` or ``sub-*`` folders. A symbolic link
    anywhere inside that resolves outside ``out_dir`` is refused too: writing through it
    would write outside the output folder.

    Parameters
    ----------
    out_dir : str or pathlib.Path
        The output folder (``--out``).

    Raises
    ------
    InputError
        Naming the folder, the files or the link, and the fix.
    """
    import os

    out = Path(out_dir)
    if not out.is_dir():
        return  # made by the run (a file in the way is the runner's error)
    names = sorted(os.listdir(out))
    if OUTPUT_MARKER not in names:
        foreign = [n for n in names if not n.startswith(".") and n not in OUTPUT_ALLOWED_BEFORE]
        if foreign:
            shown = ", ".join(foreign[:10]) + (f" and {len(foreign) - 10} more" if len(foreign) > 10 else "")
            raise InputError(f"output folder {out} already holds files volumetry did not write ({shown}); give "
                             "--out a new or empty folder, or the folder of an earlier 'volumetry run', so that "
                             "none of them is overwritten")
    base = out.resolve()
    for dirpath, dirnames, filenames in os.walk(out):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            if not path.is_symlink():
                continue
            target = path.resolve()
            if target != base and base not in target.parents:
                raise InputError(f"output folder {out} holds the symbolic link {path.relative_to(out)} to "
                                 f"{target}, outside it: volumetry would write through it; remove the link "
                                 "(outputs stay inside the output folder)")
