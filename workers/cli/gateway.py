"""``signoff mcp``: serve the approval gateway over stdio (default) or streamable HTTP."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import sys
from pathlib import Path

import click

from signoff.mcp.config import ConfigError, GatewayConfig, load_config


def _address(value: str | None) -> tuple[str, int] | None:
    if value is None:
        return None
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"'{value}' is not HOST:PORT (like 127.0.0.1:8765)")
    return host.strip("[]"), int(port)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _main(config: GatewayConfig, redis_url: str, http: tuple[str, int] | None,
                check: bool) -> None:
    # The mcp extra, imported when the gateway runs (its config checks and help work without it).
    from signoff.mcp.approvals import Approvals, LocalPolicy
    from signoff.mcp.gateway import Gateway, run_gateway
    from signoff.mcp.upstream import UpstreamError
    from signoff.sdk import AsyncClient

    local = LocalPolicy(config.policy) if config.policy is not None else None
    client = AsyncClient(redis_url, requester=config.agent, prefix=config.prefix)
    gateway = Gateway(config, Approvals(client, config.wait, local))
    try:
        if check:
            await client.redis.ping()
            failed = []
            for upstream in gateway.upstreams:
                try:
                    await upstream.list_tools()
                except UpstreamError as exc:
                    failed.append(str(exc))
            for tool in await gateway.catalog.refresh():
                route = gateway.catalog.routes[tool.name]
                click.echo(f"{tool.name:40} {route.server.name:16} "
                           f"{gateway.tool_call(route, {}, 'check').action}")
            if failed:
                raise click.ClickException("; ".join(failed))
            return
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        if task is not None:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, task.cancel)
        await run_gateway(gateway, http)
    finally:
        await gateway.aclose()
        await client.aclose()


@click.command(name="mcp")
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path),
              help="The gateway's YAML file (agent, servers, ...).")
@click.option("--http", "http", metavar="HOST:PORT",
              help="Serve streamable HTTP at http://HOST:PORT/mcp instead of stdio.")
@click.option("--redis-url", envvar="SIGNOFF_AGENT_REDIS_URL", metavar="URL",
              help="The agent's Redis URL with its own credentials (overrides redis_url: in "
                   "the file). Env: SIGNOFF_AGENT_REDIS_URL.")
@click.option("--check", is_flag=True, help="Connect to every upstream, list the tools and "
              "their Signoff actions, and exit.")
@click.option("--log-level", default="WARNING", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]))
def mcp(config_path: Path, http: str | None, redis_url: str | None, check: bool,
        log_level: str) -> None:
    """Serve an MCP approval gateway in front of the configured MCP servers.

    Every tool call asks Signoff (action mcp.<server>.<tool>, params = the arguments) and is
    forwarded only when approved with a grant matching the exact arguments.
    """
    # stdout is the MCP channel in stdio mode: logs go to stderr only.
    logging.basicConfig(stream=sys.stderr, level=log_level,
                        format="%(asctime)s signoff-mcp %(levelname)s %(message)s")
    address = _address(http)
    try:
        config = load_config(config_path, dict(os.environ))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if address is not None and not config.http_token and not _loopback(address[0]):
        raise click.ClickException(
            f"--http {http} listens beyond this machine: set http_token: in the config so "
            "only clients holding it can call tools as this agent")
    url = redis_url or config.redis_url
    if not url:
        raise click.ClickException(
            "no Redis URL for the agent: set redis_url: in the config, --redis-url or "
            "SIGNOFF_AGENT_REDIS_URL")
    try:
        asyncio.run(_main(config, url, address, check))
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass
    except Exception as exc:
        # The policy package (PyYAML, jsonschema) is needed only for local auto rules.
        from policy import PolicyError

        if isinstance(exc, PolicyError):
            raise click.ClickException(f"policy {config.policy}: {exc}") from None
        if isinstance(exc, OSError | ConnectionError) or type(exc).__module__.startswith("redis"):
            raise click.ClickException(f"cannot reach Signoff's Redis: {exc}") from None
        raise
