"""`queuectl config list|get|set`."""

from __future__ import annotations

import argparse

from queuectl import settings
from queuectl.cli.context import open_cli_store
from queuectl.cli.output import print_json, print_table


def config_list(args: argparse.Namespace) -> int:
    values = settings.effective_values(open_cli_store(args).stored_config())
    if args.json:
        print_json({key: _typed(value) for key, value in values.items()})
    else:
        print_table(("KEY", "VALUE"), [[key, value] for key, value in values.items()])
    return 0


def config_get(args: argparse.Namespace) -> int:
    setting = settings.lookup(args.key)
    values = settings.effective_values(open_cli_store(args).stored_config())
    if args.json:
        # The object config list --json prints, with this key only: the key is canonical.
        print_json({setting.key: _typed(values[setting.key])})
    else:
        print(values[setting.key])
    return 0


def config_set(args: argparse.Namespace) -> int:
    setting = settings.lookup(args.key)
    value = setting.validate(args.value)
    open_cli_store(args).set_config(setting.key, value)
    print(f"{setting.key} = {value}")
    return 0


def _typed(text: str) -> int | float:
    number = float(text)
    return int(number) if number.is_integer() and "." not in text else number
