"""Fixtures for the reliability suite: the fakes, a runtime for the test process, and a
factory for the running stack (started by each test, stopped at teardown)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from signoff.runtime import Runtime, set_current
from tests.fakes.slack_api import FakeSlack
from tests.fakes.teams_connector import FakeBotFramework
from tests.reliability.support import ChannelStack, channel_settings, write_policy
from tests.teams.conftest import APP_ID, APP_PASSWORD


@pytest.fixture(scope="session")
def bf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeBotFramework]:
    fake = FakeBotFramework(tmp_path_factory.mktemp("rel-bf"), APP_ID, APP_PASSWORD).start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def policy_path(tmp_path: Path) -> Path:
    # Not "policy": the processes run in tmp_path, where that folder would shadow the package.
    return write_policy(tmp_path / "rel-policy")


@pytest.fixture
def rrt(redis_url: str, tmp_path: Path, policy_path: Path, fake_slack: FakeSlack,
        bf: FakeBotFramework, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    """The test process's runtime: same Redis, policy and channels as the stack."""
    from workers import jobs

    bf.reset()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bf.ca_path))
    runtime = Runtime(channel_settings(redis_url, tmp_path / "data", policy_path, fake_slack,
                                       bf))
    set_current(runtime)
    jobs.reset_messengers()
    yield runtime
    jobs.reset_messengers()
    runtime.close()


StackFactory = Callable[..., ChannelStack]


@pytest.fixture
def make_stack(rrt: Runtime, tmp_path: Path, policy_path: Path, fake_slack: FakeSlack,
               bf: FakeBotFramework) -> Iterator[StackFactory]:
    """Start the stack (with Slack and Teams unless told otherwise); stopped at teardown."""
    started: list[ChannelStack] = []

    def make(*, slack: bool = True, teams: bool = True, env: dict[str, str] | None = None,
             start: bool = True, **kw: Any) -> ChannelStack:
        stack = ChannelStack(rrt.settings, tmp_path, policy_path,
                             fake_slack if slack else None, bf if teams else None, env, **kw)
        started.append(stack)
        if start:
            stack.start_all()
        return stack

    yield make
    for stack in started:
        stack.stop()
