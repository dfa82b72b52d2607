"""examples/policy.yaml does what the demo and the other parts rely on."""

from __future__ import annotations

import pytest

from policy import ChannelKind, ChannelTarget, Evaluation, Outcome, Policy

from .conftest import MONDAY, SATURDAY, request


def test_directory_ids_other_parts_use(example: Policy) -> None:
    d = example.directory
    expected = {
        "alice@example.com": ("U0ALICE", "00000000-0000-0000-0000-00000000a11c", {"dba"}),
        "bob@example.com": ("U0BOB", "00000000-0000-0000-0000-000000000b0b", {"dba"}),
        "carol@example.com": ("U0CAROL", "00000000-0000-0000-0000-0000000ca401", {"dba", "secops"}),
        "dave@example.com": ("U0DAVE", "00000000-0000-0000-0000-00000000da7e", {"secops"}),
        "erin@example.com": ("U0ERIN", "00000000-0000-0000-0000-00000000e410", {"admins", "platform"}),
        "frank@example.com": ("U0FRANK", "00000000-0000-0000-0000-0000000f4a4c", set()),
    }
    for email, (slack, teams, groups) in expected.items():
        person = d.person(email)
        assert person is not None
        assert (person.slack_id, person.teams_id, set(person.groups)) == (slack, teams, groups)
        assert d.by_slack(slack) == person
        assert d.by_teams(teams.upper()) == person
    export_bot, deploy_bot = d.agent("agent:export-bot"), d.agent("agent:deploy-bot")
    assert export_bot is not None and deploy_bot is not None
    assert (export_bot.owner, export_bot.team) == ("erin@example.com", "platform")
    assert deploy_bot.owner == "frank@example.com"
    assert d.members("dba") == {"alice@example.com", "bob@example.com", "carol@example.com"}
    assert d.groups_of("CAROL@example.com") == {"dba", "secops"}
    assert d.by_slack("U0NOBODY") is None and d.person("mallory@example.com") is None


def test_dev_is_auto_approved(example: Policy) -> None:
    ev = example.evaluate(request(context={"environment": "dev"}), MONDAY)
    assert (ev.rule_id, ev.outcome) == ("dev-auto", Outcome.AUTO_APPROVE)
    assert "dev" in ev.reason


def test_prod_export_needs_two_dbas(example: Policy) -> None:
    ev = example.evaluate(request(action="db.export_table"), MONDAY)
    req = ev.requirement
    assert ev.rule_id == "prod-data-export"
    assert ev.summary == "prod-data-export — 2 of dba"
    assert (req.groups, req.quorum, req.require_reason, req.require_deny_comment) == (
        {"dba": 2}, 2, True, True,
    )
    assert req.timeout_seconds == 3600 and req.reminders == (900, 2700)
    assert [(e.after_seconds, e.add_groups, e.page_groups) for e in req.escalation] == [
        (1800, ("admins",), ()), (3000, (), ("admins",)),
    ]
    assert req.channels == (
        ChannelTarget(ChannelKind.SLACK_CHANNEL, "#approvals"),
        ChannelTarget(ChannelKind.WEB),
        ChannelTarget(ChannelKind.TEAMS, "approvals"),
    )
    assert req.masking_profile == "customer-data" and req.partial_groups == ("dba",)
    assert "customer-data" in example.masking_profiles


@pytest.mark.parametrize(
    ("resource", "groups"),
    [
        ("role/db-reader", {"secops": 1, "dba": 1}),
        ("arn:aws:iam::123456789012:role/platform-ci", {"secops": 1, "platform": 1}),
        ("role/unregistered", {"secops": 1, "dba": 1}),
    ],
)
def test_iam_grant_needs_secops_and_the_resource_owner(
    example: Policy, resource: str, groups: dict[str, int]
) -> None:
    ev = example.evaluate(request(action="iam.grant", resource=resource), MONDAY)
    assert ev.rule_id == "iam-grant"
    assert ev.requirement.groups == groups and ev.requirement.quorum == 2


def test_infra_only_in_business_hours(example: Policy) -> None:
    inside = example.evaluate(request(action="infra.apply"), MONDAY)
    outside = example.evaluate(request(action="infra.apply"), SATURDAY)
    assert (inside.rule_id, inside.outcome) == ("infra-business-hours", Outcome.REQUIRE_APPROVAL)
    assert inside.requirement.groups == {"platform": 1}
    assert (outside.rule_id, outside.outcome) == ("infra-business-hours", Outcome.AUTO_DENY)
    assert "Monday to Friday" in outside.reason


def test_unmatched_goes_to_admins(example: Policy) -> None:
    ev = example.evaluate(request(action="crm.update"), MONDAY)
    assert (ev.rule_id, ev.outcome, ev.requirement.groups) == (
        "default", Outcome.REQUIRE_APPROVAL, {"admins": 1},
    )
    assert ev.summary == "default — 1 of admins"


def test_refunds_and_deletes(example: Policy) -> None:
    big = example.evaluate(request(action="payments.refund", params={"amount": 5000}), MONDAY)
    small = example.evaluate(request(action="payments.refund", params={"amount": 5}), MONDAY)
    assert big.rule_id == "large-refunds" and small.rule_id == "default"
    nodel = example.evaluate(request(action="crm.delete"), MONDAY)
    ok = example.evaluate(request(action="crm.delete", context={"environment": "prod", "ticket": "CHG-1"}), MONDAY)
    assert (nodel.rule_id, nodel.outcome) == ("no-deletes-without-ticket", Outcome.AUTO_DENY)
    assert ok.rule_id == "default"


def test_evaluations_round_trip_through_json(example: Policy) -> None:
    import json

    for action in ("db.export", "iam.grant", "infra.apply", "crm.update"):
        ev = example.evaluate(request(action=action), MONDAY)
        assert Evaluation.from_dict(json.loads(json.dumps(ev.to_dict()))) == ev
        assert ev.policy_version == example.version and len(ev.policy_version) == 12
