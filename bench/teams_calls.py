"""Teams calls benchmark: the CPU one proactive Bot Connector call costs, three ways in the
same run.

Run: ``.venv/bin/python bench/teams_calls.py`` (``--calls N``). Everything runs here: a private
redis-server and the fake Bot Framework (tests/fakes/teams_connector.py, no latency, its app
rate off) in this process. Each call posts one approval card (the Adaptive Card of a real
request, prepared by the lifecycle) to a saved conversation:

1. botbuilder's proactive turn (``CloudAdapter.continue_conversation``: a new connector client
   and user-token client per call) with msrest as published (the baseline);
2. the same turn with the msrest fix (:mod:`bot.teams.msrest_speedup`);
3. Signoff's :class:`~bot.teams.messenger.TeamsMessenger` (one connector client per service
   URL, the fix applied).

The figure is CPU time of this process (the fake's share included, the same in each), so a
noisy machine changes it little.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from botbuilder.core import TurnContext
from msrest.universal_http.requests import ClientRetryPolicy

from bench._stack import BenchStack
from bot.teams import msrest_speedup
from bot.teams.messenger import TeamsMessenger, card_activity
from bot.teams.render import render_card
from signoff import lifecycle
from signoff.cardview.view import CardView, build_view
from signoff.runtime import Runtime
from tests.conftest import EXAMPLE_POLICY, run_intake
from tests.fakes.teams_connector import FakeBotFramework
from tests.reliability.support import body, install_teams, send
from tests.teams.conftest import APP_ID, APP_PASSWORD, teams_settings

# msrest's own definition (the list the fix turns into a frozenset).
MSREST_SAFE_CODES = [i for i in range(500) if i != 408] + [501, 505]


async def cpu_per_call(send: Callable[[], Awaitable[None]], calls: int) -> float:
    """CPU milliseconds per card post (after two warm-up calls)."""
    for _ in range(2):
        await send()
    t0 = time.process_time()
    for _ in range(calls):
        await send()
    return (time.process_time() - t0) * 1000 / calls


def proactive_turn(messenger: TeamsMessenger, reference: Any, view: CardView
                   ) -> Callable[[], Awaitable[None]]:
    """A card posted the way botbuilder's samples post one: a proactive turn per call."""

    async def send() -> None:
        activity = card_activity(render_card(view, messenger.hmac_key), view)

        async def logic(context: TurnContext) -> None:
            await context.send_activity(activity)

        await messenger.adapter.continue_conversation(reference, logic, APP_ID)

    return send


def a_card(rt: Runtime) -> CardView:
    """The card of a real request: the example policy's export, through the lifecycle."""
    send(rt, body("bench-card"))
    run_intake(rt)
    assert lifecycle.prepare(rt, "bench-card", notify=False) == "pending"
    record = rt.store.get("bench-card")
    assert record is not None
    return build_view(record)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp())
    # The app rate (50/s) is off: this measures the cost of a call, not the rate.
    bf = FakeBotFramework(folder / "bf", APP_ID, APP_PASSWORD, app_limit=None).start()
    os.environ["REQUESTS_CA_BUNDLE"] = str(bf.ca_path)  # MSAL trusts the fake's test CA
    policy = folder / "policy.yaml"
    policy.write_text(EXAMPLE_POLICY.read_text())
    stack = BenchStack(str(policy))
    try:
        url = stack.start_redis()
        rt = Runtime(teams_settings(url, folder / "data", bf, policy))
        install_teams(rt, bf.service_url)
        messenger = TeamsMessenger(rt.settings, rt)
        saved = messenger.book.resolve("Approvals")
        assert saved is not None
        view = a_card(rt)
        turn = proactive_turn(messenger, saved.reference, view)

        async def signoff() -> None:
            await messenger.post(view, "Approvals")

        results = {}
        for label, codes, send in (
                ("proactive turn, msrest as published", MSREST_SAFE_CODES, turn),
                ("proactive turn, msrest fixed", frozenset(MSREST_SAFE_CODES), turn),
                ("Signoff's messenger", frozenset(MSREST_SAFE_CODES), signoff)):
            ClientRetryPolicy.safe_codes = codes  # type: ignore[assignment]
            results[label] = asyncio.run(cpu_per_call(send, args.calls))
        msrest_speedup.apply()
        base = results["proactive turn, msrest as published"]
        print(f"Teams card post, CPU per call ({args.calls} calls each, {os.cpu_count()} "
              "CPUs, fake Bot Framework in this process)")
        for label, ms in results.items():
            print(f"  {label:36} {ms:7.2f} ms   ratio {ms / base:.2f}")
        rt.close()
    finally:
        stack.stop()
        bf.stop()


if __name__ == "__main__":
    main()
