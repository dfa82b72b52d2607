"""Key-name context: which JSON keys (or ``name=value`` names) hold sensitive values.

A value under ``password``, ``apiKey``, ``X-API-KEY``, ``db_password`` or ``Authorization`` is
masked whole, whatever it looks like. Names are compared as word lists, so case and separators
do not matter: ``apiKey``, ``API-KEY``, ``api_key`` and ``api.key`` all become ``api key``.
"""

from __future__ import annotations

import re
from functools import lru_cache

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SPLIT = re.compile(r"[^a-z0-9]+")


@lru_cache(maxsize=8192)
def key_words(name: str) -> tuple[str, ...]:
    """``"X-Api-Key"`` -> ``("x", "api", "key")``; ``"dbPassword"`` -> ``("db", "password")``."""
    spaced = _CAMEL.sub(" ", name).lower()
    return tuple(w for w in _SPLIT.split(spaced) if w)


def normalize_key(name: str) -> str:
    """Case- and separator-insensitive form of a key: ``"X-Api-Key"`` -> ``"xapikey"``."""
    return "".join(key_words(name))


# Words or joined word pairs that make a name a credential, wherever they appear in it.
_SECRET_SUBSTRINGS = (
    "password", "passwd", "passphrase", "passcode", "secret", "apikey", "accesskey",
    "privatekey", "secretkey", "signingkey", "encryptionkey", "masterkey", "licensekey",
    "authorization", "credential", "sessionid", "sessiontoken", "accesstoken", "refreshtoken",
    "authtoken", "idtoken", "bearertoken", "apitoken", "setcookie", "connectionkey",
    "sharedkey", "accountkey", "webhooksecret", "clientsecret", "privkey", "apisecret",
)
# Whole words that make a name a credential.
_SECRET_WORDS = frozenset({
    "pwd", "pass", "pw", "auth", "oauth", "cookie", "cookies", "otp", "totp", "hotp", "mfa",
    "pin", "cvv", "cvc", "cvv2", "cid", "csc", "bearer", "jwt", "sas", "saml", "psk",
    "credentials", "creds", "cred", "secrets", "sig", "signature",
    "keystore", "pat", "apikeys", "passwords",
})
# ``token`` is a credential unless a neighbour says it is a count or a type.
_TOKEN_EXCEPT = frozenset({
    "max", "count", "limit", "usage", "used", "type", "total", "prompt", "completion",
    "input", "output", "num", "budget", "expires", "expiry", "ttl", "len", "length", "min",
    "cached", "reasoning", "per", "estimated", "endpoint", "url", "uri", "name", "format",
})
# ``<something> key`` is a credential unless the something says it is a lookup key.
_KEY_EXCEPT = frozenset({
    "s3", "object", "partition", "sort", "primary", "foreign", "cache", "idempotency",
    "public", "row", "lookup", "dedup", "dedupe", "composite", "unique", "route", "routing",
    "map", "dict", "index", "shard", "sharding", "group", "message", "event", "i18n",
    "translation", "registry", "hash", "range", "sequence", "join", "natural", "surrogate",
    "candidate", "alternate", "business", "order", "sorting", "grouping", "query", "search",
    "ordering", "table", "column", "field", "property", "prop", "attribute", "metadata",
    "label", "tag", "config", "setting", "settings", "file", "path", "bucket", "blob", "item",
    "record", "entity", "resource", "state", "storage", "idempotent", "dimension", "metric",
    "hotkey", "shortcut", "keyboard", "press", "music", "musical", "primaryd", "ssh", "gpg",
    "pgp", "kms", "id", "name", "the", "my", "a", "type",
})
_SSN = frozenset({"ssn", "socialsecuritynumber", "socialsecurity", "socialsecurityno", "ssnumber"})
_CARD = ("cardnumber", "creditcard", "ccnumber", "ccnum", "cardno", "debitcard", "primaryaccountnumber", "cardpan")
_BANK = ("accountnumber", "bankaccount", "routingnumber", "sortcode", "accountno", "acctnum", "acctno", "bsb")
_ID = (
    "passport", "driverslicense", "driverlicense", "driverslicence", "drivinglicence",
    "drivinglicense", "nationalid", "taxid", "taxpayerid", "nationalinsurance", "nino",
    "medicarenumber", "medicalrecordnumber", "mrn", "healthid", "nhsnumber", "aadhaar",
    "personalidnumber", "idnumber", "idcard", "sin", "itin", "tin", "ein", "vatnumber",
)
_DOB = ("dob", "dateofbirth", "birthdate", "birthday", "birthdt", "bday", "dateborn", "born")
_EMAIL = ("email", "emailaddress", "mail", "emailaddr", "mailaddress")
_PHONE = ("phone", "phonenumber", "mobile", "telephone", "tel", "fax", "msisdn", "cellphone", "cell", "mobilenumber", "phoneno")
_PERSON = (
    "firstname", "lastname", "fullname", "surname", "givenname", "middlename", "maidenname",
    "familyname", "forename", "customername", "patientname", "employeename", "holdername",
    "cardholder", "cardholdername", "accountholder", "legalname", "contactname", "personname",
    "mothersmaidenname", "nickname", "displayname",
)
_ADDRESS = (
    "address", "streetaddress", "street", "addressline", "addressline1", "addressline2",
    "homeaddress", "mailingaddress", "billingaddress", "shippingaddress", "postaladdress",
    "residentialaddress", "addr", "streetname", "housenumber",
)
_ADDRESS_NOT = frozenset({
    "ipaddress", "ipaddr", "macaddress", "emailaddress", "walletaddress", "remoteaddress",
    "remoteaddr", "serveraddress", "bindaddress", "listenaddress", "hostaddress",
    "contractaddress", "memoryaddress", "baseaddress", "mailaddress", "networkaddress",
})
# A bare ``name`` under one of these parents is a person's name.
_PERSON_PARENTS = frozenset({
    "customer", "user", "employee", "owner", "contact", "patient", "person", "requester",
    "recipient", "sender", "holder", "accountholder", "cardholder", "client", "member",
    "applicant", "beneficiary", "payee", "payer", "guest", "passenger", "student", "author",
    "manager", "approver", "assignee", "reporter", "buyer", "seller", "tenant", "driver",
    "subscriber", "caller", "signer", "witness", "spouse", "child", "parent", "emergencycontact",
    "nextofkin", "onbehalfof", "actor", "to", "from", "cc", "bcc",
})


def _ends_with(words: tuple[str, ...], compact: str, names: tuple[str, ...]) -> bool:
    # Short names match whole words only: "tel" is a phone, "hotel" is not.
    return any(
        compact == n or (words[-1] == n if len(n) <= 4 else compact.endswith(n)) for n in names
    )


@lru_cache(maxsize=8192)
def classify_key(name: str, parent: str = "") -> str | None:
    """The entity that a value under key ``name`` is, from the name alone; or None.

    ``parent`` is the enclosing object's key (for ``customer.name``).
    """
    words = key_words(name)
    if not words:
        return None
    compact = "".join(words)
    if any(s in compact for s in _SECRET_SUBSTRINGS):
        return "SECRET"
    if any(w in _SECRET_WORDS for w in words):
        return "SECRET"
    if "token" in words or compact.endswith("token"):
        if not any(w in _TOKEN_EXCEPT for w in words):
            return "SECRET"
    if words[-1] in ("key", "keys") and len(words) >= 2 and words[-2] not in _KEY_EXCEPT:
        return "SECRET"
    if words[-1] == "key" and len(words) == 1 and parent and classify_key(parent) == "SECRET":
        return "SECRET"
    if compact in _SSN or "socialsecurity" in compact or words[-1] == "ssn" or words[0] == "ssn":
        return "US_SSN"
    if _ends_with(words, compact, _CARD) or (words[-1] == "pan" and len(words) <= 2):
        return "CREDIT_CARD"
    if compact == "iban" or words[-1] == "iban":
        return "IBAN"
    if _ends_with(words, compact, _BANK):
        return "BANK_ACCOUNT"
    if _ends_with(words, compact, _DOB):
        return "DATE_OF_BIRTH"
    if _ends_with(words, compact, _ID) or compact in _ID:
        return "ID_NUMBER"
    if compact in _ADDRESS_NOT:
        return None
    if _ends_with(words, compact, _EMAIL) or words[-1] in ("email", "emails"):
        return "EMAIL"
    if _ends_with(words, compact, _PHONE) or words[-1] in ("phone", "phones", "mobile"):
        return "PHONE"
    if _ends_with(words, compact, _PERSON):
        return "PERSON"
    if compact == "name" and parent and normalize_key(parent) in _PERSON_PARENTS:
        return "PERSON"
    if _ends_with(words, compact, _ADDRESS) or (words[0] == "address" and len(words) <= 2):
        return "ADDRESS"
    return None


def is_secret_name(name: str) -> bool:
    """Whether ``name`` (a key, a header, a variable) names a credential."""
    return classify_key(name) == "SECRET"
