"""Pipeline files (YAML): load and validate strictly.

A pipeline file says how a trial is processed: which series to take, which
segmentation method with which parameters, how visits map to treatment courses,
which response criteria apply and which outputs to write. Every key is checked
on load: an unknown or misspelt key is a :class:`~volumetry.errors.ConfigError`
naming the file, the key path, the closest valid key and every valid key; a
value of the wrong type or outside its allowed values is an error likewise.

The keys, their types and defaults are :data:`SCHEMA`; ``docs/pipeline.md``
documents them for users.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

from .errors import ConfigError

#: File name of the trial's default pipeline (in ``pipelines/`` and as package data).
DEFAULT_PIPELINE_NAME = "vascular-anomalies-rapamycin.yaml"


@dataclasses.dataclass(frozen=True)
class Key:
    """One key of the pipeline schema.

    Parameters
    ----------
    types : tuple of type
        Accepted Python types of the YAML value (``bool`` is never an ``int``).
    default : Any
        Value used when the key is absent (ignored when ``required``).
    doc : str
        One line for the documentation and error messages.
    choices : tuple, optional
        Allowed values (for strings, or for each item of a list).
    required : bool
        The key must be present.
    item_types : tuple of type, optional
        For lists: accepted types of each item.
    minimum : float, optional
        Smallest allowed number.
    min_items : int, optional
        For lists: fewest items (the items are also unique).
    """

    types: tuple
    default: Any = None
    doc: str = ""
    choices: tuple | None = None
    required: bool = False
    item_types: tuple | None = None
    minimum: float | None = None
    min_items: int | None = None


#: The pipeline schema: section -> key -> :class:`Key`. ``segmentation.params`` is
#: a free mapping handed to the segmentation method (which validates it).
SCHEMA: dict[str, dict[str, Key]] = {
    "series": {
        "modality": Key((str,), "MR", "DICOM Modality of the series to use"),
        "description_regex": Key(
            (str,), ".*", "regular expression (Python, searched, case-insensitive) on SeriesDescription"
        ),
        "prefer": Key(
            (str,), "most_slices", "which series when several match in one study",
            choices=("most_slices", "latest", "first"),
        ),
        "volume": Key(
            (int,), None, "DICOM trees: the 0-based volume to take when the chosen series holds several "
            "(echoes, dynamics); a manifest gives it per scan in its volume column", minimum=0,
        ),
    },
    "segmentation": {
        "method": Key((str,), None, "segmentation method name (see `volumetry segment --help`)", required=True),
        "params": Key((dict,), {}, "parameters of the method (mapping, checked by the method)"),
        "propagate": Key(
            (bool,), True,
            "a seed given on the baseline row alone is propagated to follow-ups by registration",
        ),
        "registration": Key(
            (str,), "rigid", "transform of the baseline-to-follow-up registration", choices=("rigid", "affine"),
        ),
        "vanished_lesion": Key(
            (str,), "empty", "when the method finds no lesion-like tissue at a propagated seed: record a measured "
            "0 mL flagged lesion-not-found (empty) or a failure (failed)", choices=("empty", "failed"),
        ),
    },
    "courses": {
        "length_weeks": Key((int, float), 12, "length of one treatment course in weeks", minimum=0.1),
        "max_courses": Key((int,), 4, "largest number of courses assessed", minimum=1),
        "visit_window_days": Key(
            (int, float), 14, "a scan within this many days of a course's end is its end-of-course scan",
            minimum=0,
        ),
    },
    "response": {
        "criteria": Key((str,), "vascular-anomaly", "response criteria name (volumetry.longitudinal)"),
        "confirm": Key((bool,), False, "a CR/PR counts in the best overall response only when the next evaluable "
                       "scan confirms it (column response_confirmed); unconfirmed, it counts as SD"),
    },
    "outputs": {
        "tables": Key(
            (list,), ["csv", "parquet"], "formats of the volume table", choices=("csv", "parquet"),
            item_types=(str,), min_items=1,
        ),
        "summary": Key((bool,), True, "write summary.csv (one row per subject x lesion x course)"),
        "masks": Key((bool,), True, "write masks as NIfTI in a BIDS-derivatives layout"),
        "seg": Key((bool,), True, "with masks: also a DICOM SEG next to each mask made on a DICOM series"),
        "report": Key((bool,), True, "write the HTML QC report (when volumetry.report is installed)"),
    },
}

#: Top-level keys that are not sections.
TOP_LEVEL: dict[str, Key] = {
    "name": Key((str,), None, "short name of the pipeline", required=True),
    "description": Key((str,), "", "free text"),
    "version": Key((int,), 1, "pipeline file format version (1)", choices=(1,)),
}


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """A validated pipeline file.

    Attributes
    ----------
    name, description : str
    series, segmentation, courses, response, outputs : dict
        The sections with every default filled in.
    path : pathlib.Path or None
        The YAML file read (None when built from a mapping).
    sha256 : str
        Hash of the file's bytes (of the canonical JSON when built from a mapping).
    """

    name: str
    description: str
    version: int
    series: dict
    segmentation: dict
    courses: dict
    response: dict
    outputs: dict
    path: Path | None
    sha256: str

    def section_hash(self, *sections: str) -> str:
        """SHA-256 of the canonical JSON of the named sections (the part of the
        pipeline a computation depends on, used in cache keys)."""
        data = {s: getattr(self, s) for s in sections}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()

    def to_dict(self) -> dict:
        """The validated configuration as plain data (defaults filled in)."""
        return {
            "name": self.name, "description": self.description, "version": self.version,
            **{s: getattr(self, s) for s in SCHEMA},
        }


def _where(source: str, keypath: str) -> str:
    return f"{source}: key '{keypath}'"


def _unknown_key(source: str, parent: str, key: Any, valid: list[str]) -> ConfigError:
    keypath = f"{parent}.{key}" if parent else str(key)
    close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return ConfigError(
        f"{_where(source, keypath)} is not a valid key.{hint} "
        f"Valid keys{' of ' + repr(parent) if parent else ''}: {', '.join(valid)}"
    )


def _type_name(types: tuple) -> str:
    names = {str: "text", int: "integer", float: "number", bool: "true/false", dict: "mapping", list: "list"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _check_value(source: str, keypath: str, spec: Key, value: Any) -> Any:
    def bad(msg: str) -> ConfigError:
        return ConfigError(f"{_where(source, keypath)}: {msg} ({spec.doc})")

    ok_type = isinstance(value, spec.types) and not (isinstance(value, bool) and bool not in spec.types)
    if not ok_type:
        raise bad(f"expected {_type_name(spec.types)}, got {type(value).__name__} {value!r}")
    if isinstance(value, float) and not math.isfinite(value):  # .nan / .inf pass every comparison below
        raise bad(f"must be a finite number, got {value!r}")
    if spec.minimum is not None and value < spec.minimum:
        raise bad(f"must be at least {spec.minimum}, got {value!r}")
    if isinstance(value, list):
        if spec.min_items is not None and len(value) < spec.min_items:
            what = f"one of {', '.join(map(str, spec.choices))}" if spec.choices else f"{spec.min_items} item(s)"
            raise bad(f"give at least {what}, got an empty list")
        for n, item in enumerate(value):
            if spec.item_types and (not isinstance(item, spec.item_types) or isinstance(item, bool)):
                raise bad(f"item {n} must be {_type_name(spec.item_types)}, got {item!r}")
            if spec.choices is not None and item not in spec.choices:
                raise bad(f"item {item!r} is not one of {', '.join(map(str, spec.choices))}")
            if spec.min_items is not None and item in value[:n]:
                raise bad(f"item {item!r} is given twice; list each once")
        return list(value)
    if spec.choices is not None and value not in spec.choices:
        close = difflib.get_close_matches(str(value), [str(c) for c in spec.choices], n=1, cutoff=0.5)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise bad(f"{value!r} is not one of {', '.join(map(str, spec.choices))}.{hint}")
    if isinstance(value, dict):
        return dict(value)
    return value


def _validate_mapping(source: str, parent: str, data: Any, schema: dict[str, Key]) -> dict:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{_where(source, parent)}: expected a mapping of keys ({', '.join(schema)}), "
            f"got {type(data).__name__} {data!r}"
        )
    for key in data:
        if key not in schema:
            raise _unknown_key(source, parent, key, list(schema))
    out = {}
    for key, spec in schema.items():
        keypath = f"{parent}.{key}" if parent else key
        if key not in data or data[key] is None:
            if spec.required:
                raise ConfigError(f"{_where(source, keypath)} is required ({spec.doc})")
            default = spec.default
            out[key] = list(default) if isinstance(default, list) else (
                dict(default) if isinstance(default, dict) else default)
            continue
        out[key] = _check_value(source, keypath, spec, data[key])
    return out


def validate_pipeline(data: Any, source: str = "<pipeline>", sha256: str | None = None,
                      path: Path | None = None) -> PipelineConfig:
    """Validate a parsed pipeline mapping.

    Parameters
    ----------
    data : Any
        The parsed YAML.
    source : str
        Name of the file in messages.
    sha256 : str, optional
        Hash of the file's bytes; defaults to the hash of the canonical JSON of ``data``.
    path : pathlib.Path, optional
        The file read.

    Returns
    -------
    PipelineConfig

    Raises
    ------
    ConfigError
        Unknown or misspelt key (with the closest valid key and the list of
        valid keys), missing required key, wrong type, value not allowed, or an
        invalid regular expression.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a pipeline file must be a YAML mapping, got {type(data).__name__}")
    valid_top = list(TOP_LEVEL) + list(SCHEMA)
    for key in data:
        if key not in valid_top:
            raise _unknown_key(source, "", key, valid_top)
    top = _validate_mapping(source, "", {k: data[k] for k in TOP_LEVEL if k in data}, TOP_LEVEL)
    sections = {s: _validate_mapping(source, s, data.get(s), SCHEMA[s]) for s in SCHEMA}
    try:
        re.compile(sections["series"]["description_regex"])
    except re.error as exc:
        raise ConfigError(
            f"{_where(source, 'series.description_regex')}: not a valid regular expression "
            f"({exc}); write it in Python syntax, quoted in the YAML"
        ) from None
    for key, value in sections["segmentation"]["params"].items():
        if not isinstance(key, str):
            raise ConfigError(f"{_where(source, 'segmentation.params')}: parameter names must be text, got {key!r}")
    if sha256 is None:
        sha256 = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
    return PipelineConfig(
        name=top["name"], description=top["description"], version=top["version"],
        path=path, sha256=sha256, **sections,
    )


def _unique_key_loader():
    """A ``yaml.SafeLoader`` that refuses a key given twice in one mapping (plain
    PyYAML keeps the last silently: a second ``segmentation:`` block would replace the first)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # '<<: *anchor' merges, it is no key
                    continue
                key = self.construct_object(key_node, deep=True)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping", node.start_mark,
                        f"key {key!r} is given twice (first on line {seen[key] + 1}); keep one", key_node.start_mark)
                seen[key] = key_node.start_mark.line
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def _yaml_problem(path: Path, exc: Exception) -> str:
    """One line for a YAML error: the file, the line and column of the problem, the problem and
    what to do (PyYAML's own text spans several lines and names the file ``<byte string>``)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{path} line {mark.line + 1}, column {mark.column + 1}" if mark is not None else str(path)
    problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
    context = getattr(exc, "context", None)
    if "\\t" in problem or "\t" in problem:
        fix = "indent with spaces: YAML does not allow tabs there"
    elif "given twice" in problem:
        fix = ""  # the problem says what to do
    elif "constructor for the tag" in problem:
        fix = "a pipeline file holds plain keys and values only, no '!!' tags"
    else:
        fix = f"{context}; fix the YAML there" if context else "fix the YAML there"
    return f"{where}: not valid YAML: {problem}" + (f"; {fix}" if fix else "")


def load_pipeline(path: str | Path) -> PipelineConfig:
    """Read and validate a pipeline YAML file.

    Parameters
    ----------
    path : str or pathlib.Path
        The YAML file.

    Returns
    -------
    PipelineConfig
        With ``sha256`` the hash of the file's bytes.

    Raises
    ------
    ConfigError
        The file is missing or not valid YAML, or the content is invalid (see
        :func:`validate_pipeline`).
    """
    import yaml

    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"pipeline file {path} does not exist; give an existing YAML file with --pipeline") from None
    except OSError as exc:
        raise ConfigError(f"pipeline file {path} cannot be read: {exc}") from None
    try:
        data = yaml.load(raw, Loader=_unique_key_loader())  # noqa: S506 -- a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(_yaml_problem(path, exc)) from None
    return validate_pipeline(data, source=str(path), sha256=hashlib.sha256(raw).hexdigest(), path=path)


def packaged_pipeline(name: str = DEFAULT_PIPELINE_NAME) -> Path:
    """Path of a pipeline file shipped inside the package (``volumetry/data/``, kept equal to
    ``pipelines/`` by a test)."""
    return Path(__file__).resolve().parent / "data" / name


def find_default_pipeline(cwd: str | Path | None = None) -> Path:
    """The default pipeline file: ``pipelines/<default>`` under the current
    directory when present, else the copy shipped with the package.

    Raises
    ------
    ConfigError
        Neither exists.
    """
    cwd = Path.cwd() if cwd is None else Path(cwd)
    local = cwd / "pipelines" / DEFAULT_PIPELINE_NAME
    if local.is_file():
        return local
    packaged = packaged_pipeline()
    if packaged.is_file():
        return packaged
    raise ConfigError(
        f"no default pipeline: neither {local} nor the packaged {packaged} exists; give one with --pipeline"
    )
