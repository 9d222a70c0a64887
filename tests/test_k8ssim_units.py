"""The simulator stands alone: its own quantity and time parsing agrees with the product's on real values, and no
simulator module imports the product (activities/, workflows/, the runbook language)."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path

import pytest

from activities.k8s import fields as product_fields
from activities.k8s import health as product_health
from incidentctl.k8ssim import units

SIMULATOR = Path(__file__).resolve().parents[1] / "incidentctl" / "k8ssim"
PRODUCT_PACKAGES = ("activities", "workflows", "incidentctl.dsl")

# Values as they appear in real manifests, kubectl output and API answers.
QUANTITIES = {
    "0": 0, "1": 1, "2": 2, "0.5": 0.5, ".5": 0.5, "1.": 1, "+1": 1, "1e3": 1000, "1E3": 1000, "1e-3": 0.001,
    "129e6": 129_000_000, "100m": 0.1, "250m": 0.25, "1500m": 1.5, "0.1": 0.1, "1.5": 1.5, "12345n": 0.000012345,
    "500u": 0.0005, "1k": 1000, "1M": 1_000_000, "1G": 1e9, "1T": 1e12, "1P": 1e15, "1E": 1e18, "1Ki": 1024,
    "12Mi": 12 * 2**20, "256Mi": 256 * 2**20, "300Mi": 300 * 2**20, "1.5Gi": 1.5 * 2**30, "64Gi": 64 * 2**30,
    "1Ti": 2**40, "1Pi": 2**50, "1Ei": 2**60, "312320Ki": 312320 * 1024, "-1": -1,
}
NOT_QUANTITIES = ["", "m", "Mi", "1.5.5", "1 Gi", "1mi", "1KiB", "ten", "1e", "1e1.5", "0x10", "--1"]

TIMES = {
    "2024-05-01T10:00:00Z": datetime(2024, 5, 1, 10, tzinfo=UTC),
    "2024-05-01T10:00:00.5Z": datetime(2024, 5, 1, 10, 0, 0, 500_000, tzinfo=UTC),
    "2024-05-01T10:00:00.123456Z": datetime(2024, 5, 1, 10, 0, 0, 123_456, tzinfo=UTC),
    "2024-05-01T10:00:00.123456789Z": datetime(2024, 5, 1, 10, 0, 0, 123_456, tzinfo=UTC),  # nanoseconds: cut
    "2024-05-01T12:00:00+02:00": datetime(2024, 5, 1, 10, tzinfo=UTC),
    "2024-05-01T05:30:00.25-04:30": datetime(2024, 5, 1, 10, 0, 0, 250_000, tzinfo=UTC),
    "2024-12-31T23:59:59Z": datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC),
    "2024-02-29T00:00:00Z": datetime(2024, 2, 29, tzinfo=UTC),
    "2024-01-01T00:30:00+01:00": datetime(2023, 12, 31, 23, 30, tzinfo=UTC),
}
NOT_TIMES = ["", "yesterday", "2024-13-01T00:00:00Z", "2023-02-29T00:00:00Z", "2024-05-01T25:00:00Z"]
# ISO 8601 but not RFC 3339: the product reads them leniently (Python's fromisoformat); the API never writes them,
# and the simulator, a witness of what the API does, refuses them.
ISO_NOT_RFC3339 = ["2024-05-01", "2024-05-01T10:00Z", "2024-05-01 10:00:00Z", "2024-05-01T10:00:00"]


@pytest.mark.parametrize(("text", "expected"), QUANTITIES.items())
def test_quantities_agree_with_the_product(text: str, expected: float) -> None:
    simulated = units.parse_quantity(text)
    assert float(simulated) == pytest.approx(expected, rel=1e-12)
    assert float(simulated) == product_health.parse_quantity(text), text


@pytest.mark.parametrize("text", NOT_QUANTITIES)
def test_both_refuse_what_is_not_a_quantity(text: str) -> None:
    with pytest.raises(ValueError):
        units.parse_quantity(text)
    with pytest.raises(ValueError):
        product_health.parse_quantity(text)


def test_quantities_are_exact() -> None:
    assert units.parse_quantity("100m") == Fraction(1, 10)
    assert units.parse_quantity("100m") * 3 == Fraction(3, 10)  # 0.1 * 3 != 0.3 in floats
    assert units.parse_quantity("1.5Gi") == 3 * 2**29


@pytest.mark.parametrize("text", ["12Mi", "300Mi", "1Ki", "1.5Gi", "2Gi", "1536Ki", "1000", "129e6"])
def test_memory_written_by_the_simulator_reads_back_the_same_in_both(text: str) -> None:
    written = units.format_memory(units.parse_quantity(text))
    assert units.parse_quantity(written) == units.parse_quantity(text)
    assert product_health.parse_quantity(written) == float(units.parse_quantity(text))


@pytest.mark.parametrize(("cores", "text"), [(Fraction(2), "2"), (Fraction(3, 8), "375m"),
                                              (Fraction(1, 10**9), "1n"), (Fraction(3, 2), "1500m")])
def test_cpu_is_written_as_the_api_server_does(cores: Fraction, text: str) -> None:
    assert units.format_cpu(cores) == text
    assert product_health.parse_quantity(text) == float(cores)


@pytest.mark.parametrize(("text", "expected"), TIMES.items())
def test_times_agree_with_the_product(text: str, expected: datetime) -> None:
    assert units.parse_time(text) == expected
    assert product_fields.parse_time(text) == expected


@pytest.mark.parametrize("text", NOT_TIMES)
def test_both_refuse_what_is_not_a_time(text: str) -> None:
    assert units.parse_time(text) is None
    assert product_fields.parse_time(text) is None


@pytest.mark.parametrize("text", ISO_NOT_RFC3339)
def test_the_simulator_reads_only_rfc3339(text: str) -> None:
    assert units.parse_time(text) is None


def test_times_written_by_the_simulator_read_back_in_both() -> None:
    moment = datetime(2024, 5, 1, 12, 0, 7, 999_999, tzinfo=timezone(timedelta(hours=2)))
    written = units.format_time(moment)
    assert written == "2024-05-01T10:00:07Z" == product_fields.format_time(moment)
    assert units.parse_time(written) == product_fields.parse_time(written) == moment.replace(microsecond=0)


def _imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_no_simulator_module_imports_the_product() -> None:
    modules = sorted(SIMULATOR.glob("*.py"))
    assert len(modules) > 5, "the simulator's modules were not found"
    offending = {
        path.name: sorted(m for m in _imported_modules(path)
                          if any(m == p or m.startswith(p + ".") for p in PRODUCT_PACKAGES))
        for path in modules
    }
    assert {name: found for name, found in offending.items() if found} == {}
