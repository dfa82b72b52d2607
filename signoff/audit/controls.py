"""The controls an evidence report answers: what each asks, how Signoff meets it, and which of
the report's figures are its evidence (keys of :class:`signoff.audit.report.Evidence`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Control:
    id: str
    framework: str
    title: str
    asks: str
    how: str
    evidence: tuple[str, ...]


CONTROLS: tuple[Control, ...] = (
    Control(
        "CC6.1", "SOC 2", "Logical access security",
        "Logical access to protected information assets is restricted through access "
        "security software, infrastructure and architectures.",
        "An AI agent cannot run a privileged action on its own: it asks Signoff, a policy rule "
        "decides who must approve, and the agent receives an Ed25519-signed grant bound to the "
        "SHA-256 of the exact action, resource and parameters. The grant is single-use, expires, "
        "and the tool checks it before running.",
        ("requests", "grants")),
    Control(
        "CC6.2", "SOC 2", "Authorisation before access is granted",
        "Access is granted only after the request is authorised, and the people and systems "
        "that receive it are registered.",
        "Each request is granted only after the approvals its rule requires (or an explicit "
        "auto-approval rule for low-risk actions). Approvers are resolved through the policy's "
        "directory, agents through their registered credentials; API tokens are created by an "
        "operator and audited.",
        ("approvals_by_person", "tokens_created", "requests")),
    Control(
        "CC6.3", "SOC 2", "Role-based access, least privilege, segregation of duties",
        "Access is authorised, modified or removed based on roles and responsibilities, "
        "least privilege and segregation of duties.",
        "Rules name the eligible approver groups per action and environment. Nobody can approve "
        "a request they made, that was made on their behalf, or by an agent they own: such "
        "clicks are refused and audited. Grants are short-lived and an approver group can "
        "revoke one before it is used.",
        ("self_approval_refused", "denials", "grants")),
    Control(
        "CC7.2", "SOC 2", "Monitoring for anomalies",
        "System components are monitored for anomalies indicative of malicious acts, natural "
        "disasters and errors.",
        "Every refused click (a forged or replayed button, a foreign tenant, self-approval), "
        "every refused grant and every refused policy file is an audit entry, delivered to the "
        "SIEM as it happens (CloudEvents over signed webhooks, Splunk HEC or files).",
        ("forged_click_refused", "refused_clicks", "grants", "sinks")),
    Control(
        "CC8.1", "SOC 2", "Change management",
        "Changes to infrastructure, data, software and procedures are authorised, tested, "
        "approved and implemented.",
        "Infrastructure and data changes made by agents go through the same approval, and the "
        "approval binds the exact change. The policy itself is versioned: each loaded version "
        "and each refused edit is audited.",
        ("policy_changes", "requests")),
    Control(
        "A.5.15", "ISO/IEC 27001:2022", "Access control",
        "Rules to control logical access to information and assets are established and "
        "implemented based on business and security requirements.",
        "The access rules are the policy file (validated before it loads, versioned, and "
        "explained by 'signoff policy explain'); Signoff enforces them on every request.",
        ("policy_changes", "requests")),
    Control(
        "A.5.18", "ISO/IEC 27001:2022", "Access rights",
        "Access rights are provisioned, reviewed, modified and removed in line with the "
        "access control policy.",
        "Rights are provisioned per request (a grant for one action, with an expiry), can be "
        "revoked before use, and every approval is attributed to a person, listed here for "
        "review.",
        ("approvals_by_person", "grants", "denials")),
    Control(
        "A.8.15", "ISO/IEC 27001:2022", "Logging",
        "Logs recording activities, exceptions, faults and other relevant events are produced, "
        "stored, protected and analysed.",
        "Every step is an entry in a SHA-256 hash chain with a Merkle tree over it, signed "
        "(Ed25519) after every decision; old entries are archived with their signed "
        "checkpoint; the chain verifies offline with pinned keys; entries reach the SIEM.",
        ("entries_by_event", "verification", "sinks")),
    Control(
        "AC-2", "FedRAMP (NIST SP 800-53 Rev. 5)", "Account management",
        "Accounts are defined, approved, monitored and removed; their use is authorised.",
        "People act only as directory identities (Slack and Teams requests verified as the "
        "platforms sign them, the inbox through OIDC); agents only with registered "
        "credentials; unknown people are refused and audited.",
        ("approvals_by_person", "tokens_created", "refused_clicks")),
    Control(
        "AC-6", "FedRAMP (NIST SP 800-53 Rev. 5)", "Least privilege",
        "Only the access needed for assigned tasks is allowed.",
        "An agent holds no standing privilege: each privileged action needs its own approval "
        "and its own single-use grant for that payload, which expires in minutes.",
        ("requests", "grants")),
    Control(
        "AU-2", "FedRAMP (NIST SP 800-53 Rev. 5)", "Event logging",
        "The system logs the event types the organisation selected.",
        "Requests, policy outcomes, cards, votes, refusals, decisions, timeouts, cancellations, "
        "grant issue/use/refusal/revocation, policy reloads, token creation and key rotations "
        "are all logged; the counts for the period are below.",
        ("entries_by_event",)),
    Control(
        "AU-9", "FedRAMP (NIST SP 800-53 Rev. 5)", "Protection of audit information",
        "Audit information and tools are protected from unauthorised access, modification "
        "and deletion.",
        "The chain makes any edit, deletion, reordering or truncation detectable; checkpoints "
        "signed with a separate audit key after every decision pin it; archives carry their "
        "own signed checkpoint; verifiers use pinned keys, never keys shipped with the data.",
        ("verification", "key_rotations")),
    Control(
        "AU-10", "FedRAMP (NIST SP 800-53 Rev. 5)", "Non-repudiation",
        "Irrefutable evidence that an individual performed an action.",
        "Each vote names the authenticated person and the channel it came through; any entry "
        "can be shown with an RFC 9162 inclusion proof against a signed tree head, checked "
        "offline without the rest of the log.",
        ("samples", "approvals_by_person")),
    Control(
        "Art. 30", "GDPR", "Records of processing activities",
        "A record of processing activities: purposes, categories of data and recipients.",
        "The log records which actions agents asked to perform, for whom and who decided; "
        "payloads are masked before anyone sees them and the log keeps hashes, not personal "
        "data or secrets.",
        ("requests", "approvals_by_person")),
)
