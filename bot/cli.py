"""``signoff card``: print the card a request would get, without Redis or a chat account.

The preview goes through the same steps as ``prepare``: the policy evaluates the request,
the masking engine masks it (:func:`signoff.lifecycle.masked_fields`, the very function
``prepare`` calls), the result becomes a :class:`~signoff.store.Record`, and the channel's
pure renderer turns its view into Block Kit (Slack) or an Adaptive Card (Teams) JSON. What it
prints is masked exactly as approvers would see it.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from bot.slack import render
from bot.teams.render import render_card
from policy import Outcome, PolicyError, load_policy
from policy.identity import canonical_agent, canonical_environment
from signoff import lifecycle
from signoff.cardview.view import CardView, build_view
from signoff.masking import Masker, MaskingConfig
from signoff.models import AgentRequest, Status
from signoff.settings import load_settings
from signoff.store import Record

if TYPE_CHECKING:
    from policy import Evaluation, Policy
    from signoff.masking import Masker, MaskingConfig
    from signoff.runtime import Runtime


class PreviewRuntime:
    """What :func:`signoff.lifecycle.masked_fields` reads from a runtime (policy, masker and
    the policy's masking config), without Redis."""

    def __init__(self, policy: Policy, masker: Masker) -> None:
        self.policy = policy
        self.masker = masker

    def masking_config(self) -> MaskingConfig:
        """The policy's ``masking:`` section as the engine's config (as Runtime builds it)."""
        return MaskingConfig.model_validate({
            "profiles": dict(self.policy.masking_profiles),
            "detectors": list(self.policy.custom_detectors)})


def preview_record(policy: Policy, masker: Masker, request: AgentRequest,
                   now: float | None = None) -> tuple[Record, Evaluation]:
    """The record ``prepare`` would store for ``request`` (pending, version 1), in memory."""
    now = time.time() if now is None else now
    evaluation = policy.evaluate(request)
    requirement = evaluation.requirement
    fields = lifecycle.masked_fields(cast("Runtime", PreviewRuntime(policy, masker)), request,
                                     evaluation)
    status = Status.PENDING
    if evaluation.outcome is Outcome.AUTO_APPROVE:
        status = Status.APPROVED
    elif evaluation.outcome is Outcome.AUTO_DENY:
        status = Status.DENIED
    fields.update({
        "id": request.id, "action": request.action,
        "requester": canonical_agent(request.requester),
        "on_behalf_of": policy.directory.canonical_person(request.on_behalf_of),
        "environment": canonical_environment(request.environment) or "",
        "payload_sha256": request.payload_sha256(),
        "evaluation": json.dumps(evaluation.to_dict()),
        "rule_id": evaluation.rule_id, "summary": evaluation.summary,
        "req_quorum": str(requirement.quorum),
        "req_groups": json.dumps(requirement.groups) if requirement.groups else "{}",
        "req_deny_quorum": str(requirement.deny_quorum),
        "eligible": json.dumps(list(requirement.eligible_groups)),
        "status": status.value, "version": "1", "created_at": repr(now),
        "deadline": repr(now + requirement.timeout_seconds),
    })
    if status is not Status.PENDING:
        fields["decided_at"] = repr(now)
        fields["decision_reason"] = evaluation.reason or evaluation.summary
    return Record(id=request.id, status=status, fields=fields), evaluation


def preview_view(policy: Policy, masker: Masker, request: AgentRequest,
                 now: float | None = None) -> CardView:
    """The channel-neutral view of :func:`preview_record`."""
    record, _ = preview_record(policy, masker, request, now)
    return build_view(record)


def _fail(message: str) -> click.ClickException:
    return click.ClickException(message)


@click.command(name="card", help="Print the Slack or Teams card a request would get.")
@click.option("--channel", type=click.Choice(["slack", "teams"]), default="slack",
              show_default=True, help="Which renderer to use.")
@click.option("--policy", "policy_path", type=click.Path(exists=True, dir_okay=False,
                                                         path_type=Path),
              default=None, help="Policy file (default: SIGNOFF_POLICY).")
@click.option("--compact", is_flag=True, help="One line of JSON instead of indented.")
@click.argument("request_file", type=click.File("r", encoding="utf-8"))
def card(channel: str, policy_path: Path | None, compact: bool, request_file: Any) -> None:
    """REQUEST_FILE is a request v1 JSON document (``-`` reads standard input)."""
    settings = load_settings()
    path = policy_path or settings.policy_path
    raw = request_file.read()
    request, _rid, errors, reason = lifecycle.parse_body(raw, settings.max_request_bytes)
    if request is None:
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors) or reason
        raise _fail(f"the request is invalid: {detail}")
    try:
        policy = load_policy(path, masking_validator=MaskingConfig.model_validate)
    except PolicyError as exc:
        raise _fail(f"the policy {path} cannot be loaded: {exc}") from None
    requirement = policy.evaluate(request).requirement
    if requirement.require_reason and not (request.reason or "").strip():
        raise _fail("the policy requires a reason for this request; it would be rejected")
    # Pseudonyms in the preview use the deployment's masking key when it is configured,
    # otherwise a throwaway one (the tokens then differ from what approvers would see).
    key = settings.masking_key.get_secret_value().encode() if settings.masking_key \
        else secrets.token_bytes(32)
    masker = Masker(key=key)
    now = time.time()
    view = preview_view(policy, masker, request, now)
    if not view.open:
        click.echo(f"note: rule {view.policy_rule} decides this request automatically "
                   f"({view.status.value}); no card is posted, this is how it would show.",
                   err=True)
    # Buttons in a preview must not be clickable against a deployment: sign with a throwaway key.
    hmac_key = secrets.token_bytes(32)
    out: dict[str, Any]
    if channel == "slack":
        directory = policy.directory

        def mention(email: str) -> str | None:
            found = directory.person(email)
            return found.slack_id if found is not None else None

        out = render.render_card(view, hmac_key, now=now, mention=mention)
    else:
        out = render_card(view, hmac_key, now=now)
    text = json.dumps(out, ensure_ascii=False, indent=None if compact else 2)
    sys.stdout.write(text + "\n")
