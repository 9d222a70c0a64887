"""The simulator's own reading and writing of resource quantities and RFC 3339 times.

Written from the Kubernetes documentation (the `resource.Quantity` serialization format) and RFC 3339, not taken
from the product's helpers in activities/: a mistake there must not be repeated here, or tests that run the
product against the simulator could not see it. tests/test_k8ssim_units.py cross-checks both on real values.

Quantities are exact (`Fraction`): "100m" is 1/10 of a core, "1.5Gi" is 1610612736 bytes.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction

# <quantity> ::= <signedNumber><suffix>; <suffix> ::= <binarySI> | <decimalExponent> | <decimalSI>
_SIGNED_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
# The exponent is tried first, so "1E3" is 1000 while a bare "1E" is the suffix exa.
_QUANTITY = re.compile(rf"(?P<number>{_SIGNED_NUMBER})"
                       r"(?:[eE](?P<exponent>[+-]?[0-9]+)|(?P<suffix>[KMGTPE]i|[numkMGTPE])?)")
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}

# RFC 3339 date-time: full-date "T" full-time, where time-offset is "Z" or +hh:mm / -hh:mm ("T"/"Z" in any case).
_DATE_TIME = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})[Tt]"
    r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]+))?"
    r"(?P<offset>[Zz]|[+-][0-9]{2}:[0-9]{2})")


def parse_quantity(text: str) -> Fraction:
    """'250m' -> 1/4, '1.5Gi' -> 1610612736, '1e3' -> 1000, '1E' -> 10**18 (a bare E is exa, not an exponent)."""
    match = _QUANTITY.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"quantities must match the regular expression of resource.Quantity: {text!r}")
    number = Fraction(match["number"])
    if match["exponent"] is not None:
        return number * Fraction(10) ** int(match["exponent"])
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * 1024 ** _BINARY[suffix]
    return number * Fraction(10) ** _DECIMAL.get(suffix, 0)


def format_cpu(cores: Fraction) -> str:
    """CPU as the API server writes it: whole cores ('2'), else millicores ('375m'), else nanocores."""
    if cores.denominator == 1:
        return str(cores.numerator)
    milli = cores * 1000
    if milli.denominator == 1:
        return f"{milli.numerator}m"
    return f"{-(-cores * 10**9 // 1)}n"


def format_memory(size: Fraction) -> str:
    """Bytes with the largest binary suffix that divides them exactly ('300Mi', '1536Ki'), else plain bytes."""
    whole = -(-size // 1)
    for suffix, power in sorted(_BINARY.items(), key=lambda item: -item[1]):
        if whole and whole % 1024**power == 0:
            return f"{whole // 1024 ** power}{suffix}"
    return str(whole)


def parse_time(text: str) -> datetime | None:
    """An RFC 3339 date-time as an aware UTC datetime (fraction kept to the microsecond); None if it is not one."""
    match = _DATE_TIME.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        return None
    micros = int((match["fraction"] or "0")[:6].ljust(6, "0"))
    offset = match["offset"]
    if offset in ("Z", "z"):
        zone = UTC
    else:
        sign = -1 if offset[0] == "-" else 1
        zone = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
    try:
        stamp = datetime(int(match["year"]), int(match["month"]), int(match["day"]), int(match["hour"]),
                         int(match["minute"]), int(match["second"]), micros, tzinfo=zone)
    except ValueError:  # month 13, February 30th, hour 24...
        return None
    return stamp.astimezone(UTC)


def format_time(moment: datetime) -> str:
    """What the API server writes in metav1.Time fields: UTC, whole seconds, 'Z'."""
    if moment.tzinfo is None:
        raise ValueError("the simulator only keeps aware times")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
