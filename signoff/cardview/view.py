"""The channel-neutral view model every card is rendered from.

Built from a stored record only: it holds masked data (never the original payload), so any
renderer fed from it cannot leak what masking removed. Pure: no I/O, time passed in.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from signoff.cardview.display import safe_name, safe_text, safe_value
from signoff.models import Status
from signoff.store import Record

STATUS_TEXT = {
    Status.RECEIVED: "Preparing",
    Status.PENDING: "Waiting for approval",
    Status.APPROVED: "Approved",
    Status.DENIED: "Denied",
    Status.TIMED_OUT: "Expired — denied automatically",
    Status.CANCELLED: "Cancelled by the requester",
    Status.REJECTED: "Rejected: invalid request",
}


@dataclass(frozen=True)
class VoteLine:
    """One vote as cards show it."""

    person: str
    choice: str
    at: float
    comment: str | None
    channel: str


@dataclass(frozen=True)
class CardView:
    """Everything a card shows about one request, already masked."""

    request_id: str
    version: int
    status: Status
    action: str
    resource: str
    requester: str
    on_behalf_of: str | None
    environment: str | None
    reason: str
    context: dict[str, Any]
    params: Any
    policy_rule: str
    policy_summary: str
    quorum: int
    group_needs: dict[str, int]
    approvals: int
    progress: str
    masking_summary: str
    masked_count: int
    payload_sha256: str
    created_at: float
    deadline: float
    decided_at: float | None
    decision_reason: str | None
    votes: tuple[VoteLine, ...] = field(default_factory=tuple)
    require_deny_comment: bool = False
    notify_failures: tuple[str, ...] = field(default_factory=tuple)
    merged_count: int = 0
    grant_revoked_by: str | None = None
    step_up: str | None = None  # "passkey": each vote needs a passkey proof (inbox only)
    step_up_within: int = 0
    step_up_url: str = ""  # the inbox's step-up page (absolute when SIGNOFF_PUBLIC_URL is set)
    # Fewer, better decisions (signoff.standing, signoff.edits, signoff.delegation).
    standing_line: str = ""  # "approved under a standing approval by @alice, @bob until …"
    standing_until: float = 0.0  # this request created a standing approval, until then
    standing_max: int = 0  # the rule allows standing approvals this long
    editable: dict[str, Any] = field(default_factory=dict)  # param -> JSON Schema bounds
    edits: tuple[dict[str, Any], ...] = field(default_factory=tuple)  # who changed what
    deny_reasons: tuple[str, ...] = ()
    extend_max: int = 0
    extended: int = 0

    def step_up_link(self, choice: str) -> str:
        """The step-up page for ``choice``, or "" when the inbox has no public address."""
        if not self.step_up_url.startswith(("https://", "http://")):
            return ""
        return f"{self.step_up_url}?choice={choice}"

    @property
    def repeats(self) -> int:
        """How many identical requests this card stands for (1 + merged followers)."""
        return 1 + self.merged_count

    @property
    def title(self) -> str:
        """The card's headline: the action, with "×N" when identical requests were merged."""
        return f"{self.action} ×{self.repeats}" if self.merged_count else self.action

    @property
    def open(self) -> bool:
        return self.status is Status.PENDING

    @property
    def status_text(self) -> str:
        return STATUS_TEXT[self.status]

    @property
    def approvers(self) -> list[str]:
        return [v.person for v in self.votes if v.choice == "approve"]

    @property
    def deniers(self) -> list[str]:
        return [v.person for v in self.votes if v.choice == "deny"]

    def seconds_left(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        return max(int(self.deadline - now), 0)

    def final_line(self) -> str:
        """"Approved by alice, bob · 14:02 UTC" / "Expired — denied automatically"."""
        when = ""
        if self.decided_at:
            when = " · " + datetime.fromtimestamp(self.decided_at, tz=UTC).strftime(
                "%H:%M UTC")
        if self.status is Status.APPROVED:
            revoked = f" · grant revoked by {self.grant_revoked_by}" if self.grant_revoked_by else ""
            if self.standing_line:
                return self.standing_line[:1].upper() + self.standing_line[1:] + revoked
            who = ", ".join(self.approvers) or "policy"
            standing = ""
            if self.standing_until:
                standing = " · standing approval until " + datetime.fromtimestamp(
                    self.standing_until, tz=UTC).strftime("%H:%M UTC")
            return f"Approved by {who}{when}{standing}{revoked}"
        if self.status is Status.DENIED:
            who = ", ".join(self.deniers) or "policy"
            reason = f": {self.decision_reason}" if self.decision_reason and not self.deniers else ""
            comment = next((v.comment for v in self.votes if v.choice == "deny" and v.comment), None)
            if comment:
                reason = f": {comment}"
            return f"Denied by {who}{when}{reason}"
        return f"{self.status_text}{when}"

    def params_json(self, indent: int = 2) -> str:
        return json.dumps(self.params, indent=indent, ensure_ascii=False, sort_keys=True)


def progress_text(quorum: int, groups: dict[str, int], approvals: int) -> str:
    """"2 of dba — 1 so far" / "1 from dba and 1 from secops — 0 so far"."""
    if groups:
        if len(groups) == 1:
            (g, n), = groups.items()
            need = f"{max(n, quorum)} of {g}"
        else:
            need = " and ".join(f"{n} from {g}" for g, n in sorted(groups.items()))
    else:
        need = f"{quorum} approval{'s' if quorum != 1 else ''}"
    return f"{need} — {approvals} so far"


def build_view(record: Record, *, partial: bool = False) -> CardView:
    """The view of a stored record (``partial``: the view for groups allowed partial values).

    Everything an agent wrote passes through :mod:`signoff.cardview.display` here, once for every
    renderer: invisible and direction-changing characters are shown as escapes, and names
    (agent, person, voters) show any non-ASCII letter escaped (no look-alikes)."""
    masked = record.json("masked_partial" if partial and record.get("masked_partial")
                         else "masked", {}) or {}
    counts = record.json("masking_counts", {}) or {}
    groups = record.json("req_groups", {}) or {}
    quorum = int(record.get("req_quorum") or 1)
    evaluation = record.json("evaluation", {}) or {}
    requirement = evaluation.get("requirement", {}) if isinstance(evaluation, dict) else {}
    votes = tuple(
        # A delegate's vote names both: "dave@example.com for alice@example.com".
        VoteLine(safe_name(v.person) if not v.by else
                 f"{safe_name(v.by)} for {safe_name(v.person)}", v.choice, v.at,
                 safe_text(v.comment) if v.comment else v.comment, v.channel)
        for v in sorted(record.votes.values(), key=lambda v: v.at)
    )
    approvals = sum(1 for v in votes if v.choice == "approve")
    context = masked.get("context") if isinstance(masked.get("context"), dict) else {}
    # The request's own fields as the masking engine let them through (lifecycle.shown), never
    # the raw ones: an agent chooses its action, environment, resource and whom it names.
    shown = record.json("shown", None)
    shown = shown if isinstance(shown, dict) else {}
    env = safe_name(str(shown.get("environment") or "")) or None
    resource = masked.get("resource") or shown.get("resource") or "(masked)"
    failures = tuple(safe_text(str(f)) for f in record.json("notify_failures", []) or [])
    return CardView(
        request_id=record.id,
        version=record.version,
        status=record.status,
        action=safe_text(str(shown.get("action") or "(masked)")) if record.action else "",
        resource=safe_text(str(resource)),
        requester=safe_name(str(shown.get("requester") or "(masked)")) if record.requester else "",
        on_behalf_of=safe_name(str(shown.get("on_behalf_of") or "(masked)"))
        if record.on_behalf_of else None,
        environment=env,
        reason=safe_text(str(masked.get("reason") or "")),
        context=safe_value(context or {}),
        params=safe_value(masked.get("params", {})),
        policy_rule=record.get("rule_id") or "",
        policy_summary=record.get("summary") or "",
        quorum=quorum,
        group_needs={str(k): int(v) for k, v in groups.items()},
        approvals=approvals,
        progress=progress_text(quorum, groups, approvals),
        masking_summary=record.get("masking_summary") or "nothing masked",
        masked_count=int(sum(int(v) for v in counts.values())) if isinstance(counts, dict) else 0,
        payload_sha256=record.get("payload_sha256") or "",
        created_at=record.created_at,
        deadline=record.deadline,
        decided_at=record.number("decided_at") or None,
        decision_reason=safe_text(record.get("decision_reason") or "") or None,
        votes=votes,
        require_deny_comment=bool(requirement.get("require_deny_comment", False)),
        notify_failures=failures,
        merged_count=int(record.get("merged_count") or 0),
        grant_revoked_by=record.get("grant_revoked_by") or None,
        step_up=requirement.get("step_up") or None,
        step_up_within=int(requirement.get("step_up_within") or 0),
        step_up_url=record.get("step_up_url") or "",
        standing_line=safe_text(record.get("standing_line") or ""),
        standing_until=record.number("standing_until"),
        standing_max=int(requirement.get("standing_max") or 0),
        editable=dict(requirement.get("editable") or {}),
        edits=tuple(safe_value(record.json("edits", []) or [])),
        deny_reasons=tuple(safe_text(str(r)) for r in requirement.get("deny_reasons") or ()),
        extend_max=int(requirement.get("extend_max") or 0),
        extended=int(record.number("extended")),
    )
