"""Per-detector positive and negative cases, including near-misses."""

from __future__ import annotations

import pytest

from signoff.masking import Masker
from signoff.masking import validators as v


def found(masker: Masker, text: str) -> list[tuple[str, str, str]]:
    r = masker.mask_text(text)
    return [(f.entity, f.detector, text[f.start : f.end]) for f in r.findings]


def entities(masker: Masker, text: str) -> set[str]:
    return {e for e, _, _ in found(masker, text)}


# --- validators -------------------------------------------------------------------------------
@pytest.mark.parametrize("number", ["4111111111111111", "4012-8888-8888-1881", "371449635398431", "5555 5555 5555 4444", "6011000400000000", "3528000700000000", "30569309025904"])
def test_luhn_cards_valid(number: str) -> None:
    assert v.credit_card(number)


@pytest.mark.parametrize("number", ["4111111111111112", "4012-8888-8888-1882", "1234567812345678", "0000000000000000", "36168002586008"])
def test_cards_failing_luhn_or_prefix(number: str) -> None:
    assert not v.credit_card(number)


@pytest.mark.parametrize("iban", ["DE89370400440532013000", "GB82 WEST 1234 5698 7654 32", "AL47 2121 1009 0000 0002 3569 8741", "BE68539007547034"])
def test_iban_valid(iban: str) -> None:
    assert v.iban(iban)


@pytest.mark.parametrize("iban", ["DE89370400440532013001", "GB82 WEST 1234 5698 7654 3", "XX89370400440532013000", "AT61 1904 A002 3457 3201"])
def test_iban_invalid(iban: str) -> None:
    assert not v.iban(iban)


@pytest.mark.parametrize("ssn,ok", [("078-05-1123", True), ("536-22-1234", True), ("000-12-3456", False), ("666-12-3456", False), ("900-12-3456", False), ("123-00-4567", False), ("123-45-0000", False), ("078-05-1120", False), ("123-45 6789", False)])
def test_ssn_rules(ssn: str, ok: bool) -> None:
    assert v.us_ssn(ssn) is ok


# --- detectors in text ------------------------------------------------------------------------
def test_card_positive_and_near_miss(masker: Masker) -> None:
    assert ("CREDIT_CARD", "credit_card", "4111 1111 1111 1111") in found(masker, "card 4111 1111 1111 1111 exp 12/29")
    # 16 digits failing Luhn: not a card
    assert "CREDIT_CARD" not in entities(masker, "order 4111 1111 1111 1112 shipped")
    # too long run of digits is not a card either
    assert "CREDIT_CARD" not in entities(masker, "id 41111111111111110000000")


def test_iban_in_text(masker: Masker) -> None:
    assert ("IBAN", "iban", "DE89 3704 0044 0532 0130 00") in found(masker, "pay to DE89 3704 0044 0532 0130 00 and thanks")
    assert "IBAN" not in entities(masker, "pay to DE89 3704 0044 0532 0130 01")


def test_ssn_in_text(masker: Masker) -> None:
    assert ("US_SSN", "us_ssn", "536-22-1234") in found(masker, "SSN 536-22-1234")
    assert "US_SSN" not in entities(masker, "code 666-22-1234")
    # bare nine digits only with context
    assert "US_SSN" in entities(masker, "her social security number is 536221234")
    assert "US_SSN" not in entities(masker, "invoice 536221234")


@pytest.mark.parametrize("text,value", [
    ("call (415) 555-0132 now", "(415) 555-0132"),
    ("intl +44 20 7123 4567", "+44 20 7123 4567"),
    ("Brazil: +55 11 98456 5666", "+55 11 98456 5666"),
    ("please call 4155550132", "4155550132"),
])
def test_phone_positive(masker: Masker, text: str, value: str) -> None:
    assert ("PHONE", "phone", value) in found(masker, text)


@pytest.mark.parametrize("text", ["build 2024-01-15", "order 4155550132", "version 1.2.3.4", "ratio 123-456"])
def test_phone_negative(masker: Masker, text: str) -> None:
    assert "PHONE" not in entities(masker, text)


def test_email(masker: Masker) -> None:
    assert ("EMAIL", "email", "jane.doe+x@example.co.uk") in found(masker, "mail jane.doe+x@example.co.uk.")
    assert "EMAIL" not in entities(masker, "my email is info@presidio.")
    assert "EMAIL" not in entities(masker, "hello-world here @ home")


def test_ip_and_mac(masker: Masker) -> None:
    assert ("IP_ADDRESS", "ipv4", "192.168.0.1") in found(masker, "from 192.168.0.1")
    assert ("IP_ADDRESS", "ipv6", "2a00:1450:4001:81b::8a2e:370") in found(masker, "from 2a00:1450:4001:81b::8a2e:370")
    assert "IP_ADDRESS" not in entities(masker, "from 2001:db8::8a2e:370:7334")  # documentation prefix
    assert "IP_ADDRESS" not in entities(masker, "from 192.168.0.256")
    assert "IP_ADDRESS" not in entities(masker, "Version 1.2.3.4")
    assert "IP_ADDRESS" not in entities(masker, "Time 12:34:56")
    assert ("MAC_ADDRESS", "mac_address", "00:1A:2B:3C:4D:5E") in found(masker, "MAC 00:1A:2B:3C:4D:5E")
    assert "MAC_ADDRESS" not in entities(masker, "MAC FF:FF:FF:FF:FF:FF")
    assert "MAC_ADDRESS" not in entities(masker, "mixed 10:2F:33-AC-29-C3")


def test_date_of_birth_needs_context(masker: Masker) -> None:
    assert "DATE_OF_BIRTH" in entities(masker, "born on 1984-03-07 in Ohio")
    assert "DATE_OF_BIRTH" in entities(masker, "DOB: 03/07/1984")
    assert "DATE_OF_BIRTH" not in entities(masker, "deploy on 2024-03-07")


@pytest.mark.parametrize("text,secret", [
    ("AKIAZ3MSJV4WWXEXAMPL", "AKIAZ3MSJV4WWXEXAMPL"),
    ("token ghp_" + "a1B2" * 9, "ghp_" + "a1B2" * 9),
    ("x = glpat-abcdefghij0123456789", "glpat-abcdefghij0123456789"),
    ("slack xoxb-263594206564-FGqddMF8t08v8N7Oq4i57vs1", "xoxb-263594206564-FGqddMF8t08v8N7Oq4i57vs1"),
    ("stripe sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ("SG." + "a" * 22 + "." + "b" * 43, "SG." + "a" * 22 + "." + "b" * 43),
    ("key AIza" + "SyA1234567890abcdefghijklmnopqrstuv", "AIza" + "SyA1234567890abcdefghijklmnopqrstuv"),
    ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
    ("postgres://admin:s3cr3t@db.internal:5432/app", "s3cr3t"),
    ("Server=db;User Id=sa;Password=Pa55w0rd!;", "Pa55w0rd!"),
    ("export DB_PASSWORD=hunter2", "hunter2"),
    ('{"apiKey": "abc 123 def"}', "abc 123 def"),
    ("Authorization: Bearer abcdefghijklmnopqrstu", "Bearer abcdefghijklmnopqrstu"),
    ("GET /v1/items?api_key=zzz111&page=2", "zzz111"),
    ("CREATE USER bob IDENTIFIED BY 'tiger123'", "tiger123"),
])
def test_secret_positive(masker: Masker, text: str, secret: str) -> None:
    spans = [(e, s) for e, _, s in found(masker, text)]
    assert any(e == "SECRET" and secret in s for e, s in spans), spans


def test_pem_private_key(masker: Masker) -> None:
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy\n-----END RSA PRIVATE KEY-----"
    r = masker.mask_text("key:\n" + pem + "\nend")
    assert "MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn" not in r.masked
    assert r.counts() == {"SECRET": 1}


@pytest.mark.parametrize("text", [
    "the token type is bearer",
    "max_tokens = 1024",
    "ghp_short",
    "AKIA lowercase akiaiosfodnn7example",
    "sk_live_",
    "a plain sentence about keys and secrets with nothing in it",
])
def test_secret_negative(masker: Masker, text: str) -> None:
    assert "SECRET" not in entities(masker, text)


def test_sql_insert_columns(masker: Masker) -> None:
    sql = "INSERT INTO users (id, email, ssn, note) VALUES (7, 'a@b.io', '536-22-1234', 'hi')"
    r = masker.mask_text(sql)
    assert "a@b.io" not in r.masked and "536-22-1234" not in r.masked
    assert "'hi'" in r.masked and "(7," in r.masked


def test_sql_update(masker: Masker) -> None:
    r = masker.mask_text("UPDATE users SET password = 'n3wpass' WHERE email = 'x@y.com'")
    assert "n3wpass" not in r.masked and "x@y.com" not in r.masked


def test_custom_detectors_and_deny_list() -> None:
    m = Masker(key=b"k", ner=False, custom_detectors=[
        {"id": "employee_id", "entity": "EMPLOYEE_ID", "pattern": r"\bEMP-(?P<value>\d{6})\b"},
        {"id": "codenames", "entity": "PROJECT", "deny_list": ["Project Falcon", "bluebird"]},
        {"id": "cards_luhn", "entity": "CARD_LIKE", "pattern": r"\b\d{12}\b", "validator": "luhn"},
    ])
    r = m.mask_text("EMP-123456 works on project falcon and Bluebird; 123456789015 ok; 123456789012 no")
    assert r.masked == "EMP-[EMPLOYEE_ID] works on [PROJECT] and [PROJECT]; [CARD_LIKE] ok; 123456789012 no"
