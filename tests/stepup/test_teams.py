"""A step-up request in Teams over real HTTP (signed Bot Framework activities, the fake
connector): each approver's refreshed card says why and opens the inbox's step-up page
instead of voting; a signed Approve invoke (an old card's button, or a crafted one) is
refused by submit_vote and changes nothing; after two passkey-proven votes every Teams card
shows the decision."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from signoff import clicks, lifecycle
from signoff.models import Status
from signoff.runtime import Runtime, set_current
from tests.conftest import EXAMPLE_POLICY, run_jobs
from tests.fakes.teams_connector import FakeBotFramework
from tests.stepup.conftest import PUBLIC_URL, assertion, enrol
from tests.teams.conftest import (  # noqa: F401  (bf: the session's fake Bot Framework)
    APPROVALS,
    TeamsClient,
    WebServer,
    bf,
    card_of,
    open_request,
    teams_settings,
    texts,
    verbs,
)


@pytest.fixture(scope="module")
def step_up_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example policy with the data-export rule in Teams and a passkey step-up."""
    doc = yaml.safe_load(EXAMPLE_POLICY.read_text())
    for rule in doc["rules"]:
        if rule["id"] == "prod-data-export":
            rule["require"]["channels"] = [{"teams": "approvals"}, "web"]
            rule["require"]["step_up"] = {"method": "passkey", "within": "5m"}
            rule["require"].pop("reminders", None)
            rule["require"].pop("escalation", None)
    doc["defaults"]["reminders"] = []
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture
def trt(redis_url: str, tmp_path: Path, bf: FakeBotFramework,  # noqa: F811
        step_up_policy: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    from workers import jobs

    bf.reset()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bf.ca_path))
    runtime = Runtime(teams_settings(redis_url, tmp_path / "data", bf, step_up_policy,
                                     public_url=PUBLIC_URL))
    set_current(runtime)
    jobs.reset_messengers()
    yield runtime
    jobs.reset_messengers()
    runtime.close()


@pytest.fixture
def teams(bf: FakeBotFramework, trt: Runtime) -> Iterator[TeamsClient]:  # noqa: F811
    server = WebServer(trt).start()
    yield TeamsClient(bf, server)
    server.stop()


def test_teams_step_up_card_and_refused_invoke(trt: Runtime, bf: FakeBotFramework,  # noqa: F811
                                               teams: TeamsClient) -> None:
    assert teams.install(APPROVALS, "Approvals").status_code == 201
    open_request(trt, "t-step")
    [post] = bf.wait_posts(1)
    base = post.card
    assert base is not None and verbs(base) == []
    assert "needs a passkey" in texts(base)

    alice_card = card_of(teams.invoke("refresh", base["refresh"]["action"]["data"], "alice"))
    assert verbs(alice_card) == []
    urls = [a["url"] for a in alice_card["actions"] if a["type"] == "Action.OpenUrl"]
    assert urls == [f"{PUBLIC_URL}/inbox/r/t-step/step-up?choice=approve",
                    f"{PUBLIC_URL}/inbox/r/t-step/step-up?choice=deny"]

    record = trt.store.get("t-step")
    assert record is not None
    forged = clicks.sign_dict(trt.settings.hmac_key(), "t-step", record.version, "approve")
    answer = teams.invoke("approve", forged, "alice")
    assert answer.status_code == 200
    assert "passkey" in json.dumps(answer.json())
    record = trt.store.get("t-step")
    assert record is not None and record.status is Status.PENDING and record.votes == {}

    # Two DBAs prove presence with their passkeys (as the inbox's step-up page does).
    for email in ("alice@example.com", "bob@example.com"):
        device = enrol(trt, email)
        proof = assertion(trt, device, "t-step", email, "approve")
        reply = lifecycle.submit_vote(trt, "t-step", trt.policy.directory.person(email),
                                      "approve", channel="web", step_up=proof)
        assert reply.ok, reply.message
    run_jobs(trt)
    assert trt.store.status("t-step") is Status.APPROVED
    body = bf.message(post.conversation_id, post.activity_id)
    assert body is not None
    final = body["attachments"][0]["content"]
    assert "Approved by alice@example.com, bob@example.com" in texts(final)
    assert not [a for a in final.get("actions", []) if a["type"] == "Action.OpenUrl"]
