"""``signoff demo`` end to end as a subprocess: a fresh data folder, the embedded Redis, every
process, the scripted agent and the three outcomes; and Ctrl-C stopping all of it."""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def demo_env(data_dir: Path) -> dict[str, str]:
    """A clean environment: no REDIS_URL (so the embedded Redis), a fresh data folder."""
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith(("SIGNOFF_", "SLACK_", "MICROSOFT_")) or
                   k in ("REDIS_URL", "HOST", "PORT"))}
    env["SIGNOFF_DATA_DIR"] = str(data_dir)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Lines:
    """Reads a process's output in a thread; ``until`` waits (bounded) for a matching line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.q: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        assert proc.stdout is not None
        threading.Thread(target=self._read, args=(proc.stdout,), daemon=True).start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.q.put(line.rstrip("\n"))
        self.q.put(None)

    def until(self, pattern: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.q.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r}; output:\n" + "\n".join(self.seen))

    def rest(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.q.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
        return "\n".join(self.seen)


def start_demo(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "workers.cli", "demo", "--port", str(port),
                             *args], cwd=ROOT, env=demo_env(tmp_path / "data"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    return proc, port


def processes_using(data_dir: Path) -> list[int]:
    """Pids whose environment names this data folder (the demo's children inherit it)."""
    marker = f"SIGNOFF_DATA_DIR={data_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def stop(proc: subprocess.Popen[str], data_dir: Path) -> None:
    """Last resort after a failure: kill the demo's group and anything left using its folder
    (the embedded redis-server runs in its own session)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    for pid in processes_using(data_dir):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def test_demo_runs_unattended_with_the_three_outcomes(tmp_path: Path) -> None:
    proc, port = start_demo(tmp_path, "--auto-approve-after", "1", "--exit-when-done",
                            "--timeout", "150")
    out = Lines(proc)
    try:
        out.until(rf"Inbox:\s+http://127\.0\.0\.1:{port}/inbox", 90)
        # The real web process serves the inbox with the demo sign-in listing the people.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/inbox/login", timeout=5) as resp:
            page = resp.read().decode()
        assert 'data-email="alice@example.com"' in page and "Demo mode." in page
        out.until(r"\[2\] waiting for approval: 2 of dba — 0 so far", 60)
        out.until(r"To approve: open http://127\.0\.0\.1:\d+/inbox/r/demo-", 10)
        out.until(r"\[3\] dave@example\.com tries to approve their own request → refused", 30)
        out.until(r"demo: 3 of 3 outcomes as expected", 120)
        text = out.rest(30)
        assert proc.wait(30) == 0, text
    finally:
        stop(proc, tmp_path / "data")
    assert "[1] approved automatically by policy rule dev-auto" in text
    assert re.search(r"\[1\] ✓ agent:deploy-bot proceeds", text)
    assert "[2] alice@example.com approved via demo-script — 2 of dba — 1 so far" in text
    assert "[2] Approved by alice@example.com, bob@example.com" in text
    assert re.search(r"\[2\] ✓ agent:export-bot proceeds .* grant verified", text)
    assert re.search(r"\[3\] OK +iam\.grant: self-approval by dave@example\.com refused "
                     r"\(on_behalf_of\)", text)
    assert "Stopped web, worker, intake and the embedded Redis." in text
    # Masked data only: the export's secret never reaches the terminal.
    assert "sk_live" not in text
    assert not processes_using(tmp_path / "data")


def approve_in_inbox(base: str, path: str, email: str) -> None:
    """What a person does: open the request page, sign in as a demo person, click Approve."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(base + path, timeout=10) as resp:  # redirected to the sign-in page
        page = resp.read().decode()
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"csrf": token, "email": email, "next": path}).encode()
    with opener.open(base + "/inbox/auth/demo", data=form, timeout=10) as resp:
        page = resp.read().decode()
    assert 'name="choice" value="approve"' in page
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"csrf": token, "choice": "approve"}).encode()
    with opener.open(base + path + "/decide", data=form, timeout=10) as resp:
        assert "Vote recorded; waiting for more approvals." in resp.read().decode()


def test_approve_in_the_inbox_then_ctrl_c_stops_everything(tmp_path: Path) -> None:
    proc, port = start_demo(tmp_path)
    out = Lines(proc)
    try:
        out.until(r"\[2\] waiting for approval", 120)
        line = out.until(r"To approve: open http://127\.0\.0\.1:\d+/inbox/r/demo-\S+-db-export", 10)
        url = line.split("open ", 1)[1].strip()
        approve_in_inbox(f"http://127.0.0.1:{port}", url.split(str(port), 1)[1],
                         "alice@example.com")
        out.until(r"\[2\] alice@example\.com approved via web — 2 of dba — 1 so far", 20)
        assert processes_using(tmp_path / "data"), "the demo's processes should be running"
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        text = out.rest(40)
        assert proc.wait(40) == 0, text
    finally:
        stop(proc, tmp_path / "data")
    assert "Stopped web, worker, intake and the embedded Redis." in text
    deadline = time.monotonic() + 10
    while processes_using(tmp_path / "data") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not processes_using(tmp_path / "data")
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)


def _wait_for_request(url: str, rid: str, timeout: float = 20) -> bool:
    import redis

    client = redis.Redis.from_url(url, decode_responses=True)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if any(rid in key for key in client.scan_iter(match=f"*{rid}*", count=1000)):
                return True
            time.sleep(0.2)
        return False
    finally:
        client.close()


def _run_until_waiting(tmp_path: Path, *args: str) -> tuple[str, str, str, str]:
    """Start the demo, wait for request [2] to wait, Ctrl-C; (output, Redis URL, agent URL,
    request [2]'s id), checking the Redis URL answers while the demo runs."""
    import redis

    proc, _port = start_demo(tmp_path, *args)
    out = Lines(proc)
    try:
        line = out.until(r"Redis:\s+redis://127\.0\.0\.1:\d+/0", 60)
        redis_url = re.search(r"redis://127\.0\.0\.1:\d+/0", line).group(0)  # type: ignore[union-attr]
        agent_url = out.until(r"export REDIS_URL='redis://", 90).split("'")[1]
        out.until(r"\[2\] waiting for approval", 90)
        rid = out.until(r"To approve: open .*/inbox/r/demo-\S+-db-export", 10).rsplit("/", 1)[1]
        # The README's agent example, as written, with the printed agent URL.
        agent = redis.Redis.from_url(agent_url, decode_responses=True)
        readme_id = f"exp-{rid[-6:]}"
        agent.xadd("signoff:agent:export-bot:requests", {"body": json.dumps({
            "id": readme_id, "action": "db.export", "resource": "warehouse.customers",
            "params": {"rows": 5000}, "on_behalf_of": "frank@example.com",
            "reason": "quarterly report", "context": {"environment": "prod"}})})
        agent.close()
        assert _wait_for_request(redis_url, readme_id), "the README's XADD was not taken"
        # Slack and Teams are off: no card failure is recorded for any request.
        from signoff.keys import Keys

        audit = redis.Redis.from_url(redis_url, decode_responses=True)
        events = [f.get("event") for _, f in audit.xrange(Keys("signoff").audit)]
        audit.close()
        assert events and "card_failed" not in events, events
        os.killpg(proc.pid, signal.SIGINT)
        text = out.rest(40)
        assert proc.wait(40) == 0, text
    finally:
        stop(proc, tmp_path / "data")
    return text, redis_url, agent_url, rid


def test_each_demo_starts_empty_unless_kept_and_serves_redis_on_loopback(tmp_path: Path) -> None:
    first, _, _, first_id = _run_until_waiting(tmp_path)
    # Channels without credentials are said once, plainly, and never show up as failed cards.
    assert first.count("Slack: off (no SLACK_BOT_TOKEN)") == 1, first
    assert first.count("Microsoft Teams: off (no MICROSOFT_APP_ID)") == 1, first
    assert "not configured" not in first and "Not delivered" not in first
    second, redis_url, _, second_id = _run_until_waiting(tmp_path)
    assert "started empty" in second
    assert first_id != second_id
    # The second run's Redis has none of the first run's requests...
    proc, _port = start_demo(tmp_path, "--keep", "--redis-port", redis_url.rsplit(":", 1)[1][:-2])
    out = Lines(proc)
    try:
        line = out.until(r"Redis:\s+redis://127\.0\.0\.1:\d+/0", 60)
        assert redis_url in line and "kept from the last run" in line
        # ...and --keep keeps the second run's.
        assert _wait_for_request(redis_url, second_id, 10)
        assert not _wait_for_request(redis_url, first_id, 1)
        os.killpg(proc.pid, signal.SIGINT)
        out.rest(40)
        proc.wait(40)
    finally:
        stop(proc, tmp_path / "data")
