"""Personal-data detectors: validated patterns, not bare regexes.

Each detector has an id (what a policy switches off) and a confidence. Cards are checked with
Luhn and issuer ranges, IBANs with mod 97 and the country's length, SSNs with the SSA's
area/group/serial rules, phone numbers with Google's ``phonenumbers`` metadata, IPs with
``ipaddress``-equivalent rules.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

import phonenumbers

from signoff.masking import validators as v
from signoff.masking.addresses import find_addresses
from signoff.masking.scanner import Detector
from signoff.masking.wallets import find_wallets

# --- e-mail -------------------------------------------------------------------------------
EMAIL_RE = re.compile(
    r"(?<![\w.+%:/@#-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+(?:[A-Za-z]{2,24}|xn--[a-z0-9-]{2,59})"
    r"(?![\w-])"
)

# --- payment cards ---------------------------------------------------------------------------
CARD_RE = re.compile(r"(?<![\w-])\d(?:[ -]?\d){11,18}(?![\w-])")


def _card_ok(text: str) -> bool:
    seps = {c for c in text if not c.isdigit()}
    return len(seps) <= 1 and v.credit_card(text)


# --- IBAN ------------------------------------------------------------------------------------
IBAN_CAND = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{2}\d{2})((?:[ -]?[A-Za-z0-9]){11,30})")


def find_iban(text: str) -> Iterator[tuple[int, int, float]]:
    """IBANs, written compact or in groups: the country fixes the length; mod 97 decides."""
    for m in IBAN_CAND.finditer(text):
        country = m.group(1)[:2].upper()
        length = v.IBAN_LENGTHS.get(country)
        if length is None:
            continue
        # Walk forward until exactly `length` alphanumerics are consumed.
        start = m.start()
        count, i = 0, start
        end_limit = m.end()
        while i < end_limit and count < length:
            if text[i].isalnum():
                count += 1
            i += 1
        if count != length:
            continue
        if i < len(text) and text[i].isalnum():
            continue  # more characters than this country's IBAN has
        candidate = text[start:i]
        if v.iban(candidate):
            yield (start, i, 0.95)


# --- US SSN ----------------------------------------------------------------------------------
SSN_SEP_RE = re.compile(r"(?<![\w.-])(\d{3})([- .])(\d{2})\2(\d{4})(?![\w-]|\.\d)")
SSN_BARE_RE = re.compile(r"(?<![\w.-])\d{9}(?![\w-]|\.\d)")
SSN_CONTEXT = ("ssn", "social security", "social sec", "ss#", "ss #", "soc sec", "ssn#", "taxpayer")

# --- phone numbers ---------------------------------------------------------------------------
PHONE_CAND = re.compile(
    r"(?<![\w+/.:#-])(?:\+|00)?\(?\d[\d()./ \t-]{5,22}\d(?![\w/]|[.-]\d)"
)
PHONE_CONTEXT = (
    "phone", "tel", "call", "mobile", "cell", "fax", "whatsapp", "sms", "text me",
    "contact", "number", "reach", "dial", "landline", "hotline", "ring",
)
_REGIONS = ("US", "GB", "DE", "FR", "IN", "IL", "CA", "BR", "AU", "JP", "CN", "IT", "ES", "NL")
_DATE_LIKE = re.compile(r"^\d{1,4}[./-]\d{1,2}[./-]\d{1,4}$|^\d{4}-\d{2}-\d{2}")
_DOTTED_QUAD = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")


def find_phones(text: str) -> Iterator[tuple[int, int, float]]:
    """Phone numbers valid for their region under libphonenumber's metadata.

    International numbers (``+44 20 7123 4567``) are taken as they are; national ones are tried
    against the common regions. A bare run of digits with no phone-like formatting counts only
    with a word like ``phone`` or ``call`` just before it.
    """
    lower = None
    for m in PHONE_CAND.finditer(text):
        raw = m.group(0)
        cand = raw.rstrip(" \t-./(")
        if cand.count("(") != cand.count(")"):
            if cand.startswith("(") and ")" not in cand:
                continue
            if cand.endswith(")") or cand.count("(") > cand.count(")"):
                cand = cand.lstrip("(") if cand.count("(") > cand.count(")") else cand
        ds = v.digits(cand)
        if not 7 <= len(ds) <= 15 or len(set(ds)) < 3:
            continue
        if _DATE_LIKE.match(cand) or _DOTTED_QUAD.match(cand):
            continue
        start = m.start() + (len(raw) - len(raw.lstrip()))
        end = start + len(cand.strip())
        formatted = cand[0] in "+(" or any(c in cand for c in " -.()")
        if not formatted:
            if lower is None:
                lower = text.lower()
            before = lower[max(0, start - 40) : start]
            if not any(w in before for w in PHONE_CONTEXT):
                continue
        number = None
        intl = cand.startswith("+") or cand.startswith("00")
        try:
            if intl:
                parsed = phonenumbers.parse("+" + cand[2:] if cand.startswith("00") else cand, None)
                if phonenumbers.is_valid_number(parsed):
                    number = parsed
            else:
                for region in _REGIONS:
                    parsed = phonenumbers.parse(cand, region)
                    if phonenumbers.is_valid_number(parsed):
                        number = parsed
                        break
        except phonenumbers.NumberParseException:
            continue
        if number is None:
            continue
        conf = 0.8 if (intl or formatted) else 0.7
        yield (start, end, conf)


# --- network ---------------------------------------------------------------------------------
IPV4_RE = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
IPV6_RE = re.compile(
    r"(?<![\w:.])(?:(?:[0-9A-Fa-f]{1,4}:){1,7}|:)(?::|(?::?[0-9A-Fa-f]{1,4}){1,7})"
    r"(?:(?<=:)(?:\d{1,3}\.){3}\d{1,3})?(?:%[\w.]+)?(?![\w:]|\.\d)"
)
MAC_RE = re.compile(
    r"(?<![\w:.-])(?:[0-9A-Fa-f]{2}([:-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}"
    r"|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4})(?![\w:.-])"
)


IPV6_V4_RE = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,6}(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")


def find_ipv6(text: str) -> Iterator[tuple[int, int, float]]:
    """IPv6 host addresses; ranges (``2001:db8::/32``), ``::``, ``::1`` and the documentation
    prefix stay visible."""
    if "." in text:
        for m in IPV6_V4_RE.finditer(text):  # ::ffff:192.0.2.1
            if v.ipv6(m.group(0)) and not v.non_personal_ip(m.group(0)) and not _range_prefix(text, m.start(), m.end(), 128):
                yield (m.start(), m.end(), 0.92)
    for m in IPV6_RE.finditer(text):
        s = m.group(0)
        if v.ipv6(s) and not v.non_personal_ip(s) and not _range_prefix(text, m.start(), m.end(), 128):
            yield (m.start(), m.end(), 0.9)


_VERSION_BEFORE = re.compile(r"(?:v|version|ver\.?|release|build|tag|patch|(?:upgrade|upgrading|bump|bumping|pin|pinned)\s+to)\s*$", re.I)
_PREFIX_AFTER = re.compile(r"/(\d{1,3})(?!\d)")


def _range_prefix(text: str, start: int, end: int, full: int) -> bool:
    """Whether the address ``text[start:end]`` is followed by a prefix length that makes it a
    network (``10.0.0.0/8``, ``0.0.0.0/0``, ``2001:db8::/32``): a range is nobody's address.
    An address with host bits set (``192.168.1.23/24``, an interface's address) and a full-length
    prefix (``/32``, ``/128``) are one host and stay masked."""
    m = _PREFIX_AFTER.match(text, end)
    if m is None or int(m.group(1)) >= full:
        return False
    try:
        ipaddress.ip_network(f"{text[start:end].split('%', 1)[0]}/{m.group(1)}", strict=True)
    except ValueError:
        return False
    return True


def find_ipv4(text: str) -> Iterator[tuple[int, int, float]]:
    """IPv4 addresses of hosts. Left visible: network ranges in CIDR notation (``0.0.0.0/0``,
    ``10.0.0.0/8``), the unspecified and loopback addresses, the documentation ranges (RFC
    5737), broadcast and netmasks, and dotted version numbers (``version 10.2.3.4``)."""
    for m in IPV4_RE.finditer(text):
        s = m.group(0)
        if not v.ipv4(s) or v.non_personal_ip(s):
            continue
        if _range_prefix(text, m.start(), m.end(), 32):
            continue
        if _VERSION_BEFORE.search(text[max(0, m.start() - 16) : m.start()]):
            continue
        yield (m.start(), m.end(), 0.9)


# --- dates of birth --------------------------------------------------------------------------
_MONTHS = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
DATE_RE = re.compile(
    r"(?<![\w/.-])(?:"
    r"\d{4}[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])"
    r"|(?:0?[1-9]|[12]\d|3[01])[-/.](?:0?[1-9]|[12]\d|3[01])[-/.](?:\d{4}|\d{2})"
    rf"|{_MONTHS}\.?\s+(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?,?\s+\d{{4}}"
    rf"|(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?(?:\s+of)?\s+{_MONTHS}\.?,?\s+\d{{4}}"
    rf"|(?:0?[1-9]|[12]\d|3[01])-{_MONTHS}-\d{{2,4}}"
    r")(?![\w/-])",
    re.I,
)
DOB_CONTEXT = ("born", "birth", "dob", "d.o.b", "b-day", "bday", "birthday", "date of birth")


# --- credentials in URLs ---------------------------------------------------------------------
URL_CRED_RE = re.compile(
    r"\b[A-Za-z][A-Za-z0-9+.-]{1,30}://(?P<user>[^\s:/@?#\"'<>]{0,256}):(?P<pw>[^\s/\"'<>]{1,256})@(?=[\w\[-][\w.\[\]:-]*(?:[/?#\s\"'<>,;)]|$))"
)


# --- firms named with their legal form ("Moss Ltd", "Haynes, Cook and Sons LLC") ---------------
_FIRM_WORD = r"[A-Z][A-Za-z'&]*+(?:-[A-Z][A-Za-z'&]*+)*+"
COMPANY_RE = re.compile(
    rf"(?<![\w.-]){_FIRM_WORD}(?:,?[ \t]+(?:and[ \t]+|&[ \t]+)?{_FIRM_WORD}){{0,3}}[ \t,]+"
    r"(?:Inc|Ltd|LLC|L\.L\.C|PLC|LLP|Corp|Corporation|GmbH|AG|S\.A|SAS|BV|B\.V|Pty|Limited|"
    r"Holdings|and Sons|& Sons)\b\.?"
)
COMPANY_KEYWORDS = ("inc", "ltd", "llc", "l.l.c", "plc", "llp", "corp", "gmbh", "ag", "s.a", "sas", "bv", "b.v", "pty", "limited", "holdings", "sons")


def builtin_pii() -> list[Detector]:
    """The personal-data detectors, in no particular order."""
    return [
        Detector("email", "EMAIL", 0.95, EMAIL_RE, requires="@"),
        Detector("credit_card", "CREDIT_CARD", 0.95, CARD_RE, validator=_card_ok, min_digits=12),
        Detector("iban", "IBAN", 0.95, finder=find_iban, min_digits=4),
        Detector(
            "us_ssn", "US_SSN", 0.85, SSN_SEP_RE,
            validator=lambda s: v.us_ssn(s), min_digits=9,
        ),
        Detector(
            "us_ssn_context", "US_SSN", 0.8, SSN_BARE_RE, validator=v.us_ssn,
            keywords=SSN_CONTEXT, context=SSN_CONTEXT, window=40,
        ),
        Detector("phone", "PHONE", 0.8, finder=find_phones, min_digits=7),
        Detector("ipv4", "IP_ADDRESS", 0.9, finder=find_ipv4, requires=".", min_digits=4),
        Detector("ipv6", "IP_ADDRESS", 0.9, finder=find_ipv6, requires=":"),
        Detector("mac_address", "MAC_ADDRESS", 0.9, MAC_RE, validator=v.mac, requires=":-."),
        Detector(
            "date_of_birth", "DATE_OF_BIRTH", 0.85, DATE_RE,
            keywords=DOB_CONTEXT, context=DOB_CONTEXT, window=40,
        ),
        Detector("url_credentials", "SECRET", 0.97, URL_CRED_RE, group="pw", keywords=("://",)),
        Detector("crypto_wallet", "CRYPTO", 0.95, finder=find_wallets, min_digits=2),
        Detector("street_address", "ADDRESS", 0.8, finder=find_addresses, min_digits=1),
        Detector("company_suffix", "ORGANIZATION", 0.7, COMPANY_RE, keywords=COMPANY_KEYWORDS),
    ]
