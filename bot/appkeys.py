"""Typed keys for what the aiohttp application carries (shared by every mounted channel)."""

from __future__ import annotations

from aiohttp import web

from signoff.metrics import Metrics
from signoff.runtime import Runtime

RT: web.AppKey[Runtime] = web.AppKey("rt", Runtime)
METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)
