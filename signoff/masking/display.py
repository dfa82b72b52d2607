"""The one function every surface gets a request's own short fields from.

Cards, modals, DMs, thread replies, the inbox, the API, log lines and audit entries show an
agent's ``action``, ``requester``, ``on_behalf_of``, ``environment`` and ``resource`` (and a
cancel reason). Each of them is text the agent chose, so each goes through the engine, like the
payload; or it is shown as it is only because it belongs to a closed set the deployment
controls (a person the directory knows, an agent the registry or the directory knows), which
the caller says by listing it in ``trusted``.

The result is stored with the request (``shown``) and renderers read it from there; they never
see the raw field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from signoff.masking.engine import Masker
from signoff.masking.profile import DEFAULT_PROFILE, MaskingProfile

SHOWN_FIELDS = ("action", "resource", "requester", "on_behalf_of", "environment")
# The request's own fields need no spaCy at intake: the pattern and encoding detectors find
# what can hide in an identifier (a token, an e-mail, a card number, an encoded secret).
PATTERNS_ONLY = DEFAULT_PROFILE.model_copy(update={"ner": False})


def shown_fields(
    masker: Masker,
    fields: Mapping[str, str | None],
    trusted: Iterable[str] = (),
    profile: MaskingProfile | None = None,
    raw: Mapping[str, str | None] | None = None,
) -> dict[str, str]:
    """``fields`` masked for display, except the names in ``trusted`` (closed-set values the
    caller has checked). Empty values stay empty.

    ``raw`` gives the values as the agent sent them where ``fields`` holds a canonical form
    (case-folded identities and environments): detectors that depend on case (``AKIA…``, an
    EIP-55 address) read the raw value, and when it holds anything to hide the masked raw value
    is shown instead of the canonical one."""
    keep = set(trusted)
    values = {k: (v or "") for k, v in fields.items()}
    originals = {k: (v or "") for k, v in (raw or {}).items() if k in values and k not in keep}
    doc = {
        "shown": {k: v for k, v in values.items() if k not in keep and v},
        "raw": {k: v for k, v in originals.items() if v and v != values.get(k)},
    }
    if not doc["shown"] and not doc["raw"]:
        return values
    # Identifiers, not prose: a name model would only mistake "Export-Bot" for a firm.
    prof = profile.model_copy(update={"ner": False}) if profile is not None else PATTERNS_ONLY
    result = masker.mask(doc, profile=prof).masked
    out = dict(values)
    for k, v in result["shown"].items():
        out[k] = str(v)
    for k, v in result["raw"].items():
        if v != originals[k]:
            out[k] = str(v)
    return out


def shown_text(masker: Masker, text: str, profile: MaskingProfile | None = None) -> str:
    """One free-text value (a cancel reason, a comment an agent wrote) masked for display."""
    if not text:
        return text
    return str(masker.mask_text(text, profile=profile).masked)


def reveals(masker: Masker, text: str) -> list[str]:
    """The entities the pattern detectors find in ``text`` (an identifier that every surface
    shows as it is and that therefore must not carry any); empty when it is clean."""
    if not text:
        return []
    result = masker.mask_text(text, profile=PATTERNS_ONLY)
    return sorted({f.entity for f in result.findings})
