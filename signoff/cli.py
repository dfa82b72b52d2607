"""The ``signoff`` command line.

Subcommands live in the module that owns them and are imported only when invoked (click's
documented lazy-group pattern), so ``signoff mask`` does not start an aiohttp server's worth of
imports and a broken optional part cannot break the others.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

# name -> "module:attribute" of a click.Command. Each owner adds its own line here.
COMMANDS: dict[str, str] = {
    "web": "signoff.cli_run:web",
    "worker": "signoff.cli_run:worker",
    "intake": "signoff.cli_run:intake",
    "run": "signoff.cli_run:run",
    "demo": "signoff.demo:demo",
    "request": "signoff.cli_agent:request",
    "status": "signoff.cli_agent:status",
    "pending": "signoff.cli_agent:pending",
    "cancel": "signoff.cli_agent:cancel",
    "decide": "signoff.cli_agent:decide",
    "token": "signoff.cli_admin:token",
    "mask": "signoff.masking.cli:mask",
    "policy": "signoff.cli_policy:policy",
    "card": "bot.cli:card",
    "audit": "signoff.cli_audit:audit",
    "keys": "signoff.cli_keys:keys",
    "grant": "signoff.cli_keys:grant",
    "mcp": "signoff.mcp.cli:mcp",
}

HELP = {
    "web": "Serve Slack, Teams, the HTTP API, the inbox, /healthz and /metrics.",
    "worker": "Run rq workers (prepare, notify, finalize, expire, remind) with the scheduler.",
    "intake": "Consume the agent request stream and enqueue prepare jobs.",
    "run": "Start web, worker and intake together (local use).",
    "demo": "Run everything on an embedded Redis with a scripted agent.",
    "request": "Send an approval request as an agent and wait for the decision.",
    "status": "Show one request.",
    "pending": "List pending requests.",
    "cancel": "Cancel a pending request.",
    "decide": "Approve or deny a request as a person (local admin use).",
    "token": "Create, list and revoke API tokens.",
    "mask": "Mask a JSON document or text with the default profile.",
    "policy": "Check, explain and inspect the policy file.",
    "card": "Print the Slack or Teams card a request would get.",
    "audit": "Verify, query and export the audit log.",
    "keys": "Manage grant and audit signing keys.",
    "grant": "Verify or revoke grants.",
    "mcp": "Serve an MCP approval gateway in front of MCP servers (stdio or HTTP).",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                return _missing(cmd_name, target)
            raise
        command: Any = getattr(module, attr)
        return command  # type: ignore[no-any-return]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, HELP.get(name, "")) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _missing(name: str, target: str) -> click.Command:
    @click.command(name=name, help=HELP.get(name, ""))
    def _cmd() -> None:
        raise click.ClickException(f"'{name}' is not available in this build ({target}).")

    return _cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="signoff")
def main() -> None:
    """Signoff: action-level approvals for AI agents."""


if __name__ == "__main__":  # pragma: no cover
    main()
