"""Every form a PostgreSQL password can take in a database address is shown as ***."""

from __future__ import annotations

import pytest

from queuectl.paths import is_conninfo, redact_url, resolve_database


@pytest.mark.parametrize(
    ("address", "shown", "secrets"),
    [
        ("postgresql://u:pw1@h/db", "postgresql://u:***@h/db", ["pw1"]),
        (
            "postgresql://u@h/db?password=pw2&sslmode=require",
            "postgresql://u@h/db?password=***&sslmode=require",
            ["pw2"],
        ),
        ("postgresql://u@h/db?sslpassword=pw3", "postgresql://u@h/db?sslpassword=***", ["pw3"]),
        ("postgresql://u@h/db?pass%77ord=pw4", "postgresql://u@h/db?pass%77ord=***", ["pw4"]),
        ("postgresql://u:p%40s%2Fs5@h:5432/db", "postgresql://u:***@h:5432/db", ["p%40", "s5"]),
        ("postgres://u:p@ss6@h/db", "postgres://u:***@h/db", ["ss6"]),
        ("postgresql://u:pa?ss7@h/db", "postgresql://u:***@h/db", ["ss7"]),
        ("postgresql://u:pa/ss8@h/db", "postgresql://u:***@h/db", ["ss8"]),
        (
            "postgresql://u:pw9@h/db?password=a@b10&options=-c%20x%3Dy",
            "postgresql://u:***@h/db?password=***&options=-c%20x%3Dy",
            ["pw9", "b10"],
        ),
        ("host=h password=pw11 dbname=d", "host=h password=*** dbname=d", ["pw11"]),
        ("host=h password='a b12' dbname=d", "host=h password=*** dbname=d", ["b12"]),
        ("host=h password = 'a\\' b13' user=u", "host=h password=*** user=u", ["b13"]),
        ("host=h password=a\\ b14 dbname=d", "host=h password=*** dbname=d", ["b14"]),
        ("host=h sslpassword=pw15", "host=h sslpassword=***", ["pw15"]),
        ("mysql://u:pw16@h/db", "mysql://u:***@h/db", ["pw16"]),
        (
            "postgresql://u@h:5432/db?sslmode=require",
            "postgresql://u@h:5432/db?sslmode=require",
            [],
        ),
    ],
)
def test_every_form_of_password_is_redacted(address: str, shown: str, secrets: list[str]) -> None:
    assert redact_url(address) == shown
    for secret in secrets:
        assert secret not in redact_url(address)


def test_a_libpq_key_value_string_is_a_postgresql_address() -> None:
    location = resolve_database("host=db.internal dbname=queue password='x y'")
    assert location.kind == "postgresql"
    assert location.dsn == "host=db.internal dbname=queue password='x y'"
    assert location.url == "host=db.internal dbname=queue password=***"
    # Only libpq's own keywords make a connection string; anything else is a file name.
    assert not is_conninfo("a=b.db") and not is_conninfo("HOST=h")
    assert resolve_database("/tmp/mode=fast.db").kind == "sqlite"
