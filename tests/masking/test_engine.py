"""JSON structure, key-name context, strategies, pseudonyms, report, vault, CLI."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from signoff.masking import (
    Finding,
    Masker,
    MaskingConfig,
    MaskingProfile,
    MaskResult,
    Vault,
    sanitize,
)
from signoff.masking.keys import classify_key

PAYLOAD = {
    "action": "db.export",
    "params": {
        "customer": {"name": "John Smith", "email": "john.smith@acme.com", "id": 42},
        "cards": ["4111 1111 1111 1111", {"number": "5555555555554444"}],
        "apiKey": "not-a-known-format",
        "headers": {"Authorization": "Basic dXNlcjpwYXNz", "X-Request-Id": "r-1"},
        "dsn": "postgres://admin:s3cret@db.internal:5432/app",
        "body": json.dumps({"password": "hunter2", "ok": True}),
        "max_tokens": 1024,
        "flags": [True, None, 1.5],
    },
}


def shape(value: object) -> object:
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__ if not isinstance(value, bool | type(None)) else value


def test_structure_preserved(masker: Masker) -> None:
    r = masker.mask(PAYLOAD)
    assert isinstance(r, MaskResult)
    assert shape(r.masked) == shape(PAYLOAD)
    assert r.masked["action"] == "db.export"
    assert r.masked["params"]["max_tokens"] == 1024
    assert r.masked["params"]["flags"] == [True, None, 1.5]
    assert r.masked["params"]["customer"]["id"] == 42
    assert r.masked["params"]["headers"]["X-Request-Id"] == "r-1"
    body = json.loads(r.masked["params"]["body"])
    assert body == {"password": "[SECRET]", "ok": True}
    assert r.masked["params"]["dsn"] == "postgres://admin:[SECRET]@db.internal:5432/app"


def test_nothing_leaks(masker: Masker) -> None:
    out = json.dumps(masker.mask(PAYLOAD).masked)
    for secret in ("John Smith", "john.smith@acme.com", "4111 1111 1111 1111", "5555555555554444", "not-a-known-format", "dXNlcjpwYXNz", "s3cret", "hunter2"):
        assert secret not in out


def test_findings_report(masker: Masker) -> None:
    r = masker.mask(PAYLOAD)
    paths = {f.path: f for f in r.findings}
    assert paths["$.params.customer.email"].entity == "EMAIL"
    assert paths["$.params.cards[0]"].entity == "CREDIT_CARD"
    assert paths["$.params.cards[1].number"].entity == "CREDIT_CARD"
    assert paths["$.params.body(json).password"].entity == "SECRET"
    d = paths["$.params.dsn"].to_dict()
    assert set(d) == {"detector", "entity", "path", "start", "end", "strategy", "confidence"}
    assert "s3cret" not in json.dumps([f.to_dict() for f in r.findings])
    assert r.counts()["CREDIT_CARD"] == 2
    assert r.summary().startswith(f"{len(r.findings)} fields masked: ")
    assert "2 CREDIT_CARD" in r.summary()
    assert masker.mask({"a": "nothing here"}).summary() == "nothing masked"
    assert MaskResult("x", [Finding("d", "EMAIL", "$", 0, 1, "redact", 1.0)]).summary() == "1 field masked: 1 EMAIL"


@pytest.mark.parametrize("key", ["password", "PASSWORD", "apiKey", "API-KEY", "x-api-key", "db_password", "Authorization", "client.secret", "accessToken", "refresh_token", "private_key", "stripeKey", "Set-Cookie", "auth", "PassPhrase"])
def test_secret_key_names(masker: Masker, key: str) -> None:
    assert classify_key(key) == "SECRET"
    r = masker.mask({key: "plain"})
    assert r.masked == {key: "[SECRET]"}


@pytest.mark.parametrize("key", ["max_tokens", "token_count", "s3_key", "primary_key", "keyboard", "author", "id", "reason", "monkey", "passenger", "kms_key_id", "public_key", "hotel"])
def test_benign_key_names(key: str) -> None:
    assert classify_key(key) != "SECRET"


def test_key_context_pii(masker: Masker) -> None:
    r = masker.mask({"ssn": "whatever", "customer": {"name": "Ann Lee"}, "project": {"name": "apollo"}, "dob": 19840307, "phone_number": "n/a"})
    assert r.masked == {"ssn": "[US_SSN]", "customer": {"name": "[PERSON]"}, "project": {"name": "apollo"}, "dob": "[DATE_OF_BIRTH]", "phone_number": "[PHONE]"}


def test_nested_secret_subtree(masker: Masker) -> None:
    r = masker.mask({"credentials": {"user": "bob", "list": ["a", 1]}})
    assert r.masked == {"credentials": {"user": "[SECRET]", "list": ["[SECRET]", "[SECRET]"]}}


def test_numbers(masker: Masker) -> None:
    r = masker.mask({"card": 4111111111111111, "count": 4111111111111112, "pin": 1234})
    assert r.masked == {"card": "[CREDIT_CARD]", "count": 4111111111111112, "pin": "[SECRET]"}


def test_pseudonyms_stable_and_keyed() -> None:
    a, b = Masker(key=b"one", ner=False), Masker(key=b"two", ner=False)
    prof = MaskingProfile(strategy="pseudonymize")
    p = {"to": "ann@acme.com", "cc": ["ann@acme.com", "bob@acme.com"], "note": "ask ANN@acme.com"}
    r1 = a.mask(p, prof).masked
    assert r1["to"] == r1["cc"][0] == r1["note"].split()[-1]
    assert r1["to"] != r1["cc"][1]
    assert r1["to"].startswith("<EMAIL_") and len(r1["to"]) == len("<EMAIL_3f9a2c>")
    assert a.mask(p, prof).masked == r1  # across requests, same key
    assert b.mask(p, prof).masked["to"] != r1["to"]  # other key
    # same card written two ways -> same pseudonym
    r = a.mask({"x": "4111 1111 1111 1111", "y": "4111-1111-1111-1111"}, prof).masked
    assert r["x"] == r["y"]


def test_strategies_by_viewer(masker: Masker) -> None:
    prof = MaskingProfile.model_validate({
        "name": "finance",
        "entities": {"EMAIL": "partial", "CREDIT_CARD": "partial", "SECRET": "partial", "US_SSN": "hash"},
        "partial_groups": ["finance-approvers"],
    })
    p = {"email": "jane@acme.com", "card": "4111 1111 1111 1234".replace("1234", "1111"), "token": "abcd1234efgh", "ssn": "536-22-1234"}
    seen = masker.mask(p, prof, viewer_groups=["finance-approvers"])
    assert seen.masked["email"] == "j***@acme.com"
    assert seen.masked["card"] == "****1111"
    assert seen.masked["token"] == "[SECRET]"  # secrets never partial
    assert seen.masked["ssn"].startswith("<US_SSN#") and len(seen.masked["ssn"]) == len("<US_SSN#0123456789abcdef>")
    assert {f.strategy for f in seen.findings} == {"partial", "redact", "hash"}
    other = masker.mask(p, prof, viewer_groups=["eng"])
    assert other.masked["email"] == "[EMAIL]" and other.masked["card"] == "[CREDIT_CARD]"
    logs = masker.mask(p, prof)
    assert logs.masked["email"] == "[EMAIL]"


def test_keep_and_mask_keys(masker: Masker) -> None:
    prof = MaskingProfile(mask_keys=["internal_note", "$.params.*.code"], keep_keys=["support_email"])
    r = masker.mask({"internal_note": "hello", "params": {"x": {"code": "A1"}}, "support_email": "help@acme.com", "other": "help@acme.com", "kept_secret": "x"}, prof)
    assert r.masked["internal_note"] == "[SENSITIVE]"
    assert r.masked["params"]["x"]["code"] == "[SENSITIVE]"
    assert r.masked["support_email"] == "help@acme.com"
    assert r.masked["other"] == "[EMAIL]"
    # credentials in known formats are masked even under keep_keys
    prof2 = MaskingProfile(keep_keys=["log"])
    r2 = masker.mask({"log": "token ghp_" + "x1Y2" * 9}, prof2)
    assert "ghp_" not in r2.masked["log"]


def test_disabled_detectors(masker: Masker) -> None:
    p = {"note": "mail a@b.com or call +1 415 555 0132"}
    r = masker.mask(p, MaskingProfile(disable_detectors=["phone"]))
    assert r.masked["note"] == "mail [EMAIL] or call +1 415 555 0132"
    r = masker.mask(p, disabled_detectors=["EMAIL"])
    assert r.masked["note"] == "mail a@b.com or call [PHONE]"


def test_masking_config_from_policy_yaml() -> None:
    import yaml

    doc = yaml.safe_load("""
masking:
  detectors:
    - {id: ticket, entity: TICKET, pattern: 'SEC-\\d{4}'}
  profiles:
    default:
      strategy: redact
    finance:
      entities: {EMAIL: partial}
      partial_groups: [finance]
      disable_detectors: [ipv4]
""")
    cfg = MaskingConfig.model_validate(doc["masking"])
    prof = cfg.profile("finance", disable_detectors=["phone"])
    assert prof.name == "finance" and prof.disabled_detectors == ["ipv4", "phone"]
    m = Masker(key=b"k", ner=False)
    r = m.mask_text("SEC-1234 from 10.0.0.1 by a@b.com", prof, ["finance"])
    assert r.masked == "[TICKET] from 10.0.0.1 by a***@b.com"
    with pytest.raises(KeyError):
        cfg.profile("nope")


def test_bad_profiles_rejected() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        MaskingProfile.model_validate({"strategy": "shred"})
    with pytest.raises(ValidationError):
        MaskingProfile.model_validate({"detectors": [{"id": "x", "pattern": "("}]})
    with pytest.raises(ValidationError):
        MaskingProfile.model_validate({"detectors": [{"id": "x", "pattern": "a", "validator": "nope"}]})
    with pytest.raises(ValidationError):
        MaskingProfile.model_validate({"unknown_field": 1})


def test_sanitize_and_restore() -> None:
    text = "Email ann@acme.com, card 4111111111111111, key AKIAZ3MSJV4WWXEXAMPL; again ann@acme.com"
    safe, vault = sanitize(text)
    assert "ann@acme.com" not in safe and "4111111111111111" not in safe and "AKIAZ3MSJV4WWXEXAMPL" not in safe
    assert safe.count(safe.split()[1].rstrip(",")) == 2  # same value, same placeholder
    assert vault.restore(safe) == text
    llm = f"I will write to {safe.split()[1].rstrip(',').strip('<>')} now."  # brackets dropped
    assert "ann@acme.com" in vault.restore(llm)
    again = Vault.from_dict(json.loads(json.dumps(vault.to_dict())))
    assert again.restore(safe) == text
    s1, _ = sanitize("ann@acme.com", key=b"k")
    s2, _ = sanitize("ann@acme.com", key=b"k")
    assert s1 == s2


def test_depth_guard(masker: Masker) -> None:
    deep: object = "secret-value-at-the-bottom"
    for _ in range(200):
        deep = [deep]
    out = json.dumps(masker.mask(deep).masked)
    assert "secret-value-at-the-bottom" not in out


def test_cli_json_and_text(tmp_path) -> None:
    from workers.cli.mask import mask

    runner = CliRunner()
    res = runner.invoke(mask, ["--no-ner"], input='{"user": {"email": "a@b.com"}, "n": 1}')
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["masked"] == {"user": {"email": "[EMAIL]"}, "n": 1}
    assert out["findings"][0]["path"] == "$.user.email"
    assert set(out["findings"][0]) >= {"detector", "entity", "path", "start", "end", "strategy"}
    res = runner.invoke(mask, ["--text", "--no-ner"], input="login with password=hunter2")
    assert json.loads(res.output)["masked"] == "login with password=[SECRET]"
    res = runner.invoke(mask, ["--no-ner"], input="not json")
    assert res.exit_code != 0
    pol = tmp_path / "policy.yaml"
    pol.write_text("masking:\n  profiles:\n    fin:\n      entities: {EMAIL: partial}\n      partial_groups: [fin]\n")
    f = tmp_path / "doc.json"
    f.write_text('{"email": "ann@acme.com"}')
    res = runner.invoke(mask, [str(f), "--no-ner", "--policy", str(pol), "--profile", "fin", "--viewer", "fin"])
    assert json.loads(res.output)["masked"] == {"email": "a***@acme.com"}
    res = runner.invoke(mask, [str(f), "--no-ner", "--profile", "nope"])
    assert res.exit_code != 0


def test_keys_that_are_personal_data(masker: Masker) -> None:
    r = masker.mask({"visits_by_user": {"ann@acme.com": {"visits": 3}, "bob@acme.com": 1}, "4111111111111111": "x"})
    out = json.dumps(r.masked) + json.dumps([f.to_dict() for f in r.findings])
    assert "ann@acme.com" not in out and "bob@acme.com" not in out and "4111111111111111" not in out
    assert len(r.masked["visits_by_user"]) == 2  # distinct keys stay distinct
    assert r.counts() == {"EMAIL": 2, "CREDIT_CARD": 1}
