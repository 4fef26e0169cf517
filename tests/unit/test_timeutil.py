"""Timestamps: ISO 8601 in, aware UTC inside, ISO 8601 UTC with microseconds and Z out."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from queuectl import timeutil
from queuectl.errors import InvalidInput

UTC = timezone.utc


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2030-06-01T12:00:00Z", datetime(2030, 6, 1, 12, tzinfo=UTC)),
        ("2030-06-01T12:00:00z", datetime(2030, 6, 1, 12, tzinfo=UTC)),
        ("2030-06-01T12:00:00", datetime(2030, 6, 1, 12, tzinfo=UTC)),  # no zone = UTC
        ("2030-06-01 12:00:00", datetime(2030, 6, 1, 12, tzinfo=UTC)),
        ("2030-06-01T12:00", datetime(2030, 6, 1, 12, tzinfo=UTC)),
        ("2030-06-01", datetime(2030, 6, 1, tzinfo=UTC)),
        ("2030-06-01T12:00:00+00:00", datetime(2030, 6, 1, 12, tzinfo=UTC)),
        ("2030-06-01T12:00:00+02:00", datetime(2030, 6, 1, 10, tzinfo=UTC)),
        ("2030-06-01T12:00:00-0800", datetime(2030, 6, 1, 20, tzinfo=UTC)),
        ("2030-06-01T12:00:00+05:30", datetime(2030, 6, 1, 6, 30, tzinfo=UTC)),
        ("2030-01-01T00:30:00+01:00", datetime(2029, 12, 31, 23, 30, tzinfo=UTC)),
        ("2030-06-01T12:00:00.5Z", datetime(2030, 6, 1, 12, 0, 0, 500000, tzinfo=UTC)),
        ("2030-06-01T12:00:00.123456Z", datetime(2030, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)),
        # More than microsecond precision is cut to microseconds, not rejected.
        ("2030-06-01T12:00:00.123456789Z", datetime(2030, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)),
        ("  2030-06-01T12:00:00Z  ", datetime(2030, 6, 1, 12, tzinfo=UTC)),
        # The original system wrote datetime.now(timezone.utc).isoformat().
        (
            "2025-11-04T10:30:00.654321+00:00",
            datetime(2025, 11, 4, 10, 30, 0, 654321, tzinfo=UTC),
        ),
    ],
)
def test_parse_timestamp(text: str, expected: datetime) -> None:
    parsed = timeutil.parse_timestamp(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "tomorrow",
        "now",
        "1700000000",
        "2030-13-01T00:00:00Z",
        "2030-02-30T00:00:00Z",
        "2030-06-01T24:00:01Z",
        "2030-06-01T12:60:00Z",
        "2030-06-01T12:00:00.Z",
        "2030-06-01T12:00:00+25:00",
        "2030-06-01T12:00:00 UTC",
        "2030/06/01 12:00:00",
        "01-06-2030",
        "2030-06-01T12:00:00ZZ",
        "٢٠٣٠-06-01T12:00:00Z",
        # Past the last (or before the first) instant a datetime can hold in UTC.
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00+01:00",
    ],
)
def test_garbage_is_rejected(text: str) -> None:
    with pytest.raises(InvalidInput, match="invalid timestamp"):
        timeutil.parse_timestamp(text)


def test_format_has_microseconds_and_z() -> None:
    moment = datetime(2030, 6, 1, 12, tzinfo=UTC)
    assert timeutil.format_timestamp(moment) == "2030-06-01T12:00:00.000000Z"
    other_zone = datetime(2030, 6, 1, 14, 0, 0, 7, tzinfo=timezone(timedelta(hours=2)))
    assert timeutil.format_timestamp(other_zone) == "2030-06-01T12:00:00.000007Z"
    # Four-digit years even before 1000 (strftime("%Y") would print "999").
    early = datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert timeutil.format_timestamp(early) == "0999-01-02T03:04:05.000000Z"


@given(st.datetimes(timezones=st.just(UTC)))
def test_format_then_parse_round_trips(moment: datetime) -> None:
    assert timeutil.parse_timestamp(timeutil.format_timestamp(moment)) == moment


@given(st.datetimes(timezones=st.just(UTC)))
def test_micros_round_trip_and_keep_order(moment: datetime) -> None:
    micros = timeutil.to_micros(moment)
    assert timeutil.from_micros(micros) == moment
    assert timeutil.to_micros(moment + timedelta(microseconds=1)) == micros + 1


def test_epoch_is_zero_micros() -> None:
    assert timeutil.to_micros(timeutil.EPOCH) == 0
    assert timeutil.from_micros(1_500_000) == datetime(1970, 1, 1, 0, 0, 1, 500000, tzinfo=UTC)


def test_now_utc_is_aware_utc() -> None:
    assert timeutil.now_utc().utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("90s", 90),
        ("1.5s", 1.5),
        ("15m", 900),
        ("10m", 600),
        ("2h", 7200),
        ("1.5h", 5400),
        ("1d", 86400),
        ("7d", 604800),
        ("1w", 604800),
        (" 2 h ", 7200),
        ("0", 0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert timeutil.parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["", "-5", "5x", "m", "1.2.3s", "1e3", "inf", "nan", "10M", "1h30m", ".5h", "9" * 400],
)
def test_parse_duration_rejects_garbage(text: str) -> None:
    with pytest.raises(InvalidInput):
        timeutil.parse_duration(text)


@given(
    amount=st.integers(min_value=0, max_value=10**12),
    unit=st.sampled_from([("", 1), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400), ("w", 604800)]),
)
def test_parse_duration_scales_any_whole_amount(amount: int, unit: tuple[str, int]) -> None:
    suffix, seconds = unit
    assert timeutil.parse_duration(f"{amount}{suffix}") == amount * seconds


@pytest.fixture
def kolkata(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone is Asia/Kolkata (UTC+05:30, no daylight saving)."""
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2030-06-01T12:00", datetime(2030, 6, 1, 6, 30, tzinfo=UTC)),
        ("2030-06-01 12:00:00.25", datetime(2030, 6, 1, 6, 30, 0, 250000, tzinfo=UTC)),
        ("2030-06-01", datetime(2030, 5, 31, 18, 30, tzinfo=UTC)),
        # A zone given is a zone kept.
        ("2030-06-01T12:00Z", datetime(2030, 6, 1, 12, tzinfo=UTC)),
        ("2030-06-01T12:00-01:00", datetime(2030, 6, 1, 13, tzinfo=UTC)),
    ],
)
def test_a_time_without_a_zone_can_be_local(kolkata: None, text: str, expected: datetime) -> None:
    assert timeutil.parse_timestamp(text, local=True) == expected


def test_without_local_a_time_without_a_zone_stays_utc(kolkata: None) -> None:
    assert timeutil.parse_timestamp("2030-06-01T12:00") == datetime(2030, 6, 1, 12, tzinfo=UTC)
