"""Microsoft Teams as an approval channel: approvers decide inside the Adaptive Card.

Modules, one idea each:

- :mod:`bot.teams.render`: the pure Adaptive Card renderer (cards own Teams' limits).
- :mod:`bot.teams.auth`: how the bot authenticates (Bot Framework JWTs in, MSAL tokens out).
- :mod:`bot.teams.tenants`: the tenant allow-list.
- :mod:`bot.teams.conversations`: conversation references saved on install or configured.
- :mod:`bot.teams.messenger`: :class:`~bot.teams.messenger.TeamsMessenger` (proactive cards).
- :mod:`bot.teams.actions`: ``adaptiveCard/action`` invokes (votes and per-viewer refresh).
- :mod:`bot.teams.bot`: the activity handler (installs, commands, invokes).
- :mod:`bot.teams.web`: ``POST /api/messages`` on the shared aiohttp app.
- :mod:`bot.teams.msrest_speedup`: a fix to msrest's per-client cost, applied on import.
"""

from bot.teams import msrest_speedup as _msrest_speedup  # noqa: F401  (applied on import)
