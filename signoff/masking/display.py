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
) -> dict[str, str]:
    """``fields`` masked for display, except the names in ``trusted`` (closed-set values the
    caller has checked). Empty values stay empty."""
    keep = set(trusted)
    values = {k: (v or "") for k, v in fields.items()}
    to_mask = {k: v for k, v in values.items() if k not in keep and v}
    masked = masker.mask(to_mask, profile=profile or PATTERNS_ONLY).masked if to_mask else {}
    return {k: (str(masked[k]) if k in masked else values[k]) for k in values}


def shown_text(masker: Masker, text: str, profile: MaskingProfile | None = None) -> str:
    """One free-text value (a cancel reason, a comment an agent wrote) masked for display."""
    if not text:
        return text
    return str(masker.mask_text(text, profile=profile).masked)
