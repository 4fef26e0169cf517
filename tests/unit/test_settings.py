"""Configuration keys (README "Configuration"): defaults, names, value rules."""

from __future__ import annotations

import pytest

from queuectl import settings
from queuectl.errors import InvalidInput

DEFAULTS = {
    "max_retries": "3",
    "backoff_base": "2",
    "backoff_max": "3600",
    "job_timeout": "0",
    "lease_seconds": "30",
    "poll_interval": "1",
}


def test_every_documented_key_exists_with_its_default() -> None:
    for key, default in DEFAULTS.items():
        assert float(settings.SETTINGS[key].default) == float(default), key


def test_effective_values_without_overrides_are_the_defaults() -> None:
    values = settings.effective_values({})
    assert set(DEFAULTS) <= set(values)
    for key, default in DEFAULTS.items():
        assert float(values[key]) == float(default)


def test_typed_config_from_defaults() -> None:
    config = settings.Config.from_stored({})
    assert config.max_retries == 3
    assert config.backoff_base == 2.0
    assert config.backoff_max == 3600.0
    assert config.job_timeout == 0.0
    assert config.lease_seconds == 30.0
    assert config.poll_interval == 1.0


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("max_retries", "max_retries"),
        ("max-retries", "max_retries"),
        ("MAX-RETRIES", "max_retries"),
        (" backoff-base ", "backoff_base"),
        ("backoff_max", "backoff_max"),
        ("job-timeout", "job_timeout"),
        ("lease-seconds", "lease_seconds"),
        ("poll-interval", "poll_interval"),
    ],
)
def test_dash_and_underscore_name_the_same_key(given: str, canonical: str) -> None:
    assert settings.lookup(given).key == canonical


@pytest.mark.parametrize("key", ["", "retries", "max__retries", "maxretries", "backoff"])
def test_unknown_keys_are_rejected_naming_the_known_ones(key: str) -> None:
    with pytest.raises(InvalidInput, match="unknown config key") as caught:
        settings.lookup(key)
    assert "max_retries" in str(caught.value)


VALID = [
    ("max_retries", "0", "0"),
    ("max_retries", "5", "5"),
    ("max_retries", " 7 ", "7"),
    ("max_retries", str(2**63 - 1), str(2**63 - 1)),
    ("backoff_base", "1", "1"),
    ("backoff_base", "1.5", "1.5"),
    ("backoff_base", "2.0", "2"),
    ("backoff_base", "10", "10"),
    ("backoff_max", "0.05", "0.05"),
    ("backoff_max", "86400", "86400"),
    ("job_timeout", "0", "0"),
    ("job_timeout", "2.5", "2.5"),
    ("lease_seconds", "1", "1"),
    ("lease_seconds", "45.5", "45.5"),
    ("poll_interval", "0.01", "0.01"),
    ("poll_interval", "5", "5"),
    # Durations in every key that holds seconds, stored as seconds.
    ("backoff_max", "1h", "3600"),
    ("job_timeout", "10m", "600"),
    ("job_timeout", "1.5h", "5400"),
    ("lease_seconds", "2m", "120"),
    ("poll_interval", "2s", "2"),
]


@pytest.mark.parametrize(("key", "text", "canonical"), VALID)
def test_valid_values_are_stored_in_canonical_form(key: str, text: str, canonical: str) -> None:
    assert settings.lookup(key).validate(text) == canonical


INVALID = [
    ("max_retries", "-1"),
    ("max_retries", "1.5"),
    ("max_retries", "3.0"),
    ("max_retries", "three"),
    ("max_retries", ""),
    ("max_retries", str(2**63)),
    ("backoff_base", "0.5"),
    ("backoff_base", "0"),
    ("backoff_base", "-2"),
    ("backoff_base", "abc"),
    ("backoff_base", "nan"),
    ("backoff_base", "inf"),
    ("backoff_base", "1e400"),
    ("backoff_max", "0"),
    ("backoff_max", "-1"),
    ("backoff_max", "infinity"),
    ("job_timeout", "-0.1"),
    ("job_timeout", "soon"),
    ("lease_seconds", "0.5"),
    ("lease_seconds", "0"),
    ("lease_seconds", "-30"),
    ("poll_interval", "0"),
    ("poll_interval", "-1"),
    ("poll_interval", "fast"),
    ("job_timeout", "10x"),
    ("job_timeout", "-1m"),
    ("backoff_base", "2s"),  # a factor, not a duration
]


@pytest.mark.parametrize(("key", "text"), INVALID)
def test_invalid_values_are_rejected_naming_the_key(key: str, text: str) -> None:
    with pytest.raises(InvalidInput, match=f"invalid value for {key}"):
        settings.lookup(key).validate(text)


def test_stored_overrides_win_over_defaults() -> None:
    config = settings.Config.from_stored({"max_retries": "5", "backoff_max": "10"})
    assert config.max_retries == 5
    assert config.backoff_max == 10.0
    assert config.backoff_base == 2.0


def test_invalid_stored_values_fall_back_to_the_default() -> None:
    values = settings.effective_values({"backoff_base": "abc", "lease_seconds": "0"})
    assert values["backoff_base"] == "2"
    assert values["lease_seconds"] == "30"
