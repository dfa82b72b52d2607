"""Build the labelled masking corpus in this folder (deterministic: run it again, get the same files).

    python bench/masking_corpus/build.py --ext DIR [--payloads 400]

``DIR`` holds the source corpora (``secrets.jsonl``, ``pii.jsonl``; see README.md); the
committed output is what the benchmark and the tests read, so nothing here is needed to run them.

Writes three JSON Lines files, one document per line, all with the same fields:

- ``gitleaks.jsonl``: gitleaks' rule test strings (``tps`` positives, ``fps`` negatives).
- ``presidio.jsonl``: the English cases of Presidio's recognizer unit tests.
- ``payloads.jsonl``: realistic agent request payloads generated with Faker (seed 4), with
  every planted value labelled.

Fields: ``id``, ``set``, ``kind`` (``text`` or ``json``), ``doc`` (a string, or a JSON value),
``labels`` (``[{path, start, end, entity}]``; ``path`` is ``$`` for text), ``negative``,
``target`` (for the Presidio cases: the one entity type the case labels; other PII in the text
is not labelled), ``source`` (project, file, commit and test/rule of the original line).
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import string
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# Presidio entity -> Signoff entity, for the types in Signoff's scope.
PRESIDIO_TO_SIGNOFF = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN",
    "US_SSN": "US_SSN",
    "IP_ADDRESS": "IP_ADDRESS",
    "MAC_ADDRESS": "MAC_ADDRESS",
    "PERSON": "PERSON",
}


def build_gitleaks(ext: Path) -> list[dict[str, Any]]:
    out = []
    for i, line in enumerate((ext / "secrets.jsonl").read_text().splitlines()):
        r = json.loads(line)
        labels = []
        if not r["negative"]:
            s, e = r["span"]
            labels.append({"path": "$", "start": s, "end": e, "entity": "SECRET"})
        out.append({
            "id": f"gitleaks-{i}",
            "set": "gitleaks",
            "kind": "text",
            "doc": r["text"],
            "labels": labels,
            "negative": r["negative"],
            "target": "SECRET",
            "source": {"file": r["source"], "commit": r["commit"], "rule": r["kind"], "func": r.get("func"), "wrapper": r.get("wrapper"), "synthetic": r.get("synthetic"), "regex_match": r.get("regex_match")},
        })
    return out


def build_presidio(ext: Path) -> list[dict[str, Any]]:
    out = []
    for i, line in enumerate((ext / "pii.jsonl").read_text().splitlines()):
        r = json.loads(line)
        if r["language"] != "en":
            continue
        if r.get("config_note") == "non-default leniency parameter":
            continue  # the same texts with contradicting labels under a non-default setting
        target = PRESIDIO_TO_SIGNOFF.get(r["entity"], r["entity"])
        if not r["negative"] and not r.get("spans_given"):
            continue  # no positions to score against
        labels = [{"path": "$", "start": s["start"], "end": s["end"], "entity": target} for s in r["spans"]]
        out.append({
            "id": f"presidio-{i}",
            "set": "presidio",
            "kind": "text",
            "doc": r["text"],
            "labels": labels,
            "negative": r["negative"],
            "target": target,
            "in_scope": r["entity"] in PRESIDIO_TO_SIGNOFF,
            "source": {"file": r["source"], "commit": r["commit"], "test": r["test"], "presidio_entity": r["entity"], "config_note": r.get("config_note")},
        })
    return out


# --- generated agent payloads ---------------------------------------------------------------
class Doc:
    """Builds one payload and its labels."""

    def __init__(self) -> None:
        self.labels: list[dict[str, Any]] = []

    def value(self, path: str, text: str, entity: str | None) -> str:
        if entity:
            self.labels.append({"path": path, "start": 0, "end": len(text), "entity": entity})
        return text

    def prose(self, path: str, parts: list[tuple[str, str | None]]) -> str:
        """Concatenate parts; label the ones that carry an entity."""
        out = ""
        for text, entity in parts:
            if entity:
                self.labels.append({"path": path, "start": len(out), "end": len(out) + len(text), "entity": entity})
            out += text
        return out


def luhn_complete(prefix: str, length: int, rnd: random.Random) -> str:
    body = prefix + "".join(rnd.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return body + str((10 - total % 10) % 10)


def fmt_card(num: str, rnd: random.Random) -> str:
    style = rnd.choice(["plain", "space", "dash"])
    if style == "plain" or len(num) != 16:
        return num
    sep = " " if style == "space" else "-"
    return sep.join(num[i : i + 4] for i in range(0, 16, 4))


def iban_for(rnd: random.Random) -> str:
    country, bban_len = rnd.choice([("DE", 18), ("GB", 18), ("FR", 23), ("NL", 14), ("ES", 20), ("IT", 23)])
    if country == "GB":
        bban = "".join(rnd.choice(string.ascii_uppercase) for _ in range(4)) + "".join(rnd.choice(string.digits) for _ in range(14))
    elif country == "NL":
        bban = "".join(rnd.choice(string.ascii_uppercase) for _ in range(4)) + "".join(rnd.choice(string.digits) for _ in range(10))
    elif country == "IT":
        bban = rnd.choice(string.ascii_uppercase) + "".join(rnd.choice(string.digits) for _ in range(22))
    else:
        bban = "".join(rnd.choice(string.digits) for _ in range(bban_len))
    num = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    check = 98 - num % 97
    iban = f"{country}{check:02d}{bban}"
    if rnd.random() < 0.5:
        return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return iban


def ssn_for(rnd: random.Random) -> str:
    area = rnd.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rnd.randint(1, 99):02d}-{rnd.randint(1, 9999):04d}"


def rand(rnd: random.Random, alphabet: str, n: int) -> str:
    return "".join(rnd.choice(alphabet) for _ in range(n))


ALNUM = string.ascii_letters + string.digits


def secret_for(rnd: random.Random) -> tuple[str, str]:
    """A (kind, value) credential in a real provider format."""
    kind = rnd.choice(["aws", "github", "slack", "stripe", "openai", "anthropic", "gitlab", "sendgrid", "gcp", "twilio", "hex", "random"])
    if kind == "aws":
        return kind, "AKIA" + rand(rnd, string.ascii_uppercase + "234567", 16)
    if kind == "github":
        return kind, "ghp_" + rand(rnd, ALNUM, 36)
    if kind == "slack":
        return kind, f"xoxb-{rnd.randint(10**10, 10**12)}-{rnd.randint(10**10, 10**12)}-{rand(rnd, ALNUM, 24)}"
    if kind == "stripe":
        return kind, "sk_live_" + rand(rnd, ALNUM, 24)
    if kind == "openai":
        return kind, "sk-proj-" + rand(rnd, ALNUM + "_-", 40) + "T3BlbkFJ" + rand(rnd, ALNUM + "_-", 40)
    if kind == "anthropic":
        return kind, "sk-ant-api03-" + rand(rnd, ALNUM + "_-", 93) + "AA"
    if kind == "gitlab":
        return kind, "glpat-" + rand(rnd, ALNUM + "_-", 20)
    if kind == "sendgrid":
        return kind, "SG." + rand(rnd, ALNUM + "_-", 22) + "." + rand(rnd, ALNUM + "_-", 43)
    if kind == "gcp":
        return kind, "AIza" + rand(rnd, ALNUM + "_-", 35)
    if kind == "twilio":
        return kind, "SK" + rand(rnd, "0123456789abcdef", 32)
    if kind == "hex":
        return kind, rand(rnd, "0123456789abcdef", 40)
    return kind, rand(rnd, ALNUM, 32)


def jwt_for(rnd: random.Random) -> str:
    def b64(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).rstrip(b"=").decode()

    head = b64({"alg": "HS256", "typ": "JWT"})
    body = b64({"sub": str(rnd.randint(1, 10**6)), "iat": rnd.randint(1_600_000_000, 1_700_000_000), "scope": "admin"})
    sig = base64.urlsafe_b64encode(rnd.randbytes(32)).rstrip(b"=").decode()
    return f"{head}.{body}.{sig}"


def pem_for(rnd: random.Random) -> str:
    body = base64.b64encode(rnd.randbytes(330)).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END PRIVATE KEY-----"


def payload(i: int, fake: Any, rnd: random.Random) -> tuple[Any, list[dict[str, Any]]]:
    d = Doc()
    kind = i % 9
    person = f"{fake.first_name()} {fake.last_name()}"
    other = f"{fake.first_name()} {fake.last_name()}"
    company = fake.company()
    city = fake.city()
    email = fake.email()
    phone = rnd.choice([f"+1 {rnd.randint(201, 989)} 555 {rnd.randint(100, 9999):04d}", f"({rnd.randint(201, 989)}) 555-{rnd.randint(100, 9999):04d}", f"+44 20 7{rnd.randint(100, 999)} {rnd.randint(1000, 9999)}"])
    prefix = rnd.choice(["4", "51", "55", "37", "6011"])
    card = fmt_card(luhn_complete(prefix, 15 if prefix == "37" else 16, rnd), rnd)
    base: dict[str, Any] = {
        "id": fake.uuid4(),
        "requester": f"agent:{fake.user_name()}-bot",
        "context": {"environment": rnd.choice(["prod", "staging"]), "ticket": f"OPS-{rnd.randint(100, 9999)}", "model": "gpt-4o", "trace_id": rand(rnd, "0123456789abcdef", 32)},
    }
    if kind == 0:
        base["action"] = "db.export"
        base["resource"] = f"postgres://analytics/{fake.word()}s"
        base["reason"] = d.prose("$.reason", [("Requested by ", None), (person, "PERSON"), (" from ", None), (company, "ORGANIZATION"), (" for the quarterly audit of the ", None), (city, "LOCATION"), (" office.", None)])
        base["params"] = {
            "table": "customers",
            "filters": {"email": d.value("$.params.filters.email", email, "EMAIL"), "created_after": fake.date_this_decade().isoformat()},
            "columns": ["id", "email", "plan", "mrr"],
            "destination": f"s3://exports-{fake.word()}/{fake.date_this_year().isoformat()}/customers.csv",
            "limit": rnd.randint(100, 100000),
            "max_tokens": 1024,
        }
    elif kind == 1:
        base["action"] = "payments.refund"
        base["resource"] = f"stripe:charge/ch_{rand(rnd, ALNUM, 24)}"
        base["reason"] = d.prose("$.reason", [("Customer ", None), (other, "PERSON"), (" was charged twice; refund approved by support.", None)])
        base["params"] = {
            "customer": {
                "name": d.value("$.params.customer.name", person, "PERSON"),
                "email": d.value("$.params.customer.email", email, "EMAIL"),
                "phone": d.value("$.params.customer.phone", phone, "PHONE"),
                "address": d.value("$.params.customer.address", fake.street_address(), "ADDRESS"),
                "customer_id": f"cus_{rand(rnd, ALNUM, 14)}",
            },
            "card": {"number": d.value("$.params.card.number", card, "CREDIT_CARD"), "exp": f"{rnd.randint(1, 12):02d}/{rnd.randint(26, 31)}", "brand": "visa"},
            "amount": round(rnd.uniform(5, 900), 2),
            "currency": "USD",
            "refund_to_iban": d.value("$.params.refund_to_iban", iban_for(rnd), "IBAN"),
            "reference": luhn_complete("4", 16, rnd)[:-1] + str((int(luhn_complete("4", 16, rnd)[-1]) + 1) % 10),
        }
    elif kind == 2:
        _, key = secret_for(rnd)
        pw = fake.password(length=rnd.randint(10, 18))
        base["action"] = "infra.deploy"
        base["resource"] = f"k8s:{rnd.choice(['eu-west-1', 'us-east-2'])}/payments"
        dbhost = f"db-{rnd.randint(1, 9)}.internal"
        dsn_prefix = f"postgres://app:{''}"
        dsn = d.prose("$.params.env.DATABASE_URL", [(dsn_prefix, None), (pw, "SECRET"), (f"@{dbhost}:5432/payments", None)])
        base["params"] = {
            "image": f"registry.example.com/payments:{rnd.randint(1, 9)}.{rnd.randint(0, 30)}.{rnd.randint(0, 99)}",
            "replicas": rnd.randint(2, 12),
            "commit": rand(rnd, "0123456789abcdef", 40),
            "env": {
                "DATABASE_URL": dsn,
                "PAYMENTS_API_KEY": d.value("$.params.env.PAYMENTS_API_KEY", key, "SECRET"),
                "LOG_LEVEL": "info",
                "REGION": "eu-west-1",
            },
        }
        base["reason"] = "Roll out the hotfix for the timeout regression before the Black Friday traffic peak."
    elif kind == 3:
        tok = jwt_for(rnd)
        pw = fake.password(length=12)
        base["action"] = "http.request"
        _, qkey = secret_for(rnd)
        url = d.prose("$.params.url", [(f"https://api.{fake.domain_name()}/v2/users?page={rnd.randint(1, 9)}&api_key=", None), (qkey, "SECRET")])
        body = {"username": fake.user_name(), "password": pw, "email": email, "plan": "pro"}
        body_text = json.dumps(body, ensure_ascii=False)
        pw_at = body_text.index(json.dumps(pw, ensure_ascii=False)) + 1
        em_at = body_text.index(json.dumps(email, ensure_ascii=False)) + 1
        d.labels.append({"path": "$.params.body", "start": pw_at, "end": pw_at + len(pw), "entity": "SECRET"})
        d.labels.append({"path": "$.params.body", "start": em_at, "end": em_at + len(email), "entity": "EMAIL"})
        base["params"] = {
            "method": "POST",
            "url": url,
            "headers": {"Authorization": d.prose("$.params.headers.Authorization", [("Bearer ", None), (tok, "SECRET")]), "Content-Type": "application/json", "X-Request-Id": fake.uuid4()},
            "body": body_text,
            "timeout_s": 30,
        }
        base["reason"] = "Create the customer account that sales promised for the pilot."
    elif kind == 4:
        ssn = ssn_for(rnd)
        base["action"] = "sql.execute"
        base["resource"] = "mysql://crm/prod"
        q = d.prose("$.params.query", [("UPDATE customers SET email = '", None), (email, "EMAIL"), ("', phone = '", None), (phone, "PHONE"), (f"' WHERE id = {rnd.randint(1000, 99999)} AND ssn = '", None), (ssn, "US_SSN"), ("'", None)])
        base["params"] = {"query": q, "database": "crm", "dry_run": False}
        base["reason"] = d.prose("$.reason", [("Correct the contact details that ", None), (person, "PERSON"), (" sent in ticket OPS-", None), (str(rnd.randint(100, 999)), None), (".", None)])
    elif kind == 5:
        dob = fake.date_of_birth(minimum_age=18, maximum_age=80)
        dob_s = rnd.choice([dob.isoformat(), dob.strftime("%m/%d/%Y"), dob.strftime("%B %d, %Y")])
        base["action"] = "support.reply"
        base["resource"] = f"zendesk:ticket/{rnd.randint(10000, 99999)}"
        msg = d.prose("$.params.message", [
            ("Hi, this is ", None), (person, "PERSON"), (". I was born on ", None), (dob_s, "DATE_OF_BIRTH"),
            (" and I cannot log in. You can reach me at ", None), (email, "EMAIL"), (" or ", None), (phone, "PHONE"),
            (". My card ending ", None), (card, "CREDIT_CARD"), (" was charged on ", None), (fake.date_this_year().isoformat(), None), (".", None),
        ])
        base["params"] = {"message": msg, "priority": "high", "tags": ["billing", "login"], "assignee_group": "tier2"}
        base["reason"] = "Send the templated apology and the refund confirmation."
    elif kind == 6:
        base["action"] = "iam.provision_user"
        base["resource"] = "okta:users"
        base["params"] = {
            "user": {
                "first_name": d.value("$.params.user.first_name", person.split()[0], "PERSON"),
                "last_name": d.value("$.params.user.last_name", person.split()[1], "PERSON"),
                "email": d.value("$.params.user.email", email, "EMAIL"),
                "ssn": d.value("$.params.user.ssn", ssn_for(rnd), "US_SSN"),
                "date_of_birth": d.value("$.params.user.date_of_birth", fake.date_of_birth(minimum_age=18).isoformat(), "DATE_OF_BIRTH"),
                "department": fake.bs().split()[0].title(),
                "start_date": fake.date_this_year().isoformat(),
            },
            "groups": ["employees", rnd.choice(["finance", "engineering", "sales"])],
            "temporary_password": d.value("$.params.temporary_password", fake.password(length=14), "SECRET"),
        }
        base["reason"] = d.prose("$.reason", [("New hire starting Monday, manager ", None), (other, "PERSON"), (" approved in ", None), (company, "ORGANIZATION"), ("'s onboarding tracker.", None)])
    elif kind == 7:
        ip = fake.ipv4_public()
        ip6 = fake.ipv6()
        mac = fake.mac_address()
        base["action"] = "network.allowlist"
        base["resource"] = "cloudflare:zone/waf"
        base["params"] = {
            "source_ip": d.value("$.params.source_ip", ip, "IP_ADDRESS"),
            "also_allow": [d.value("$.params.also_allow[0]", ip6, "IP_ADDRESS")],
            "device_mac": d.value("$.params.device_mac", mac, "MAC_ADDRESS"),
            "port": 443,
            "ttl_hours": 24,
            "rule_version": f"{rnd.randint(1, 5)}.{rnd.randint(0, 9)}.{rnd.randint(0, 9)}",
        }
        base["reason"] = d.prose("$.reason", [("Vendor ", None), (company, "ORGANIZATION"), (" needs access from ", None), (ip, "IP_ADDRESS"), (" for the migration window.", None)])
    else:
        _, key = secret_for(rnd)
        pem = pem_for(rnd)
        base["action"] = "secrets.rotate"
        base["resource"] = "vault:kv/payments"
        base["params"] = {
            "old_key_id": f"key-{rnd.randint(1, 99)}",
            "leaked_value": d.value("$.params.leaked_value", key, "SECRET"),
            "service_account": {"type": "service_account", "client_email": d.value("$.params.service_account.client_email", f"deploy@{fake.domain_word()}-prod.iam.gserviceaccount.com", "EMAIL"), "private_key": d.value("$.params.service_account.private_key", pem, "SECRET")},
            "notify": [d.value("$.params.notify[0]", email, "EMAIL")],
        }
        base["reason"] = d.prose("$.reason", [("The token ", None), (key, "SECRET"), (" was pasted into a public channel by ", None), (person, "PERSON"), ("; rotate it now.", None)])
    return base, d.labels


def build_payloads(n: int) -> list[dict[str, Any]]:
    from faker import Faker

    fake = Faker("en_US")
    Faker.seed(4)
    rnd = random.Random(4)
    out = []
    for i in range(n):
        doc, labels = payload(i, fake, rnd)
        out.append({"id": f"payload-{i}", "set": "payloads", "kind": "json", "doc": doc, "labels": labels, "negative": not labels, "target": None, "source": {"generator": "bench/masking_corpus/build.py", "faker_seed": 4, "template": i % 9}})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ext", type=Path, required=True, help="the source corpus folder (secrets.jsonl, pii.jsonl)")
    ap.add_argument("--payloads", type=int, default=450)
    args = ap.parse_args()
    sets = {"gitleaks": build_gitleaks(args.ext), "presidio": build_presidio(args.ext), "payloads": build_payloads(args.payloads)}
    for name, rows in sets.items():
        with (HERE / f"{name}.jsonl").open("w") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n")
        print(f"{name}: {len(rows)} documents, {sum(len(r['labels']) for r in rows)} labelled spans")


if __name__ == "__main__":
    main()
