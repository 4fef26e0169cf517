"""`queuectl dashboard`: the live web page, the JSON API and /metrics.

Starlette, uvicorn and prometheus_client are imported here, by this command only.
"""

from __future__ import annotations

import argparse
import os

from queuectl.paths import resolve_database


def serve(args: argparse.Namespace) -> int:
    from queuectl.dashboard.server import run

    token = None if args.no_token else args.token or os.environ.get("QUEUECTL_DASHBOARD_TOKEN")
    return run(
        resolve_database(args.db), args.host, args.port, token or None, no_token=args.no_token
    )
