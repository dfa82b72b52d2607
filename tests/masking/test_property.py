"""Property: no planted value ever appears in masked output, whatever the structure, the
placement, the strategy or the viewer."""

from __future__ import annotations

import json
import string
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signoff.masking import Masker, MaskingProfile

MASKER = Masker(key=b"property key", ner=False)
ALNUM = string.ascii_letters + string.digits

PROFILES = [
    MaskingProfile(),
    MaskingProfile(strategy="pseudonymize"),
    MaskingProfile(strategy="hash"),
    MaskingProfile(strategy="partial", partial_groups=["*"]),
    MaskingProfile(strategy="partial", partial_groups=["finance"], partial_fallback="pseudonymize"),
]


def luhn_complete(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


def text_of(alphabet: str, n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=n, max_size=n)


cards = st.builds(lambda p, rest: luhn_complete((p + rest)[:15]), st.sampled_from(["4", "51", "52", "6011"]), st.text("0123456789", min_size=14, max_size=14))
cards = cards.filter(lambda c: len(set(c)) > 2)
aws = text_of(string.ascii_uppercase + "234567", 16).map(lambda s: "AKIA" + s)
github = text_of(ALNUM, 36).map(lambda s: "ghp_" + s)
slack = st.tuples(st.integers(10**9, 10**12), text_of(ALNUM, 24)).map(lambda t: f"xoxb-{t[0]}-{t[1]}")
stripe = text_of(ALNUM, 24).map(lambda s: "sk_live_" + s)
emails = st.tuples(text_of(string.ascii_lowercase, 6), text_of(string.ascii_lowercase, 5)).map(lambda t: f"{t[0]}.x@{t[1]}.com")
ssns = st.tuples(st.integers(1, 665), st.integers(1, 99), st.integers(1, 9999)).map(lambda t: f"{t[0]:03d}-{t[1]:02d}-{t[2]:04d}")
passwords = st.text(alphabet=ALNUM + "!#$%^*()_+-", min_size=10, max_size=24).filter(lambda s: any(c.isdigit() for c in s) and any(c.isalpha() for c in s))
jwts = st.tuples(text_of(ALNUM, 20), text_of(ALNUM, 30), text_of(ALNUM + "_-", 43)).map(lambda t: f"eyJ{t[0]}.eyJ{t[1]}.{t[2]}")

formatted = st.one_of(cards, aws, github, slack, stripe, emails, ssns, jwts)
filler = st.text(alphabet=string.ascii_lowercase + " ", max_size=30)
neutral_keys = st.sampled_from(["note", "data", "items", "params", "value", "x", "misc", "payload", "config", "args"])
secret_keys = st.sampled_from(["password", "apiKey", "X-API-KEY", "db_password", "Authorization", "client_secret", "accessToken", "ssn", "creditCardNumber", "privateKey"])


@st.composite
def planted(draw: Any) -> tuple[Any, list[str]]:
    """A JSON value with secrets placed in several ways, and the list of planted values."""
    values: list[str] = []

    def leaf() -> Any:
        how = draw(st.sampled_from(["formatted_text", "secret_key", "url", "embedded_json", "query", "plain"]))
        if how == "formatted_text":
            v = draw(formatted)
            values.append(v)
            return f"{draw(filler)} {v} {draw(filler)}".strip()
        if how == "secret_key":
            v = draw(passwords | formatted)
            values.append(v)
            return {draw(secret_keys): v}
        if how == "url":
            v = draw(passwords.filter(lambda s: not any(c in s for c in "#/?%")))
            values.append(v)
            return f"postgres://svc:{v}@db.internal:5432/app"
        if how == "embedded_json":
            v = draw(passwords | formatted)
            values.append(v)
            return json.dumps({"user": "svc", draw(secret_keys): v})
        if how == "query":
            v = draw(text_of(ALNUM, 20).filter(lambda s: any(c.isdigit() for c in s)))
            values.append(v)
            return f"https://api.example.com/v1?page=2&api_key={v}&x=1"
        return draw(filler)

    def node(depth: int) -> Any:
        if depth >= 3 or draw(st.booleans()):
            return leaf()
        if draw(st.booleans()):
            return [node(depth + 1) for _ in range(draw(st.integers(1, 3)))]
        return {draw(neutral_keys) + str(i): node(depth + 1) for i in range(draw(st.integers(1, 3)))}

    value = node(0)
    return value, values


def all_strings(value: Any) -> list[str]:
    out: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            out.append(str(k))
            out.extend(all_strings(v))
    elif isinstance(value, list):
        for v in value:
            out.extend(all_strings(v))
    else:
        out.append(str(value))
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(planted(), st.sampled_from(PROFILES), st.sampled_from([(), ("finance",), ("eng",)]))
def test_no_planted_value_survives(doc: tuple[Any, list[str]], profile: MaskingProfile, viewers: tuple[str, ...]) -> None:
    payload, values = doc
    result = MASKER.mask(payload, profile=profile, viewer_groups=viewers)
    strings = all_strings(result.masked)
    dumped = json.dumps(result.masked, ensure_ascii=False)
    report = json.dumps([f.to_dict() for f in result.findings])
    for v in values:
        assert v not in dumped, (v, dumped)
        assert all(v not in s for s in strings), (v, strings)
        assert v not in report
    if values:
        assert result.findings


@settings(max_examples=100, deadline=None)
@given(st.lists(formatted, min_size=1, max_size=4), filler)
def test_text_mode_no_leak(values: list[str], pad: str) -> None:
    text = f" {pad} ".join(values)
    for profile in PROFILES:
        masked = MASKER.mask_text(text, profile=profile, viewer_groups=("finance",)).masked
        for v in values:
            assert v not in masked, (v, masked)
