"""Every way a secret or personal value used to walk around the engine, each with decoys that
must stay visible, at any depth and inside every encoding a string can carry."""

from __future__ import annotations

import base64
import binascii
import json
import re
import urllib.parse
from typing import Any

import pytest

from signoff.masking import Masker

AWS = "AKIAQYLPMN5HHHFPZAM2"
STRIPE = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"
GHP = "ghp_k9ZxW2vQ7rT4yU8iO1pA3sD5fG6hJ0lKmNb2"
PASSWORD = "Tr0ub4dor!3xyzzy"  # "&" would end a query value (that is what it means there)


def dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


_B64 = re.compile(r"[A-Za-z0-9+/_-]{8,}={0,2}")


def reveal(text: str, rounds: int = 3) -> str:
    """``text`` plus everything a reader could decode from it (URL-encoding, base64, JSON
    escapes), a few levels deep: what a leak check must search."""
    seen = [text]
    frontier = [text]
    for _ in range(rounds):
        nxt = []
        for t in frontier:
            nxt.append(urllib.parse.unquote_plus(t))
            nxt.append(t.replace('\\"', '"').replace("\\n", "\n"))
            for m in _B64.finditer(t):
                run = m.group(0).rstrip("=")
                for dec in (base64.b64decode, base64.urlsafe_b64decode):
                    try:
                        nxt.append(dec(run + "=" * (-len(run) % 4)).decode("utf-8", "ignore"))
                    except (ValueError, binascii.Error):
                        pass
        seen += nxt
        frontier = nxt
    return "\n".join(seen)


def leaks(masker: Masker, payload: Any, *secrets: str) -> list[str]:
    out = reveal(dump(masker.mask(payload).masked))
    return [s for s in secrets if s in out]


def kept(masker: Masker, payload: Any, *decoys: str) -> list[str]:
    out = dump(masker.mask(payload).masked)
    return [d for d in decoys if d not in out]


def nest(value: Any, depth: int) -> Any:
    for i in range(depth):
        value = {f"level{i}": [value]} if i % 2 else {f"level{i}": value}
    return value


def encodings(text: str) -> dict[str, str]:
    """The same text carried inside a string in every way an agent may carry it."""
    return {
        "plain": text,
        "json": dump({"wrapped": {"text": text}}),
        "base64": base64.b64encode(text.encode()).decode(),
        "base64url": base64.urlsafe_b64encode(text.encode()).decode().rstrip("="),
        "urlencoded": urllib.parse.quote(text, safe=""),
        "form": urllib.parse.urlencode({"payload": text, "page": "2"}),
        "base64_of_json": base64.b64encode(dump({"blob": text}).encode()).decode(),
    }


# --- 1. credentials used as object keys ---------------------------------------------------------
@pytest.mark.parametrize("depth", [0, 3, 9])
def test_credential_as_key(masker: Masker, depth: int) -> None:
    payload = nest({STRIPE: "primary", AWS: {"region": "eu-west-1"}, "ann@acme.example": {"role": "x"}}, depth)
    assert leaks(masker, payload, STRIPE, AWS, "ann@acme.example") == []
    # the harmless values under those keys stay visible
    assert kept(masker, payload, "primary", "eu-west-1", "role") == []


def test_key_decoys_stay(masker: Masker) -> None:
    payload = {"customer_id": {"x": 1}, "us-east-1": "r", "max_tokens": 100, "2024-06-01": "d",
               "db.export": "a", "s3://bucket/key": "k", "10.0.0.0/8": "allow", "v1.2.3": "v"}
    masked = masker.mask(payload).masked
    assert set(masked) == set(payload)


# --- 2. command lines -----------------------------------------------------------------------------
COMMANDS = [
    f"mysql -h db.internal -u root -p{PASSWORD} analytics",
    f"mysqldump --user=admin --password={PASSWORD} shop > dump.sql",
    f"psql 'host=db user=app' --password '{PASSWORD}'",
    f"deploy --api-key {PASSWORD} --region eu-west-1",
    f"cli login --client-secret=\"{PASSWORD}\"",
    f"sshpass -p '{PASSWORD}' ssh ops@bastion",
    f"redis-cli -h cache -a {PASSWORD} FLUSHALL",
    f"docker login -u bot --password {PASSWORD} registry.example.com",
    f"PGPASSWORD={PASSWORD} pg_dump -h db shop",
    f"curl -u admin:{PASSWORD} https://api.internal/v1",
    f"./server -password {PASSWORD} -port 8080",
    f"az login -u bot@example.com --password {PASSWORD}",
]


@pytest.mark.parametrize("cmd", COMMANDS)
def test_command_lines(masker: Masker, cmd: str) -> None:
    for name, carried in encodings(cmd).items():
        assert leaks(masker, nest({"command": carried}, 4), PASSWORD) == [], name


def test_command_line_decoys(masker: Masker) -> None:
    cmds = ["kubectl scale deploy/api --replicas=3 -n prod",
            "terraform apply -target=module.vpc -var region=eu-west-1",
            "mysql -h db -u reader -p analytics",  # prompts for the password
            "helm upgrade api ./chart --version 2.14.1 --set image.tag=v1.2.3",
            "vault kv get -field=username secret/app",
            "app --password-file /run/secrets/db --token-ttl 3600"]
    for c in cmds:
        assert masker.mask_text(c).masked == c, c


# --- 3. markup, query strings, encodings ------------------------------------------------------------
MARKUP = [
    f"<config><db><password>{PASSWORD}</password><host>db.internal</host></db></config>",
    f"<ns:Credentials><ns:ApiKey><![CDATA[{PASSWORD}]]></ns:ApiKey></ns:Credentials>",
    f'<property name="db.password" value="{PASSWORD}"/>',
    f'<add key="ClientSecret" value="{PASSWORD}" />',
    f"<soap:Header><wsse:Password Type=\"PasswordText\">{PASSWORD}</wsse:Password></soap:Header>",
    f"<credentials>\n  <user>svc</user>\n  <value>{PASSWORD}</value>\n</credentials>",
]
QUERIES = [
    f"https://api.example.com/v1/cb?access_token={PASSWORD}&state=ok",
    f"https://example.com/oauth/callback?code={PASSWORD}&state=xyz",
    f"https://maps.example.com/api?key={PASSWORD}&q=paris",
    f"grant_type=client_credentials&client_id=app&client_secret={PASSWORD}",
    f"https://example.com/#id_token={PASSWORD}&token_type=bearer",
    f"/download?X-Amz-Credential={AWS}%2F20240101%2Fus-east-1&X-Amz-Signature={PASSWORD}",
]


@pytest.mark.parametrize("text", MARKUP + QUERIES)
def test_markup_and_queries(masker: Masker, text: str) -> None:
    for name, carried in encodings(text).items():
        assert leaks(masker, nest({"body": carried}, 3), PASSWORD) == [], name


def test_markup_and_query_decoys(masker: Masker) -> None:
    for text in ["<user>bob</user><host>db.internal</host><port>5432</port>",
                 "https://example.com/search?q=password+reset&page=2&sort=desc",
                 "https://example.com/items?id=42&token_count=17"]:
        assert masker.mask_text(text).masked == text, text


ENV = f"DB_HOST=db.internal\nDB_PASSWORD={PASSWORD}\nSTRIPE_KEY={STRIPE}\nDEBUG=false\n"
YAML = f"apiVersion: v1\nkind: ConfigMap\ndata:\n  secrets:\n    db: {PASSWORD}\n  replicas: 3\n"
INI = f"[server]\nport = 8080\n[credentials]\nadmin = {PASSWORD}\n"
JSON_DOC = dump({"service": {"auth": {"primary": PASSWORD}}, "replicas": 3})


@pytest.mark.parametrize("text", [ENV, YAML, INI, JSON_DOC])
def test_documents_in_strings(masker: Masker, text: str) -> None:
    for name, carried in encodings(text).items():
        for depth in (0, 5):
            assert leaks(masker, nest({"file": carried}, depth), PASSWORD, STRIPE) == [], (name, depth)


def test_document_decoys(masker: Masker) -> None:
    yaml_doc = "replicas: 3\nimage: registry.example.com/api:2.14.1\nresources:\n  limits:\n    cpu: 500m\n"
    assert masker.mask_text(yaml_doc).masked == yaml_doc
    b64 = base64.b64encode(yaml_doc.encode()).decode()
    assert masker.mask({"manifest": b64}).masked == {"manifest": b64}


# --- 4. wallets ---------------------------------------------------------------------------------
WALLETS = [
    "1BoatSLRHtKNngkdXEeobR76b53LETtpyT",  # legacy
    "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",  # P2SH
    "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",  # bech32
    "bc1p5d7rjq7g6rdk2yhzks9smlaqtedr4dekq08ge8ztwac72sfr9rusxg3297",  # bech32m (taproot)
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",  # EIP-55
    "0xde709f2102306220921060314715629080e2fb77",  # lower case, no checksum
]


@pytest.mark.parametrize("wallet", WALLETS)
def test_wallets(masker: Masker, wallet: str) -> None:
    r = masker.mask(nest({"note": f"send the refund to {wallet} today"}, 3))
    assert wallet not in dump(r.masked)
    assert "CRYPTO" in r.counts()


def test_wallet_decoys(masker: Masker) -> None:
    for text in ["checksum fails: 1BoatSLRHtKNngkdXEeobR76b53LETtpyX",
                 "bad case 0x5aaeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
                 "bad bech32 bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5",
                 "tx 0x88df016429689c079f3b2f6ad39fa052532c56795b733da78a91ebe6a713944b",
                 "commit 1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"]:
        assert masker.mask_text(text).masked == text, text


# --- 5. addresses in prose ---------------------------------------------------------------------------
@pytest.mark.parametrize("address", [
    "6946 Martin Inlet, Springfield, IL 62704",
    "221B Baker Street, London",
    "1600 Pennsylvania Avenue NW, Washington, DC 20500",
    "500 W 5th Ave Suite 200",
    "PO Box 1234, Austin TX 78701",
])
def test_street_addresses_in_prose(masker: Masker, address: str) -> None:
    text = f"Please ship the replacement to {address} before Friday."
    out = masker.mask_text(text).masked
    assert address not in out
    assert not any(part in out for part in address.replace(",", "").split() if part[0].isdigit() and len(part) > 2)
    assert out.startswith("Please ship the replacement to ") and out.endswith(" before Friday.")


def test_address_decoys(masker: Masker) -> None:
    for text in ["retry 3 times then run step 2", "scale to 5 replicas in 2 zones",
                 "merge 3 way diff", "wait 30 Seconds and Run the job"]:
        assert masker.mask_text(text).masked == text, text


# --- 6. what a reviewer must see ---------------------------------------------------------------------
DECOYS = {
    "cidr_open": "0.0.0.0/0",
    "cidr_private": "10.0.0.0/8",
    "cidr6": "2001:db8::/32",
    "unspecified": "0.0.0.0",
    "loopback": "127.0.0.1",
    "loopback6": "::1",
    "doc_ip": "203.0.113.7",
    "netmask": "255.255.255.0",
    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "sha1": "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3",
    "digest": "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
    "arn": "arn:aws:iam::123456789012:role/deploy-bot",
    "arn_s3": "arn:aws:s3:::exports-2024/customers/*",
    "instance": "i-0abcd1234ef567890",
    "ami": "ami-0c55b159cbfafe1f0",
    "sg": "sg-0123456789abcdef0",
    "path": "/var/lib/postgresql/data/base/16384",
    "k8s": "deployment/api-server",
    "gcp": "projects/acme-prod/zones/europe-west1-b/instances/db-1",
    "sql": "SELECT id, plan, mrr FROM customers WHERE created_at > '2024-01-01' LIMIT 500",
    "version": "2.14.1",
    "version4": "version 10.2.3.4",
    "semver": "v1.2.3-rc.1",
    "date": "2024-03-01",
    "timestamp": "2024-03-01T12:30:00Z",
    "uuid": "6f1c2b8e-1d2a-4c4b-9a5e-2b7f0c3d4e5f",
    "image": "registry.example.com/app:1.25.3",
    "s3": "s3://bucket/exports/2024/customers.csv",
    "cron": "0 3 * * *",
}


@pytest.mark.parametrize("depth", [0, 4])
def test_reviewer_decoys_stay_visible(masker: Masker, depth: int) -> None:
    payload = nest(dict(DECOYS), depth)
    assert masker.mask(payload).masked == payload
    prose = "Open " + DECOYS["cidr_open"] + " on sg " + DECOYS["sg"] + " for " + DECOYS["instance"] + \
        " and roll " + DECOYS["image"] + " (" + DECOYS["digest"] + ") on " + DECOYS["date"] + "."
    assert masker.mask_text(prose).masked == prose


def test_hosts_still_masked(masker: Masker) -> None:
    out = masker.mask_text("allow 0.0.0.0/0 but block 8.8.4.4, 8.8.8.8/32 and 192.168.1.23/24").masked
    assert "0.0.0.0/0" in out
    assert "8.8.4.4" not in out and "8.8.8.8" not in out and "192.168.1.23" not in out


# --- 7. one hostile document with everything, nested and encoded ----------------------------------
def test_everything_at_once(masker: Masker) -> None:
    inner = {GHP: {"note": "primary"}, "cmd": f"mysql -p{PASSWORD} db", "xml": MARKUP[0],
             "url": QUERIES[0], "env": ENV, "wallet": WALLETS[0]}
    doc = {"a": [{"b": dump(inner)}], "c": base64.b64encode(dump(inner).encode()).decode(),
           "d": urllib.parse.quote(dump(inner)), "e": nest(inner, 7)}
    out = reveal(dump(masker.mask(doc).masked))
    for secret in (GHP, PASSWORD, STRIPE, WALLETS[0]):
        assert secret not in out, secret
    assert "primary" in out and "db.internal" in out


# --- 8. more carriers and shapes ------------------------------------------------------------------
def test_secret_half_under_a_credential_key(masker: Masker) -> None:
    out = masker.mask({AWS: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", STRIPE: "primary"}).masked
    assert "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" not in dump(out)
    assert "primary" in dump(out)


@pytest.mark.parametrize("text", [
    f'<entry key="password">{PASSWORD}</entry>',
    f"java -Dspring.datasource.password={PASSWORD} -jar app.jar",
    f"docker run -e DB_PASSWORD={PASSWORD} image:1.2",
    f"&lt;password&gt;{PASSWORD}&lt;/password&gt;",
    "cfg " + ("DB_PASSWORD=" + PASSWORD).encode().hex(),
])
def test_more_carriers(masker: Masker, text: str) -> None:
    out = masker.mask_text(text).masked
    assert PASSWORD not in reveal_hex(out), out


def reveal_hex(text: str) -> str:
    found = [text]
    for m in re.finditer(r"(?:[0-9a-fA-F]{2}){6,}", text):
        found.append(bytes.fromhex(m.group(0)).decode("utf-8", "ignore"))
    return "\n".join(found)


@pytest.mark.parametrize("address", ["10 Downing Street, London SW1A 2AA", "Hauptstraße 5, 10115 Berlin",
                                     "Via Roma 12"])
def test_other_address_formats(masker: Masker, address: str) -> None:
    out = masker.mask_text(f"Deliver to {address} please").masked
    assert address not in out and "SW1A" not in out and "10115" not in out


def test_resource_ids_next_to_credential_words_stay(masker: Masker) -> None:
    for text in ["Rotate the key for sg-0123456789abcdef0; token TTL is 3600",
                 "the secret for i-0abcd1234ef567890 in vpc-0a1b2c3d4e5f67890 lives in Vault at secret/data/app/db",
                 "assume arn:aws:iam::123456789012:role/deploy-bot with key rotation"]:
        assert masker.mask_text(text).masked == text, text
