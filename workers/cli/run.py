"""``signoff web | worker | intake | run``: the processes of the Procfile.

With ``REDIS_URL`` unset, each starts (or reuses) the embedded Redis under the data folder
and generates local secrets once; ``run`` starts the three processes as children sharing one
Redis, restarts a child that dies, and stops everything cleanly on Ctrl-C.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading

import click

from workers.cli.config import resolved_settings
from workers.heap import freeze_startup
from workers.priority import lower_priority
from workers.supervisor import Supervisor

log = logging.getLogger("signoff")


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@click.command()
@click.option("--host", default=None, help="Listen address (default $HOST or 127.0.0.1).")
@click.option("--port", type=int, default=None,
              help="Port (default $PORT or 8000; 0 picks a free one).")
def web(host: str | None, port: int | None) -> None:
    """Serve Slack, Teams, the HTTP API, the inbox, /healthz and /metrics."""
    # Imported when the command runs: each process loads only its own stack (start-up time).
    from aiohttp import web as aioweb

    # Imported when the command runs: each process loads only its own stack (start-up time).
    from bot.app import create_app
    from signoff.runtime import Runtime

    with resolved_settings(policy=True) as settings:
        setup_logging(settings.log_level)
        host = host or settings.host
        # Bound here, before the app starts, so port 0 resolves to the port actually taken.
        sock = listen_socket(host, settings.port if port is None else port)
        address = f"http://{host}:{sock.getsockname()[1]}"
        app = create_app(Runtime(settings))
        freeze_startup()
        aioweb.run_app(app, sock=sock, access_log=None,
                       print=lambda _msg: click.echo(f"web listening on {address}"))


def listen_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: a free one the kernel picks)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=128)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None


@click.command()
@click.option("--burst", is_flag=True, help="Exit when the queue is empty.")
def worker(burst: bool) -> None:
    """Run an rq worker (with the scheduler) for prepare, notify, finalize, expire, remind."""
    # Imported when the command runs: each process loads only its own stack (start-up time).
    from signoff.runtime import Runtime
    from workers.worker import run_worker

    with resolved_settings(policy=True) as settings:
        setup_logging(settings.log_level)
        for platform, why in settings.channels_off().items():
            # Once, here: cards for a platform without credentials are not routed at all.
            log.info("%s: off (%s)", platform, why)
        rt = Runtime(settings)
        freeze_startup()
        lower_priority(settings.worker_nice)  # inherited by its scheduler and delivery
        run_worker(rt, burst=burst)


@click.command()
@click.option("--parent", type=int, default=None,
              help="The worker this process belongs to: it ends with it and reads new work "
                   "from stdin (every worker starts one; without it, it only polls).")
def delivery(parent: int | None) -> None:
    """Deliver cards: the Slack and Teams calls of the card outbox."""
    # Imported when the command runs: each process loads only its own stack (start-up time).
    from signoff.runtime import Runtime
    from workers.delivery_process import run_delivery

    with resolved_settings(policy=True) as settings:
        setup_logging(settings.log_level)
        rt = Runtime(settings)
        freeze_startup()
        lower_priority(settings.worker_nice)
        run_delivery(rt, parent)


@click.command()
def intake() -> None:
    """Consume the agent request stream (consumer group) and enqueue prepare jobs."""
    # Imported when the command runs: each process loads only its own stack (start-up time).
    from signoff.runtime import Runtime
    from workers.intake import IntakeConsumer

    with resolved_settings(policy=True) as settings:
        setup_logging(settings.log_level)
        stop = threading.Event()

        def _stop(*_: object) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        consumer = IntakeConsumer(Runtime(settings))
        freeze_startup()
        log.info("intake consuming %s as %s", consumer.stream, consumer.name)
        consumer.run(stop)


@click.command()
def run() -> None:
    """Start web, worker and intake together (local use)."""
    with resolved_settings(policy=True) as settings:
        setup_logging(settings.log_level)
        sup = Supervisor(settings)
        sup.start()
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.wait(1):
                sup.watch_once()
        except KeyboardInterrupt:
            pass
        finally:
            sup.stop()
