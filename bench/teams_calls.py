"""Teams calls benchmark: the CPU one proactive Bot Connector call costs a worker, with and
without the msrest fix in :mod:`bot.teams.msrest_speedup`, in the same run.

Run: ``.venv/bin/python bench/teams_calls.py`` (``--calls N``). Everything runs here: a private
redis-server and the fake Bot Framework (tests/fakes/teams_connector.py, no latency) in this
process; the real :class:`~bot.teams.messenger.TeamsMessenger` sends short messages to a saved
conversation (one proactive turn each: botbuilder's ``continue_conversation`` building its
connector and user-token clients, the call, the answer). The figure is CPU time (this
process's, fake included, the same in both halves), so a noisy machine changes it little.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from msrest.universal_http.requests import ClientRetryPolicy

from bench._stack import BenchStack
from bot.teams import msrest_speedup
from bot.teams.messenger import TeamsMessenger
from signoff.runtime import Runtime
from tests.conftest import EXAMPLE_POLICY
from tests.fakes.teams_connector import FakeBotFramework
from tests.reliability.support import install_teams
from tests.teams.conftest import APP_ID, APP_PASSWORD, teams_settings

# msrest's own definition (the list the fix turns into a frozenset).
MSREST_SAFE_CODES = [i for i in range(500) if i != 408] + [501, 505]


async def cpu_per_call(messenger: TeamsMessenger, calls: int) -> float:
    """CPU milliseconds per proactive message (after two warm-up calls)."""
    for _ in range(2):
        await messenger.tell("Approvals", "warm-up")
    t0 = time.process_time()
    for i in range(calls):
        await messenger.tell("Approvals", f"message {i}")
    return (time.process_time() - t0) * 1000 / calls


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
        results = {}
        for label, codes in (("msrest as published", MSREST_SAFE_CODES),
                             ("with the fix", frozenset(MSREST_SAFE_CODES))):
            ClientRetryPolicy.safe_codes = codes  # type: ignore[assignment]
            results[label] = asyncio.run(cpu_per_call(messenger, args.calls))
        msrest_speedup.apply()
        base = results["msrest as published"]
        print(f"Teams proactive call, CPU per call ({args.calls} calls each, {os.cpu_count()} "
              "CPUs, fake Bot Framework in this process)")
        for label, ms in results.items():
            print(f"  {label:22} {ms:7.2f} ms   ratio {ms / base:.2f}")
        rt.close()
    finally:
        stack.stop()
        bf.stop()


if __name__ == "__main__":
    main()
