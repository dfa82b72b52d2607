"""The policy keys for deciding less often: standing, editable, deny_reasons, extend."""

from __future__ import annotations

import pytest

from policy.errors import PolicyError
from policy.parser import parse_policy
from tests.decisions.conftest import POLICY


def test_parsed_and_explained() -> None:
    policy = parse_policy(POLICY.read_text())
    req = next(r for r in policy.rules if r.id == "export").requirement
    assert req.standing_max == 4 * 3600 and req.extend_max == 2 * 3600
    assert req.standing_params == {"rows": {"type": "integer", "maximum": 10000}}
    assert req.editable["rows"]["maximum"] == 10000
    assert req.deny_reasons[0] == "Too many rows"
    lines = "\n".join(req.details())
    assert "standing approvals for up to 4h (params within bounds: rows)" in lines
    assert "approvers may edit: rows" in lines
    assert "the deadline may be extended by up to 2h" in lines
    # Round trip through the stored evaluation form.
    from policy.requirement import Requirement

    assert Requirement.from_dict(req.to_dict()).to_dict() == req.to_dict()


@pytest.mark.parametrize("old,new,message", [
    ("standing: {max: 4h,", "standing: {max: 2d,", "longer than the 1d Signoff allows"),
    ("editable: {rows: {type: integer,", "editable: {rows: {type: intgr,",
     "bounds for 'rows' are not a JSON Schema"),
    ("extend: {max: 2h}", "extend: {max: soon}", "must be"),
    ("deny_reasons: [Too many rows,", "deny_reasons: [\"\",", "rules[0].require.deny_reasons"),
])
def test_errors_say_where_and_why(old: str, new: str, message: str) -> None:
    text = POLICY.read_text()
    assert old in text
    with pytest.raises(PolicyError) as caught:
        parse_policy(text.replace(old, new))
    assert message in str(caught.value), str(caught.value)
