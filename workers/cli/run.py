"""``signoff web | worker | intake | run``: the processes of the Procfile.

With ``REDIS_URL`` unset, each starts (or reuses) the embedded Redis under the data folder
and generates local secrets once; ``run`` starts the three processes as children sharing one
Redis, restarts a child that dies, and stops everything cleanly on Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import click

from signoff.settings import Settings
from workers.cli.config import resolved_settings

log = logging.getLogger("signoff")


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def child_environment(settings: Settings) -> dict[str, str]:
    """Environment for child processes: the same Redis and the same secrets."""
    env = dict(os.environ)
    assert settings.redis_url
    env["REDIS_URL"] = settings.redis_url
    env["SIGNOFF_DATA_DIR"] = str(settings.data_dir)
    env["SIGNOFF_POLICY"] = str(settings.policy_path)
    if settings.trusted_stream is not None:
        env["SIGNOFF_TRUSTED_STREAM"] = "1" if settings.trusted_stream else "0"
    for field, name in (("hmac_secret", "SIGNOFF_HMAC_SECRET"), ("data_keys", "SIGNOFF_DATA_KEYS"),
                        ("masking_key", "SIGNOFF_MASKING_KEY")):
        value = getattr(settings, field)
        if value is not None:
            env[name] = value.get_secret_value()
    return env


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
        run_worker(Runtime(settings), burst=burst)


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
        log.info("intake consuming %s as %s", consumer.stream, consumer.name)
        consumer.run(stop)


PROCESSES = ("web", "worker", "intake")


class Supervisor:
    """Runs the Procfile's processes as children and restarts one that dies."""

    def __init__(self, settings: Settings, processes: tuple[str, ...] = PROCESSES,
                 quiet: bool = False) -> None:
        self.env = child_environment(settings)
        self.processes = processes
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False
        self.quiet = quiet
        self.log_dir = settings.data_dir / "logs"
        self.started: dict[str, float] = {}
        self.backoff: dict[str, float] = {}
        self.restart_at: dict[str, float] = {}

    def _spawn(self, name: str) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "workers.cli", name]
        if self.quiet:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{name}.log", "ab")
            return subprocess.Popen(cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        return subprocess.Popen(cmd, env=self.env)

    def start(self) -> None:
        for name in self.processes:
            self.children[name] = self._spawn(name)
            self.started[name] = time.monotonic()

    # A child that keeps dying is restarted after 1, 2, 4 ... 60 s; one that then runs for
    # HEALTHY_AFTER seconds is healthy again, and its next crash restarts it after 1 s.
    BACKOFF_FIRST = 1.0
    BACKOFF_MAX = 60.0
    HEALTHY_AFTER = 30.0

    def watch_once(self, now: float | None = None) -> None:
        """Restart any child that exited while we are not stopping (with a back-off per
        child that resets once it has run healthy); never blocks."""
        now = time.monotonic() if now is None else now
        for name, proc in list(self.children.items()):
            if self.stopping:
                return
            started = self.started.get(name, now)
            if proc.poll() is None:
                if now - started >= self.HEALTHY_AFTER:
                    self.backoff.pop(name, None)
                continue
            due = self.restart_at.get(name)
            if due is None:
                if now - started >= self.HEALTHY_AFTER:
                    self.backoff.pop(name, None)
                delay = self.backoff.get(name, self.BACKOFF_FIRST)
                self.backoff[name] = min(delay * 2, self.BACKOFF_MAX)
                self.restart_at[name] = now + delay
                log.warning("%s exited with %s; restarting in %.0fs", name, proc.returncode,
                            delay)
                continue
            if now >= due:
                del self.restart_at[name]
                self.children[name] = self._spawn(name)
                self.started[name] = now

    def stop(self, timeout: float = 15) -> None:
        self.stopping = True
        for proc in self.children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.children.values():
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


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
