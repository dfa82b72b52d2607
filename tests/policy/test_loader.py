"""load_policy and PolicyHolder: reading, reloading on change and SIGHUP, keeping the last good."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from policy import PolicyError, PolicyHolder, load_policy, policy_version
from signoff.masking.profile import MaskingConfig

from .conftest import EXAMPLE, policy_text

GOOD = policy_text("rules:\n  - {id: one, match: {action: 'a.*'}, require: {approvers: 1 of dba}}\n")
GOOD2 = policy_text("rules:\n  - {id: two, match: {action: 'a.*'}, require: {approvers: 2 of dba}}\n")
BAD = policy_text("rules:\n  - {id: three, require: {approvers: 1 of nobody}}\n")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, text: str, bump: int) -> None:
    """Write and move the mtime forward, so a same-size rewrite is still seen as a change."""
    path.write_text(text)
    stamp = time.time_ns() + bump * 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


def test_load_policy_reads_and_versions_the_file(tmp_path: Path) -> None:
    file = tmp_path / "p.yaml"
    file.write_text(GOOD)
    loaded = load_policy(file)
    assert loaded.version == policy_version(GOOD) and loaded.source == str(file)
    assert [r.id for r in loaded.rules] == ["one"]


def test_load_policy_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(tmp_path / "nope.yaml")
    (issue,) = info.value.errors
    assert issue.message.startswith("cannot read the policy file")


def test_load_policy_validates_masking_through_the_engine(tmp_path: Path) -> None:
    file = tmp_path / "p.yaml"
    file.write_text(GOOD + "masking:\n  profiles:\n    strict: {strategy: scramble}\n")
    with pytest.raises(PolicyError) as info:
        load_policy(file, masking_validator=MaskingConfig.model_validate)
    assert any("masking.profiles.strict.strategy" in e.message for e in info.value.errors)
    assert load_policy(file, masking_validator=None).masking_profiles["strict"]["strategy"] == "scramble"


def test_holder_reloads_when_the_file_changes(tmp_path: Path) -> None:
    file = tmp_path / "p.yaml"
    file.write_text(GOOD)
    clock = FakeClock()
    holder = PolicyHolder(file, clock=clock)
    assert holder.get().rules[0].id == "one"
    write(file, GOOD2, 5)
    clock.now += 0.5
    assert holder.get().rules[0].id == "one"  # checked at most once a second
    clock.now += 0.6
    assert holder.get().rules[0].id == "two"


def test_holder_keeps_the_last_good_policy(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    file = tmp_path / "p.yaml"
    file.write_text(GOOD)
    refused: list[PolicyError] = []
    clock = FakeClock()
    holder = PolicyHolder(file, on_error=refused.append, clock=clock)
    good_version = holder.get().version
    write(file, BAD, 5)
    clock.now += 2
    with caplog.at_level(logging.ERROR, logger="signoff.policy"):
        assert holder.get().version == good_version
    assert len(refused) == 1 and "group 'nobody' is not defined" in str(refused[0])
    assert "refused, keeping version " + good_version in caplog.text
    assert "group 'nobody'" in caplog.text
    clock.now += 2
    assert holder.get().version == good_version and len(refused) == 1  # not retried every second
    assert holder.reload() is False and len(refused) == 2  # an explicit reload does retry
    write(file, GOOD2, 10)
    clock.now += 2
    assert holder.get().rules[0].id == "two"


def test_holder_first_load_must_succeed(tmp_path: Path) -> None:
    file = tmp_path / "p.yaml"
    file.write_text(BAD)
    with pytest.raises(PolicyError):
        PolicyHolder(file)


def test_holder_survives_the_file_disappearing(tmp_path: Path) -> None:
    file = tmp_path / "p.yaml"
    file.write_text(GOOD)
    clock = FakeClock()
    holder = PolicyHolder(file, clock=clock)
    file.unlink()
    clock.now += 2
    assert holder.get().rules[0].id == "one"
    assert holder.reload() is False


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_sighup_reloads(tmp_path: Path) -> None:
    file = tmp_path / "p.yaml"
    file.write_text(GOOD)
    holder = PolicyHolder(file, clock=FakeClock())  # the clock never advances: only SIGHUP reloads
    previous = signal.getsignal(signal.SIGHUP)
    try:
        holder.install_sighup()
        write(file, GOOD2, 5)
        os.kill(os.getpid(), signal.SIGHUP)
        deadline = time.monotonic() + 10
        while holder.get().rules[0].id != "two" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert holder.get().rules[0].id == "two"
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_install_sighup_only_from_the_main_thread(tmp_path: Path) -> None:
    file = tmp_path / "p.yaml"
    file.write_text(GOOD)
    holder = PolicyHolder(file)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            holder.install_sighup()
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(5)
    assert errors and "main thread" in str(errors[0])


def test_the_example_loads_with_the_default_settings_path() -> None:
    from signoff.settings import Settings

    assert Settings.model_fields["policy_path"].default == Path("examples/policy.yaml")
    assert load_policy(EXAMPLE).rule("prod-data-export") is not None
