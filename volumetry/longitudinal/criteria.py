"""Response criteria sets: thresholds on percent change, and how a scan is classified.

Built-in sets (boundaries inclusive; percent change is rounded to 1e-9 % first,
see :func:`volumetry.longitudinal.response.percent_change`):

``vascular-anomaly`` (default)
    CR: no measurable lesion (empty mask, or volume ≤ 0 mL);
    PD: change from **baseline** ≥ +20 %; PR: change from baseline ≤ −20 %;
    SD otherwise. A new lesion is PD.
``recist-volumetric``
    The volumetric equivalents of RECIST 1.1's diameter thresholds
    (0.7³ → −65 %, 1.2³ → +73 %): CR as above; PD: change from the **nadir**
    (smallest earlier volume, baseline included) ≥ +73 %, or reappearance after
    a nadir of 0; PR: change from baseline ≤ −65 %; SD otherwise. A new lesion
    is PD. (RECIST's 5 mm absolute minimum for PD has no volumetric counterpart
    here.)

PD is tested before PR, so a scan that qualifies for both is PD. User-defined
sets are :class:`ResponseCriteria` values.
"""
from __future__ import annotations

import dataclasses
import math

from ..errors import ConfigError

#: Categories, best first (the order used for the best overall response).
CR, PR, SD, PD, NE = "CR", "PR", "SD", "PD", "NE"
ORDER = (CR, PR, SD, PD, NE)


@dataclasses.dataclass(frozen=True)
class ResponseCriteria:
    """A named set of response thresholds.

    Parameters
    ----------
    name : str
        Written in the ``criteria`` column.
    partial_response_pct : float
        PR when the change from baseline is ≤ this (%, negative, e.g. −20).
    progression_pct : float
        PD when the change from the reference is ≥ this (%, positive, e.g. +20).
    progression_reference : {"baseline", "nadir"}
        What PD is measured against.
    complete_response_ml : float
        CR when the volume is ≤ this (mL, ≥ 0); an empty mask is always CR.
    new_lesion_is_progression : bool
        Whether a lesion absent at baseline makes the scan (and the subject's
        total at that visit) PD.

    Raises
    ------
    ConfigError
        If a threshold has the wrong sign or the reference is unknown.
    """

    name: str
    partial_response_pct: float
    progression_pct: float
    progression_reference: str = "baseline"
    complete_response_ml: float = 0.0
    new_lesion_is_progression: bool = True

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("response criteria need a name")
        pr, pd_ = float(self.partial_response_pct), float(self.progression_pct)
        if not (math.isfinite(pr) and -100 < pr < 0):
            raise ConfigError(f"criteria {self.name!r}: partial_response_pct must be in (-100, 0) %, got {pr}")
        if not (math.isfinite(pd_) and pd_ > 0):
            raise ConfigError(f"criteria {self.name!r}: progression_pct must be > 0 %, got {pd_}")
        if self.progression_reference not in ("baseline", "nadir"):
            raise ConfigError(f"criteria {self.name!r}: progression_reference must be 'baseline' or 'nadir', "
                              f"got {self.progression_reference!r}")
        if not (math.isfinite(self.complete_response_ml) and self.complete_response_ml >= 0):
            raise ConfigError(f"criteria {self.name!r}: complete_response_ml must be >= 0 mL")
        object.__setattr__(self, "partial_response_pct", pr)
        object.__setattr__(self, "progression_pct", pd_)

    def classify(self, volume_ml: float | None, change_from_baseline_pct: float | None,
                 change_from_nadir_pct: float | None, *, nadir_ml: float | None = None,
                 no_measurable_lesion: bool = False) -> str:
        """Category of one follow-up scan.

        Parameters
        ----------
        volume_ml : float or None
            Volume at this scan (mL); None with ``no_measurable_lesion``.
        change_from_baseline_pct, change_from_nadir_pct : float or None
            Percent changes (%), already rounded.
        nadir_ml : float, optional
            Smallest earlier volume (mL); a nadir of 0 followed by a lesion is
            PD when progression is measured from the nadir.
        no_measurable_lesion : bool
            The lesion is absent (empty mask).

        Returns
        -------
        str
            ``CR``, ``PR``, ``SD``, ``PD`` or ``NE`` (no usable number).
        """
        if no_measurable_lesion or (volume_ml is not None and volume_ml <= self.complete_response_ml):
            return CR
        if volume_ml is None or change_from_baseline_pct is None or math.isnan(change_from_baseline_pct):
            return NE
        if self.progression_reference == "nadir":
            if nadir_ml is not None and nadir_ml <= 0:
                return PD  # reappearance after a complete response
            ref = change_from_nadir_pct
        else:
            ref = change_from_baseline_pct
        if ref is not None and not math.isnan(ref) and ref >= self.progression_pct:
            return PD
        if change_from_baseline_pct <= self.partial_response_pct:
            return PR
        return SD


#: The built-in sets by name.
CRITERIA: dict[str, ResponseCriteria] = {
    "vascular-anomaly": ResponseCriteria("vascular-anomaly", -20.0, 20.0, "baseline"),
    "recist-volumetric": ResponseCriteria("recist-volumetric", -65.0, 73.0, "nadir"),
}

#: The default set.
DEFAULT_CRITERIA = "vascular-anomaly"


def get_criteria(criteria: str | ResponseCriteria | None = None) -> ResponseCriteria:
    """Resolve a criteria name (or pass a :class:`ResponseCriteria` through).

    Raises
    ------
    ConfigError
        If the name is unknown (the message lists the built-in names).
    """
    if criteria is None:
        return CRITERIA[DEFAULT_CRITERIA]
    if isinstance(criteria, ResponseCriteria):
        return criteria
    try:
        return CRITERIA[str(criteria)]
    except KeyError:
        raise ConfigError(f"unknown response criteria {criteria!r}; choose {', '.join(CRITERIA)} "
                          "or define thresholds (partial_response_pct, progression_pct)") from None
