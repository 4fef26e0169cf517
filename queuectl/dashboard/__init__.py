"""The web dashboard: a live page, a JSON API under /api/ and Prometheus /metrics.

Imported only by `queuectl dashboard` (Starlette, uvicorn and prometheus_client
stay off every other command's start-up path). Everything it shows comes
through the store interfaces (Store and Insights), never SQL.
"""
