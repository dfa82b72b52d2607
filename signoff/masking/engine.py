"""The masking engine: walks a JSON payload, detects, and replaces.

``Masker.mask(payload)`` returns a :class:`MaskResult` whose ``masked`` has the payload's shape
with every sensitive value replaced, and whose ``findings`` say what was found where, without
the values. Detection per string is: key-name context (a value under ``password`` is masked
whole), then one combined scan of every pattern detector (:mod:`signoff.masking.scanner`),
then spaCy NER on the prose fields of all payloads in one ``nlp.pipe`` batch.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from signoff.masking import ner as ner_mod
from signoff.masking import strategies
from signoff.masking.encoded import (
    base64_runs,
    entity_view,
    hex_runs,
    json_strings,
    percent_view,
    query_values,
    structured_values,
    unescape_view,
)
from signoff.masking.keys import classify_key, normalize_key
from signoff.masking.model import Finding, MaskResult
from signoff.masking.pii import builtin_pii
from signoff.masking.profile import DEFAULT_PROFILE, CustomDetector, MaskingProfile, Strategy
from signoff.masking.scanner import Detector, Scanner, Span, resolve
from signoff.masking.secret_rules import builtin_secrets
from signoff.masking.validators import VALIDATORS, shannon_entropy

MAX_DEPTH = 64
MAX_DECODE_DEPTH = 4  # base64 inside URL-encoding inside base64 …: levels decoded
_KEY_CACHE_SIZE = 50_000
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BIG_INT_DIGITS = 7


def compile_custom(spec: CustomDetector | dict[str, Any]) -> Detector:
    """A :class:`Detector` from a policy file's custom detector."""
    d = spec if isinstance(spec, CustomDetector) else CustomDetector.model_validate(spec)
    flags = 0 if d.case_sensitive else re.IGNORECASE
    if d.pattern:
        pattern = re.compile(d.pattern, flags)
        group: int | str = 0
        if "value" in pattern.groupindex:
            group = "value"
        elif pattern.groups == 1:
            group = 1
        validator = VALIDATORS[d.validator] if d.validator else None
    else:
        terms = sorted({t for t in d.deny_list if t}, key=len, reverse=True)
        pattern = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(t) for t in terms) + r")(?!\w)", flags)
        group, validator = 0, None
    return Detector(
        d.id, d.entity, d.confidence, pattern, group=group, validator=validator,
        context=tuple(w.lower() for w in d.context),
    )


def _random_like(value: str) -> bool:
    """A single random-looking token (16-512 characters, letters and digits, high entropy)."""
    v = value.strip()
    return (
        16 <= len(v) <= 512 and not any(c.isspace() for c in v)
        and any(c.isdigit() for c in v) and any(c.isalpha() for c in v)
        and shannon_entropy(v) >= 3.5
    )


def _path_child(path: str, key: str) -> str:
    return f"{path}.{key}" if _IDENT.match(key) else f"{path}[{json.dumps(key)}]"


def _key_rule_matches(rules: Sequence[str], key_norm: str, path: str) -> bool:
    for r in rules:
        if r.startswith("$"):
            if fnmatch.fnmatchcase(path, r):
                return True
        elif normalize_key(r) == key_norm:
            return True
    return False


@dataclass(slots=True)
class _Leaf:
    text: str
    path: str
    key_norm: str | None
    forced: str | None  # entity when the key name decides
    keep: bool
    spans: list[Span] = field(default_factory=list)
    number: bool = False  # the original was a number


@dataclass(slots=True)
class _Embedded:
    """A string that was itself JSON: masked as a structure, dumped back to a string."""

    skeleton: Any


class _Ref(int):
    """Index of a leaf in the skeleton (a distinct type from a plain int value)."""


@dataclass
class _Job:
    profile: MaskingProfile
    viewer_groups: tuple[str, ...]
    disabled: frozenset[str]
    leaves: list[_Leaf] = field(default_factory=list)
    skeleton: Any = None
    key_findings: list[Finding] = field(default_factory=list)


class Masker:
    """Masks payloads. Build one per process and reuse it: everything is compiled here.

    ``key`` keys the HMAC of pseudonyms and hashes (same key, same token for the same value;
    another key, other tokens). Without one a random key is drawn, so tokens are stable for
    this Masker only. ``custom_detectors`` are added to the built-in ones for every profile.
    ``ner=False`` never loads spaCy.
    """

    def __init__(
        self,
        key: bytes | str | None = None,
        custom_detectors: Iterable[CustomDetector | dict[str, Any]] = (),
        *,
        ner: bool = True,
        profile: MaskingProfile | None = None,
    ) -> None:
        if isinstance(key, str):
            key = key.encode()
        self.key: bytes = key if key else os.urandom(32)
        self.ner = ner
        self.default_profile = profile or DEFAULT_PROFILE
        customs = [compile_custom(c) for c in custom_detectors]
        self.detectors: list[Detector] = [*builtin_secrets(), *builtin_pii(), *customs]
        self.scanner = Scanner(self.detectors)
        self._profile_scanners: dict[str, Scanner] = {}
        self._key_cache: dict[tuple[str, frozenset[str], bool], list[Span]] = {}

    # -- lifecycle -----------------------------------------------------------------------------
    def warm(self) -> Masker:
        """Load spaCy now (workers call this before forking) and touch every regex once."""
        if self.ner:
            ner_mod.load()
        self.mask({"warm": "Ms. Jane Doe, jane@example.com, +1 415 555 0132, password=x"})
        return self

    @property
    def detector_ids(self) -> list[str]:
        return [d.id for d in self.detectors] + ["key_name", "ner"]

    # -- public API ----------------------------------------------------------------------------
    def mask(
        self,
        payload: Any,
        profile: MaskingProfile | None = None,
        viewer_groups: Iterable[str] = (),
        disabled_detectors: Iterable[str] = (),
    ) -> MaskResult:
        """Mask any JSON value; the result has the same shape."""
        return self.mask_many([payload], profile, viewer_groups, disabled_detectors)[0]

    def mask_text(
        self,
        text: str,
        profile: MaskingProfile | None = None,
        viewer_groups: Iterable[str] = (),
        disabled_detectors: Iterable[str] = (),
    ) -> MaskResult:
        """Mask plain text (never parsed as JSON); ``masked`` is a string."""
        job = self._job(profile, viewer_groups, disabled_detectors)
        job.leaves.append(_Leaf(text, "$", None, None, False))
        job.skeleton = _Ref(0)
        return self._finish([job])[0]

    def mask_many(
        self,
        payloads: Sequence[Any],
        profile: MaskingProfile | None = None,
        viewer_groups: Iterable[str] = (),
        disabled_detectors: Iterable[str] = (),
    ) -> list[MaskResult]:
        """Mask several payloads with one NER batch (how a worker preparing many requests
        should call it)."""
        jobs = []
        for p in payloads:
            job = self._job(profile, viewer_groups, disabled_detectors)
            job.skeleton = self._walk(job, p, "$", None, None, None, False, 0)
            jobs.append(job)
        return self._finish(jobs)

    # -- internals -----------------------------------------------------------------------------
    def _job(
        self,
        profile: MaskingProfile | None,
        viewer_groups: Iterable[str],
        disabled_detectors: Iterable[str],
    ) -> _Job:
        prof = profile or self.default_profile
        disabled = frozenset([*prof.disabled_detectors, *disabled_detectors])
        return _Job(prof, tuple(viewer_groups), disabled)

    def _extra_scanner(self, profile: MaskingProfile) -> Scanner | None:
        if not profile.detectors:
            return None
        sig = json.dumps([d.model_dump() for d in profile.detectors], sort_keys=True)
        scanner = self._profile_scanners.get(sig)
        if scanner is None:
            scanner = Scanner([compile_custom(d) for d in profile.detectors])
            if len(self._profile_scanners) > 256:
                self._profile_scanners.clear()
            self._profile_scanners[sig] = scanner
        return scanner

    def _leaf(self, job: _Job, text: str, path: str, key_norm: str | None, forced: str | None, keep: bool, number: bool = False) -> _Ref:
        job.leaves.append(_Leaf(text, path, key_norm, forced, keep, number=number))
        return _Ref(len(job.leaves) - 1)

    def _walk(
        self,
        job: _Job,
        value: Any,
        path: str,
        key: str | None,
        parent: str | None,
        forced: str | None,
        keep: bool,
        depth: int,
    ) -> Any:
        if depth > MAX_DEPTH:
            # Fail closed: a structure this deep is masked as one opaque value.
            return self._leaf(job, json.dumps(value, default=str)[:1000], path, None, "SENSITIVE", False)
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for k, v in value.items():
                orig = ks = str(k)
                kn = normalize_key(ks)
                key_is_value = False
                if len(ks) >= 6 or "@" in ks:
                    masked_key = self._mask_key(job, ks, path, keep)
                    if masked_key != ks:
                        key_is_value = True
                        while masked_key in out or masked_key in value:
                            masked_key += "'"
                        ks = masked_key
                child = _path_child(path, ks)
                c_forced, c_keep = forced, keep
                prof = job.profile
                if c_forced is None and key_is_value and isinstance(v, str) and _random_like(v) and any(
                    sp.entity == "SECRET" for sp in self._key_spans(job, orig, keep)
                ):
                    # {"AKIA…": "wJalrXUtnFEMI/K7MDENG…"}: a random string under a credential is
                    # its other half; a plain word ("primary") is not.
                    c_forced = "SECRET"
                if c_forced is None and not key_is_value:
                    if prof.keep_keys and _key_rule_matches(prof.keep_keys, kn, child):
                        c_keep = True
                    elif prof.mask_keys and _key_rule_matches(prof.mask_keys, kn, child):
                        c_forced = classify_key(orig, key or "") or "SENSITIVE"
                    elif not c_keep:
                        entity = classify_key(orig, key or "")
                        if entity is not None and "key_name" not in job.disabled and entity not in job.disabled:
                            c_forced = entity
                out[ks] = self._walk(job, v, child, orig, key, c_forced, c_keep, depth + 1)
            return out
        if isinstance(value, list | tuple):
            return [
                self._walk(job, v, f"{path}[{i}]", key, parent, forced, keep, depth + 1)
                for i, v in enumerate(value)
            ]
        if isinstance(value, str):
            leaf_kn = normalize_key(key) if key is not None else None
            if forced is None and len(value) >= 2 and value.lstrip()[:1] in "{[":
                try:
                    inner = json.loads(value)
                except ValueError:
                    inner = None
                if isinstance(inner, dict | list):
                    return _Embedded(self._walk(job, inner, f"{path}(json)", key, parent, None, keep, depth + 1))
            return self._leaf(job, value, path, leaf_kn, forced, keep)
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int | float):
            if forced is not None:
                return self._leaf(job, str(value), path, None, forced, keep, number=True)
            if isinstance(value, int) and len(str(abs(value))) >= _BIG_INT_DIGITS and not keep:
                return self._leaf(job, str(value), path, normalize_key(key) if key else None, None, keep, number=True)
            return value
        # Anything else (bytes, objects) is not JSON; masked whole rather than risked.
        return self._leaf(job, str(value), path, None, "SENSITIVE", False)

    def _key_spans(self, job: _Job, key: str, keep: bool) -> list[Span]:
        """What in an object key is itself a value to hide: a credential used as a key
        (``{"sk_live_…": "primary"}``), an e-mail, a card number. Keys repeat across payloads,
        so the answer is cached per key and switched-off set."""
        cache_key = (key, job.disabled, keep)
        spans = self._key_cache.get(cache_key)
        if spans is None:
            extra = self._extra_scanner(job.profile)
            found = self.scanner.scan(key, job.disabled)
            if extra is not None:
                found += extra.scan(key, job.disabled)
            found += self._nested(key, job.disabled, extra, 0.0, 1)
            found = [s for s in found if s.entity not in job.disabled]
            if keep:
                found = [s for s in found if s.entity == "SECRET"]
            spans = resolve(found, 0.0)
            if len(self._key_cache) > _KEY_CACHE_SIZE:
                self._key_cache.clear()
            self._key_cache[cache_key] = spans
        return [s for s in spans if s.confidence >= job.profile.min_confidence]

    def _mask_key(self, job: _Job, key: str, path: str, keep: bool = False) -> str:
        """An object key that is itself a value to hide (``{"ann@acme.com": {...}}``,
        ``{"AKIA…": {...}}``)."""
        prof = job.profile
        spans = self._key_spans(job, key, keep)
        if not spans:
            return key
        parts: list[str] = []
        pos = 0
        for s in spans:
            strategy = prof.strategy_for(s.entity, job.viewer_groups)
            if s.entity == "SECRET" and strategy is Strategy.PARTIAL:
                strategy = prof.partial_fallback
            token, applied = strategies.apply(strategy, s.entity, key[s.start : s.end], self.key, prof.partial_fallback)
            parts += [key[pos : s.start], token]
            pos = s.end
            job.key_findings.append(Finding(s.detector, s.entity, f"{path}.<key>", s.start, s.end, applied.value, round(s.confidence, 2)))
        parts.append(key[pos:])
        return "".join(parts)

    def _spans(self, text: str, disabled: frozenset[str], extra: Scanner | None, min_conf: float, depth: int) -> list[Span]:
        spans = self.scanner.scan(text, disabled)
        if extra is not None:
            spans += extra.scan(text, disabled)
        return spans + self._nested(text, disabled, extra, min_conf, depth)

    def _mapped(self, view: tuple[str, list[int], list[int]], offset: int, disabled: frozenset[str],
                extra: Scanner | None, min_conf: float, depth: int) -> list[Span]:
        """Spans found in a decoded view of ``text[offset:…]``, mapped back onto ``text``."""
        decoded, starts, ends = view
        return [
            Span(offset + starts[s.start], offset + ends[s.end - 1], s.entity, s.detector, s.confidence)
            for s in self._spans(decoded, disabled, extra, min_conf, depth + 1)
            if s.end > s.start
        ]

    def _nested(self, text: str, disabled: frozenset[str], extra: Scanner | None, min_conf: float, depth: int) -> list[Span]:
        """Findings in what ``text`` holds encoded or nested (:mod:`signoff.masking.encoded`),
        as spans of ``text`` itself."""
        out: list[Span] = []
        if depth >= MAX_DECODE_DEPTH or len(text) < 8:
            return out
        view = percent_view(text)
        if view is not None:
            out += self._mapped(view, 0, disabled, extra, min_conf, depth)
        for lo, hi in query_values(text):
            part = percent_view(text[lo:hi])
            if part is not None:
                out += self._mapped(part, lo, disabled, extra, min_conf, depth)
        ents = entity_view(text)
        if ents is not None:
            out += self._mapped(ents, 0, disabled, extra, min_conf, depth)
        for start, end, decoded in [*base64_runs(text), *hex_runs(text)]:
            inner = [
                s for s in self._spans(decoded, disabled, extra, min_conf, depth + 1)
                if s.confidence >= min_conf and s.entity not in disabled and s.detector not in disabled
            ]
            if inner:
                best = max(inner, key=lambda s: s.confidence)
                out.append(Span(start, end, best.entity, f"base64:{best.detector}", best.confidence))
        if ('{' in text or "[" in text) and '"' in text:
            # The contents of JSON string literals, each scanned on its own: an assignment
            # scan of the whole text reads ``"blob": "PGPASSWORD=…"`` as blob's value.
            for lo, hi in json_strings(text):
                esc = unescape_view(text[lo:hi])
                if esc is not None:
                    out += self._mapped(esc, lo, disabled, extra, min_conf, depth)
                    continue
                for s in self._spans(text[lo:hi], disabled, extra, min_conf, depth + 1):
                    out.append(Span(s.start + lo, s.end + lo, s.entity, s.detector, s.confidence))
        if "structure" not in disabled:
            for start, end, entity in structured_values(text):
                if entity not in disabled:
                    out.append(Span(start, end, entity, "structure", 0.85))
        return out

    def _detect(self, jobs: list[_Job]) -> None:
        ner_queue: list[_Leaf] = []
        for job in jobs:
            prof = job.profile
            extra = self._extra_scanner(prof)
            use_ner = (
                self.ner and prof.ner and "ner" not in job.disabled
                and not {"PERSON", "ORGANIZATION", "LOCATION"} <= job.disabled
            )
            for leaf in job.leaves:
                if leaf.forced is not None:
                    if leaf.text.strip():
                        leaf.spans = [Span(0, len(leaf.text), leaf.forced, "key_name", 1.0)]
                    continue
                spans = self.scanner.scan(leaf.text, job.disabled)
                if extra is not None:
                    spans += extra.scan(leaf.text, job.disabled)
                spans += self._nested(leaf.text, job.disabled, extra, prof.min_confidence, 0)
                if leaf.keep:
                    spans = [s for s in spans if s.entity == "SECRET"]
                leaf.spans = spans
                if use_ner and not leaf.keep and not leaf.number and ner_mod.wants_ner(leaf.text, leaf.key_norm):
                    ner_queue.append(leaf)
        if ner_queue:
            results = ner_mod.entities(
                [leaf.text for leaf in ner_queue],
                whole=[ner_mod.is_name_key(leaf.key_norm) and len(leaf.text) <= 200 for leaf in ner_queue],
            )
            for leaf, ents in zip(ner_queue, results, strict=True):
                leaf.spans.extend(Span(s, e, ent, "ner", c) for s, e, ent, c in ents)

    def _finish(
        self, jobs: list[_Job], vault: dict[str, str] | None = None, key: bytes | None = None
    ) -> list[MaskResult]:
        self._detect(jobs)
        hkey = key or self.key
        results = []
        for job in jobs:
            findings: list[Finding] = list(job.key_findings)
            replaced: list[Any] = []
            prof = job.profile
            for leaf in job.leaves:
                spans = [s for s in leaf.spans if s.entity not in job.disabled and s.detector not in job.disabled]
                spans = resolve(spans, prof.min_confidence)
                if not spans:
                    replaced.append(None)
                    continue
                parts: list[str] = []
                pos = 0
                for s in spans:
                    original = leaf.text[s.start : s.end]
                    strategy = prof.strategy_for(s.entity, job.viewer_groups)
                    if s.entity == "SECRET" and strategy is Strategy.PARTIAL:
                        strategy = prof.partial_fallback
                    token, applied = strategies.apply(strategy, s.entity, original, hkey, prof.partial_fallback)
                    if vault is not None:
                        vault.setdefault(token, original)
                    parts.append(leaf.text[pos : s.start])
                    parts.append(token)
                    pos = s.end
                    findings.append(Finding(s.detector, s.entity, leaf.path, s.start, s.end, applied.value, round(s.confidence, 2)))
                parts.append(leaf.text[pos:])
                replaced.append("".join(parts))
            masked = _rebuild(job.skeleton, job.leaves, replaced)
            results.append(MaskResult(masked, findings))
        return results


def _rebuild(node: Any, leaves: list[_Leaf], replaced: list[Any]) -> Any:
    if isinstance(node, _Ref):
        i = int(node)
        new = replaced[i]
        if new is None:
            leaf = leaves[i]
            if leaf.number:
                # untouched number: give back the number itself
                text = leaf.text
                try:
                    return int(text)
                except ValueError:
                    return float(text)
            return leaf.text
        return new
    if isinstance(node, dict):
        return {k: _rebuild(v, leaves, replaced) for k, v in node.items()}
    if isinstance(node, list):
        return [_rebuild(v, leaves, replaced) for v in node]
    if isinstance(node, _Embedded):
        return json.dumps(_rebuild(node.skeleton, leaves, replaced), ensure_ascii=False)
    return node
