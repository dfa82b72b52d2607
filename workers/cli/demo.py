"""``signoff demo``: everything on one machine, no Slack or Teams, a scripted agent.

It starts web, worker and intake (the embedded Redis when ``REDIS_URL`` is unset) with the
example policy and the inbox's demo sign-in, then an agent asks for three actions:

1. ``deploy.service`` in dev: approved automatically by the ``dev-auto`` rule.
2. ``db.export`` in prod: waits for two DBAs (``prod-data-export``).
3. ``iam.grant`` in prod on behalf of dave: dave tries to approve it himself and is refused;
   it then waits for secops and the role's owner (dba).

The terminal shows each request waiting, every vote, and the agent proceeding once its
decision (and grant) arrives. ``--auto-approve-after`` makes demo people cast the votes
through :func:`signoff.lifecycle.submit_vote`, the path every channel uses, so the whole
demo runs unattended (``--exit-when-done`` for tests). Ctrl-C stops everything.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from signoff import lifecycle
from signoff.agents import AgentRegistry
from signoff.runtime import Runtime
from signoff.sdk import Client
from signoff.settings import Settings, load_service_settings
from workers.cli.run import resolved_settings, setup_logging
from workers.supervisor import Supervisor

EXAMPLE_POLICY = Path(__file__).resolve().parents[2] / "examples" / "policy.yaml"
AGENT_WAIT = 3600.0
# An agent the demo registers, so the README's redis-cli example runs against it as written.
README_AGENT = "export-bot"


@dataclass
class Step:
    """One scripted request and what the demo expects of it."""

    number: int
    agent: str
    action: str
    resource: str
    params: dict[str, Any]
    context: dict[str, Any]
    reason: str
    on_behalf_of: str
    expect: str
    approvers: tuple[str, ...] = ()
    self_approver: str | None = None
    id: str = ""
    # What happened (filled in as it does).
    status: str = "sent"
    votes_seen: set[str] = field(default_factory=set)
    self_refusal: str | None = None
    decision: dict[str, Any] | None = None
    grant_ok: bool | None = None
    final_shown: threading.Event = field(default_factory=threading.Event)

    @property
    def label(self) -> str:
        return f"[{self.number}]"

    def title(self) -> str:
        env = self.context.get("environment", "")
        return f"{self.action} {self.resource} ({env})"


def script(stamp: str) -> list[Step]:
    """The three requests of the demo (ids unique per run)."""
    steps = [
        Step(1, "agent:deploy-bot", "deploy.service", "checkout-api",
             {"version": "1.4.2", "replicas": 3}, {"environment": "dev"},
             "Roll out the fix for checkout timeouts", "frank@example.com",
             expect="auto"),
        Step(2, "agent:export-bot", "db.export", "warehouse.customers",
             {"query": "select id, email, plan from customers where churned_at > now() - "
                       "interval '90 days'", "rows": 1200, "format": "csv",
              "deliver_to": "jane.doe@acme-corp.com",
              "api_key": "sk_live_51HxQeT2eZvKYlo2CDemoOnly00"},
             {"environment": "prod", "ticket": "DATA-42"},
             "Quarterly churn analysis requested by jane.doe@acme-corp.com",
             "frank@example.com", expect="quorum",
             approvers=("alice@example.com", "bob@example.com")),
        Step(3, "agent:deploy-bot", "iam.grant", "role/db-reader",
             {"principal": "dave@example.com", "duration": "4h"},
             {"environment": "prod", "ticket": "INC-7"},
             "Read access to investigate incident INC-7", "dave@example.com",
             expect="self_refused", approvers=("carol@example.com", "alice@example.com"),
             self_approver="dave@example.com"),
    ]
    for step in steps:
        step.id = f"demo-{stamp}-{step.action.replace('.', '-')}"
    return steps


class Console:
    """Thread-safe terminal output (colours only on a terminal)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def say(self, text: str = "", fg: str | None = None, bold: bool = False) -> None:
        with self.lock:
            click.secho(text, fg=fg, bold=bold)
            sys.stdout.flush()


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        # As the servers bind: a port whose last connections linger in TIME_WAIT is free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def pick_port(host: str, wanted: int) -> int:
    if wanted == 0:
        with socket.socket() as s:
            s.bind((host, 0))
            return int(s.getsockname()[1])
    if not port_free(host, wanted):
        raise click.ClickException(f"port {wanted} is in use; try `signoff demo --port 0` "
                                   "(any free port) or --port N")
    return wanted


def wait_http(url: str, stop: threading.Event, timeout: float) -> bool:
    """Whether ``url`` answers 200 within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.is_set():
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - loopback URL
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return False


class Demo:
    """Runs the script against a started stack and reports on the terminal."""

    def __init__(self, settings: Settings, base_url: str, console: Console,
                 auto_after: float | None, stop: threading.Event) -> None:
        self.settings = settings
        self.rt = Runtime(settings)
        self.base = base_url
        self.out = console
        self.auto_after = auto_after
        self.stop = stop
        self.steps = script(format(int(time.time() * 1000), "x"))
        self.done = threading.Event()
        self.pending_since: dict[int, float] = {}
        self.auto_cast: set[tuple[int, str]] = set()

    # --- the agent ----------------------------------------------------------------------
    def send_all(self) -> None:
        import redis


        for step in self.steps:
            connection = redis.Redis.from_url(self.settings.redis_url or "")
            client = Client(connection=connection, requester=step.agent,
                            prefix=self.settings.key_prefix)
            handle = client.request(step.action, step.resource, step.params,
                                    on_behalf_of=step.on_behalf_of, reason=step.reason,
                                    context=step.context, id=step.id)
            who = f", on behalf of {step.on_behalf_of}" if step.on_behalf_of else ""
            self.out.say(f"{step.label} {step.agent} asks: {step.title()}{who}", bold=True)
            threading.Thread(target=self._agent, args=(step, client, handle), daemon=True,
                             name=f"agent-{step.number}").start()

    def _agent(self, step: Step, client: Any, handle: Any) -> None:
        """The agent's side: block for the decision, verify the grant, proceed (or not)."""
        try:
            decision = handle.wait(timeout=AGENT_WAIT)
        except Exception as exc:
            if not self.stop.is_set():  # on Ctrl-C the agent simply stops waiting
                self.out.say(f"{step.label} the agent gave up waiting: {exc}", fg="red")
            step.decision = {"status": "agent_timeout"}
            return
        step.final_shown.wait(3)  # let the watcher print the decision first
        step.decision = decision.raw
        if decision.approved:
            try:
                client.verify_grant(decision, step.action, step.resource, step.params)
                step.grant_ok = True
            except Exception as exc:  # the grant check says exactly why it refuses
                step.grant_ok = False
                self.out.say(f"{step.label} grant refused: {exc}", fg="red")
                return
            sha = (decision.raw.get("payload_sha256") or "")[:12]
            self.out.say(f"{step.label} ✓ {step.agent} proceeds with {step.action}: grant "
                         f"verified for this exact payload (sha256 {sha}…)", fg="green",
                         bold=True)
        else:
            why = decision.reason or decision.status.value
            self.out.say(f"{step.label} ✗ {step.agent} stops: {decision.status.value} ({why})",
                         fg="red", bold=True)

    # --- watching -----------------------------------------------------------------------
    def watch_once(self) -> None:
        from signoff.cardview.view import build_view

        for step in self.steps:
            record = self.rt.store.get(step.id)
            if record is None:
                continue
            view = build_view(record)
            for vote in view.votes:
                if vote.person not in step.votes_seen:
                    step.votes_seen.add(vote.person)
                    verb = "approved" if vote.choice == "approve" else "denied"
                    progress = f" — {view.progress}" if view.open else ""
                    self.out.say(f"{step.label} {vote.person} {verb} via {vote.channel}"
                                 f"{progress}", fg="cyan")
            status = record.status.value
            if status == step.status:
                continue
            step.status = status
            if status == "pending":
                self.pending_since[step.number] = time.monotonic()
                self._announce_pending(step, view)
            elif record.get("auto") == "1":
                self.out.say(f"{step.label} {status} automatically by policy rule "
                             f"{record.get('rule_id')}", fg="green")
                step.final_shown.set()
            elif status != "received":
                self.out.say(f"{step.label} {view.final_line()}",
                             fg="green" if status == "approved" else "red")
                step.final_shown.set()

    def _announce_pending(self, step: Step, view: Any) -> None:
        directory = self.rt.policy.directory
        left = int(max(view.deadline - time.time(), 0))
        hours, minutes = divmod(left // 60, 60)
        when = f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"
        self.out.say(f"{step.label} waiting for approval: {view.progress} · {when} left "
                     f"(rule {view.policy_rule})", fg="yellow")
        if step.self_approver:
            self._try_self_approval(step)
        names = []
        for email in step.approvers:
            person = directory.person(email)
            groups = ", ".join(sorted(person.groups)) if person else ""
            names.append(f"{person.name if person else email} ({email}; {groups})")
        self.out.say(f"    To approve: open {self.base}/inbox/r/{step.id}")
        self.out.say(f"    sign in as {' and then as '.join(names)}, and click Approve.")

    def _try_self_approval(self, step: Step) -> None:
        person = self.rt.policy.directory.person(step.self_approver)
        reply = lifecycle.submit_vote(self.rt, step.id, person, "approve", channel="demo",
                                      actor_label=step.self_approver or "")
        if reply.ok:
            self.out.say(f"{step.label} !! {step.self_approver} approved their own request "
                         "— this must never happen", fg="red", bold=True)
            return
        step.self_refusal = reply.code
        self.out.say(f"{step.label} {step.self_approver} tries to approve their own request "
                     f"→ refused: {reply.message}", fg="magenta")

    def auto_vote(self) -> None:
        """Non-interactive mode: the demo people approve through ``submit_vote``."""
        if self.auto_after is None:
            return
        for step in self.steps:
            since = self.pending_since.get(step.number)
            if since is None or step.status != "pending":
                continue
            if time.monotonic() - since < self.auto_after:
                continue
            for email in step.approvers:
                if (step.number, email) in self.auto_cast:
                    continue
                self.auto_cast.add((step.number, email))
                person = self.rt.policy.directory.person(email)
                reply = lifecycle.submit_vote(self.rt, step.id, person, "approve",
                                              channel="demo-script")
                if not reply.ok:
                    self.out.say(f"{step.label} {email} could not approve: {reply.message}",
                                 fg="red")
                break  # one vote per step per tick, so the progress shows

    def finished(self) -> bool:
        return all(step.decision is not None and (step.grant_ok is not None or
                                                   step.decision.get("status") != "approved")
                   for step in self.steps)

    def outcomes(self) -> list[tuple[Step, bool, str]]:
        """Whether each step ended as the script intends, with a one-line explanation."""
        out = []
        for step in self.steps:
            d = step.decision or {}
            approved = d.get("status") == "approved" and bool(step.grant_ok)
            people = [a.get("person") for a in d.get("approvers", [])
                      if a.get("choice", "approve") == "approve"]
            if step.expect == "auto":
                ok = approved and not people
                text = "approved automatically in dev; the agent proceeded"
            elif step.expect == "quorum":
                ok = approved and len(set(people)) == 2
                text = f"approved by two DBAs ({', '.join(p or '' for p in people)})"
            else:
                ok = approved and step.self_refusal == "on_behalf_of" and \
                    step.self_approver not in people
                text = (f"self-approval by {step.self_approver} refused "
                        f"({step.self_refusal}); approved by {', '.join(p or '' for p in people)}")
            out.append((step, ok, text))
        return out

    def show_agent_url(self) -> None:
        """Register the README's example agent and print its own Redis URL, so the README's
        ``redis-cli -u "$REDIS_URL" XADD ...`` works against this demo as written."""
        url = self.settings.redis_url or ""
        if not url.startswith("redis://"):
            return
        registry = AgentRegistry(self.rt.redis, self.rt.keys)
        creds = (registry.rotate(README_AGENT, url) if registry.is_registered(README_AGENT)
                 else registry.add(README_AGENT, url))
        self.out.say(f"  Agent {README_AGENT}'s own credentials (README, \"The agent contract\"):")
        self.out.say(f"    export REDIS_URL='{creds.redis_url}'")
        self.out.say("")

    def cancel_leftovers(self) -> None:
        """Cancel pending requests left by an earlier demo run (so the inbox starts clean)."""
        for rid in self.rt.store.pending_ids(limit=500):
            if rid.startswith("demo-"):
                record = self.rt.store.get(rid, with_votes=False)
                if record is not None:
                    lifecycle.cancel(self.rt, rid, record.requester, "a new demo started")


def demo_settings(base: Settings, port: int) -> Settings:
    """The demo's settings: loopback, the example policy, the demo sign-in, no OIDC."""
    return base.model_copy(update={
        "host": "127.0.0.1", "port": port, "public_url": f"http://127.0.0.1:{port}",
        "policy_path": EXAMPLE_POLICY, "demo_sign_in": True, "oidc_issuer": None,
        "oidc_client_id": None})


@click.command()
@click.option("--port", type=int, default=None,
              help="Web port (default $PORT or 8000; 0 picks a free one).")
@click.option("--auto-approve-after", "auto_after", type=float, default=None,
              metavar="SECONDS",
              help="Unattended: SECONDS after a request waits, demo people approve it "
                   "(through the same vote path as the inbox).")
@click.option("--exit-when-done", is_flag=True,
              help="Exit once every request is decided; exit code 1 if one ended otherwise "
                   "than the script intends.")
@click.option("--timeout", type=float, default=None, metavar="SECONDS",
              help="Give up after SECONDS (exit code 1).")
@click.option("--keep", is_flag=True,
              help="Keep the previous demo's requests, votes and audit log (default: every "
                   "run starts from an empty embedded Redis).")
@click.option("--redis-port", type=int, default=0, show_default=True,
              help="Loopback TCP port of the embedded Redis (0: a free one).")
def demo(port: int | None, auto_after: float | None, exit_when_done: bool,
         timeout: float | None, keep: bool, redis_port: int) -> None:
    """Run everything on an embedded Redis with a scripted agent and the web inbox."""
    if not EXAMPLE_POLICY.exists():
        raise click.ClickException(f"the example policy is missing: {EXAMPLE_POLICY}")
    console = Console()
    stop = threading.Event()
    # Checked like every process's settings (one line per problem, exit 2), with the
    # example policy whatever SIGNOFF_POLICY says.
    base = load_service_settings(policy_path=EXAMPLE_POLICY)
    if base.embedded_redis:
        # The demo's own database, apart from a local `signoff run`'s (which it may empty).
        base = base.model_copy(update={"data_dir": base.data_dir / "demo"})
        redis_port = pick_port("127.0.0.1", redis_port)
    chosen = pick_port("127.0.0.1", base.port if port is None else port)
    settings = demo_settings(base, chosen)
    setup_logging("WARNING")
    sup: Supervisor | None = None
    code = 0

    def _stop(*_: object) -> None:
        stop.set()
        if sup is not None:
            sup.stopping = True  # children dying of the same Ctrl-C are not restarted

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    fresh = settings.embedded_redis and not keep
    with resolved_settings(settings, redis_port=redis_port, fresh=fresh) as resolved:
        url = f"http://127.0.0.1:{chosen}"
        console.say("Signoff demo", bold=True)
        if settings.embedded_redis:
            state = "kept from the last run" if keep else "started empty (--keep keeps it)"
            console.say(f"  Redis:  {resolved.redis_url} (embedded, {state}; data in "
                        f"{resolved.data_dir})")
        else:
            console.say("  Redis:  REDIS_URL (your own; nothing is emptied)")
        console.say(f"  Policy: {resolved.policy_path}")
        console.say(f"  Logs:   {resolved.data_dir / 'logs'}/")
        for platform, why in settings.channels_off().items():
            # Said once here; their cards are simply not routed (the inbox has every request).
            console.say(f"  {platform}: off ({why})")
        console.say("  Starting web, worker and intake (the worker loads the masking model)…")
        sup = Supervisor(resolved, quiet=True)
        sup.env.update({"HOST": "127.0.0.1", "PORT": str(chosen), "SIGNOFF_DEMO_SIGN_IN": "true",
                        "SIGNOFF_PUBLIC_URL": url, "SIGNOFF_OIDC_ISSUER": "",
                        "SIGNOFF_OIDC_CLIENT_ID": "", "LOG_LEVEL": "INFO"})
        sup.start()
        app: Demo | None = None
        started = time.monotonic()
        try:
            if not wait_http(f"{url}/healthz", stop, 60):
                if not stop.is_set():
                    console.say(f"The web process did not come up; see {resolved.data_dir}/logs/"
                                "web.log", fg="red")
                    code = 1
                return
            console.say("")
            console.say(f"  Inbox:  {url}/inbox", fg="green", bold=True)
            console.say("  Sign in by picking a demo person (demo only: no password). "
                        "No Slack or Teams account needed.")
            console.say("  Ctrl-C stops everything.")
            console.say("")
            app = Demo(resolved, url, console, auto_after, stop)
            if keep or not settings.embedded_redis:
                app.cancel_leftovers()
            app.show_agent_url()
            app.send_all()
            announced_done = False
            while not stop.is_set():
                if timeout is not None and time.monotonic() - started > timeout:
                    console.say(f"Gave up after {timeout:.0f} s.", fg="red")
                    code = 1
                    break
                sup.watch_once()
                app.watch_once()
                app.auto_vote()
                if app.finished() and not announced_done:
                    announced_done = True
                    app.watch_once()
                    console.say("")
                    results = app.outcomes()
                    for step, ok, text in results:
                        console.say(f"{step.label} {'OK  ' if ok else 'FAIL'} {step.action}: "
                                    f"{text}", fg="green" if ok else "red")
                    good = sum(1 for _, ok, _ in results if ok)
                    console.say(f"demo: {good} of {len(results)} outcomes as expected",
                                bold=True)
                    if good != len(results):
                        code = 1
                    if exit_when_done:
                        break
                    console.say(f"The inbox stays up at {url}/inbox — Ctrl-C to stop.")
                stop.wait(0.25)
        finally:
            if app is not None:
                app.rt.close()
            sup.stop()
    console.say("Stopped web, worker, intake" + (" and the embedded Redis."
                                                 if settings.embedded_redis else "."))
    if code:
        sys.exit(code)
