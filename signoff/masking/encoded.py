"""Content inside a string that the pattern scan cannot read as it stands.

- **URL-encoding** (``password%3Dhunter2``, ``%7B%22token%22%3A…``): decoded with a map from
  every decoded character back to the original characters, so a finding in the decoded text
  masks exactly the encoded bytes it came from.
- **base64** (``eyJ…``, ``ZGJfcGFzc3dvcmQ9…``, a Kubernetes ``data:`` value): runs that decode to
  readable text are scanned again; when that text holds anything to hide, the whole run is
  masked (half a base64 string is no use to a reviewer, and its other half would still decode).
- **Nested structure in text** (a YAML document, an INI file, a JSON object in a string that is
  not only JSON): a value is sensitive because of an *enclosing* key (``secrets:`` →
  ``db: hunter2``, ``[credentials]`` → ``token = …``). The structure is read (PyYAML for YAML and
  JSON, section headers for INI) and every value under a credential or personal-data key is
  located in the original text.

The engine calls these for every string it scans (:meth:`signoff.masking.engine.Masker`), and
again on what they decode, a few levels deep.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import re
from collections.abc import Iterator
from typing import Any

import yaml

from signoff.masking.keys import classify_key

PCT_RE = re.compile(r"%[0-9A-Fa-f]{2}")
_PCT_TOKENS = re.compile(r"(?:%[0-9A-Fa-f]{2})+|[^%]+|%")
B64_RE = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{20,}={0,2}(?![A-Za-z0-9+/=_-])")
_HEX_ONLY = re.compile(r"^[0-9a-fA-F]+$")


def percent_view(text: str) -> tuple[str, list[int], list[int]] | None:
    """``(decoded, starts, ends)``: decoded character ``i`` came from ``text[starts[i]:ends[i]]``;
    None when there is nothing percent-encoded."""
    if "%" not in text or not PCT_RE.search(text):
        return None
    # A form body or query string (no spaces, '+' between words) writes a space as '+'.
    plus_space = "+" in text and " " not in text
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for m in _PCT_TOKENS.finditer(text):
        tok = m.group(0)
        if tok.startswith("%") and len(tok) >= 3:
            chars = bytes.fromhex(tok.replace("%", "")).decode("utf-8", "replace")
            for c in chars:
                out.append(c)
                starts.append(m.start())
                ends.append(m.end())
        else:
            for i, c in enumerate(tok):
                out.append(" " if plus_space and c == "+" else c)
                starts.append(m.start() + i)
                ends.append(m.start() + i + 1)
    decoded = "".join(out)
    return (decoded, starts, ends) if decoded != text else None


HEX_RUN_RE = re.compile(r"(?<![0-9A-Za-z])(?:0x)?((?:[0-9a-fA-F]{2}){12,})(?![0-9A-Za-z])")


def hex_runs(text: str) -> Iterator[tuple[int, int, str]]:
    """``(start, end, decoded)`` for hex runs that decode to readable text (``70617373…``);
    hashes and ids decode to bytes that are not text and are left alone."""
    if len(text) < 24:
        return
    for m in HEX_RUN_RE.finditer(text):
        decoded = _readable(bytes.fromhex(m.group(1)))
        if decoded is not None:
            yield (m.start(), m.end(), decoded)


_ENTITY_RE = re.compile(r"&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")


def entity_view(text: str) -> tuple[str, list[int], list[int]] | None:
    """HTML/XML character references decoded (``&lt;password&gt;``), with a character map like
    :func:`percent_view`; None when there are none."""
    if "&" not in text or ";" not in text or not _ENTITY_RE.search(text):
        return None

    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    for m in _ENTITY_RE.finditer(text):
        for i in range(pos, m.start()):
            out.append(text[i])
            starts.append(i)
            ends.append(i + 1)
        for c in html.unescape(m.group(0)):
            out.append(c)
            starts.append(m.start())
            ends.append(m.end())
        pos = m.end()
    for i in range(pos, len(text)):
        out.append(text[i])
        starts.append(i)
        ends.append(i + 1)
    decoded = "".join(out)
    return (decoded, starts, ends) if decoded != text else None


def _readable(raw: bytes) -> str | None:
    if len(raw) < 12:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(1 for c in text if c.isprintable() or c in "\n\r\t")
    return text if printable >= 0.95 * len(text) else None


def base64_runs(text: str) -> Iterator[tuple[int, int, str]]:
    """``(start, end, decoded)`` for every base64 (standard or URL-safe) run of ``text`` that
    decodes to readable UTF-8 text. Hex strings (hashes, ids) are not tried."""
    if len(text) < 20:
        return
    for m in B64_RE.finditer(text):
        run = m.group(0)
        if _HEX_ONLY.match(run):
            continue
        body = run.rstrip("=")
        padded = body + "=" * (-len(body) % 4)
        decoded = None
        for decoder in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                decoded = _readable(decoder(padded))
            except (binascii.Error, ValueError):
                decoded = None
            if decoded is not None:
                break
        if decoded is not None:
            yield (m.start(), m.end(), decoded)


# --- structure: values sensitive because of an enclosing key ------------------------------------
_YAML_BLOCK_KEY = re.compile(r"(?m)^[ \t-]*[\"']?[\w.-]+[\"']?[ \t]*:[ \t]*(?:[|>][-+]?)?[ \t]*$")
_INI_SECTION = re.compile(r"(?m)^[ \t]*\[([^\]\n]{1,100})\][ \t]*$")
_INI_LINE = re.compile(r"(?m)^[ \t]*([\w.-]{1,100})[ \t]*[=:][ \t]*(.+?)[ \t]*$")


def _collect(value: Any, inherited: str | None, parent: str, out: list[tuple[str, str]], depth: int = 0) -> None:
    if depth > 32:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            ks = str(k)
            entity = inherited or classify_key(ks, parent)
            if entity == "ADDRESS" and not isinstance(v, str):
                entity = None
            _collect(v, entity, ks, out, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _collect(v, inherited, parent, out, depth + 1)
    elif inherited is not None and value is not None and not isinstance(value, bool):
        s = str(value).strip()
        if s:
            out.append((s, inherited))


def _locate(text: str, found: list[tuple[str, str]]) -> Iterator[tuple[int, int, str]]:
    for value, entity in found:
        for line in value.splitlines() or [value]:
            line = line.strip()
            if len(line) < 2:
                continue
            pat = re.compile(r"(?<![\w])" + re.escape(line) + r"(?![\w])")
            for m in pat.finditer(text):
                yield (m.start(), m.end(), entity)


def structured_values(text: str) -> Iterator[tuple[int, int, str]]:
    """Spans of values that an enclosing key makes sensitive, in YAML, JSON or INI text."""
    as_json = looks_like_json(text)
    if as_json is not None:
        found_json: list[tuple[str, str]] = []
        _collect(as_json, None, "", found_json)
        yield from _locate(text, found_json)
        return
    if "{" in text and '"' in text:
        # JSON objects inside other text (``payload={"auth": {...}}&page=2``, a log line).
        found_inner: list[tuple[str, str]] = []
        for value in embedded_json(text):
            _collect(value, None, "", found_inner)
        yield from _locate(text, found_inner)
    if "\n" not in text:
        return
    if _YAML_BLOCK_KEY.search(text):
        try:
            doc = yaml.safe_load(text)
        except Exception:  # not YAML after all (any parser error)
            doc = None
        if isinstance(doc, dict | list):
            found: list[tuple[str, str]] = []
            _collect(doc, None, "", found)
            yield from _locate(text, found)
    if "[" in text and _INI_SECTION.search(text):
        sections = list(_INI_SECTION.finditer(text))
        for i, sec in enumerate(sections):
            entity = classify_key(sec.group(1).strip().split(".")[-1].split()[-1] if sec.group(1).strip() else "")
            if entity is None or entity == "ADDRESS":
                continue
            end = sections[i + 1].start() if i + 1 < len(sections) else len(text)
            for line in _INI_LINE.finditer(text, sec.end(), end):
                yield (line.start(2), line.end(2), entity)


QUERY_VALUE_RE = re.compile(r"(?:(?<=[?&;])|^)[\w.\-\[\]%+]{1,100}=([^&#\s]+)")


def query_values(text: str) -> Iterator[tuple[int, int]]:
    """Spans of the (still encoded) values of a query string or form body, each of which is
    decoded and read on its own: decoding the whole string first would merge a value's own
    ``%26`` with the separators."""
    if "=" not in text or ("&" not in text and "?" not in text):
        return
    for m in QUERY_VALUE_RE.finditer(text):
        if m.end(1) - m.start(1) >= 8:
            yield (m.start(1), m.end(1))


_JSON_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def unescape_view(body: str) -> tuple[str, list[int], list[int]] | None:
    """A JSON string literal's contents unescaped, with the same character map as
    :func:`percent_view`; None when there is no escape."""
    if "\\" not in body:
        return None
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c == "\\" and i + 1 < n:
            nxt = body[i + 1]
            if nxt == "u" and i + 6 <= n:
                try:
                    out.append(chr(int(body[i + 2 : i + 6], 16)))
                except ValueError:
                    out.append(nxt)
                starts.append(i)
                ends.append(i + 6)
                i += 6
                continue
            out.append(_JSON_ESCAPES.get(nxt, nxt))
            starts.append(i)
            ends.append(i + 2)
            i += 2
            continue
        out.append(c)
        starts.append(i)
        ends.append(i + 1)
        i += 1
    return "".join(out), starts, ends


_DECODER = json.JSONDecoder()
JSON_STRING_RE = re.compile(r'"((?:[^"\\\n]|\\.){8,4000})"')


def embedded_json(text: str, limit: int = 16) -> Iterator[Any]:
    """JSON objects that start somewhere inside ``text`` (at most ``limit`` tried)."""
    pos = text.find("{")
    tried = 0
    while pos >= 0 and tried < limit:
        tried += 1
        try:
            value, end = _DECODER.raw_decode(text, pos)
        except ValueError:
            pos = text.find("{", pos + 1)
            continue
        if isinstance(value, dict) and value:
            yield value
        pos = text.find("{", end)


def json_strings(text: str) -> Iterator[tuple[int, int]]:
    """Spans of the contents of JSON string literals in ``text`` that may hold an assignment
    or a command line of their own (``"cmd": "PGPASSWORD=… pg_dump"``)."""
    if '"' not in text:
        return
    for m in JSON_STRING_RE.finditer(text):
        body = m.group(1)
        if "=" in body or " " in body or ":" in body:
            yield (m.start(1), m.end(1))


def looks_like_json(text: str) -> Any:
    """The parsed value when ``text`` is a JSON object or array, else None."""
    t = text.strip()
    if len(t) < 2 or t[0] not in "{[":
        return None
    try:
        value = json.loads(t)
    except ValueError:
        return None
    return value if isinstance(value, dict | list) else None
