"""Checksums and structural rules that turn a regex match into a validated finding.

Every validator takes the matched text (separators included) and returns whether it is a
plausible real value. They are pure and cheap; the scanner calls them only on regex matches.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable

_NON_DIGIT = re.compile(r"\D")
_NON_ALNUM = re.compile(r"[^0-9A-Za-z]")


def digits(text: str) -> str:
    """The digits of ``text``, in order."""
    return _NON_DIGIT.sub("", text)


def luhn(text: str) -> bool:
    """The Luhn (mod 10) check used by payment cards, IMEI, Canadian SIN, NPI."""
    ds = digits(text)
    if not ds:
        return False
    total = 0
    for i, ch in enumerate(reversed(ds)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# Issuer prefixes (IIN ranges) of the card networks, with their lengths.
_CARD_RULES: tuple[tuple[re.Pattern[str], tuple[int, ...]], ...] = (
    (re.compile(r"^4"), (13, 16, 19)),  # Visa
    (re.compile(r"^(5[1-5]|222[1-9]|22[3-9]\d|2[3-6]\d\d|27[01]\d|2720)"), (16,)),  # Mastercard
    (re.compile(r"^3[47]"), (15,)),  # Amex
    (re.compile(r"^(6011|65|64[4-9]|622)"), (16, 17, 18, 19)),  # Discover / UnionPay co-brand
    (re.compile(r"^62"), (16, 17, 18, 19)),  # UnionPay
    (re.compile(r"^35(2[89]|[3-8]\d)"), (16, 17, 18, 19)),  # JCB
    (re.compile(r"^3(0[0-5]|[689])"), (14, 15, 16, 17, 18, 19)),  # Diners
    (re.compile(r"^(5018|5020|5038|5893|6304|6759|676[1-3]|6799)"), (12, 13, 14, 15, 16, 17, 18, 19)),  # Maestro
    (re.compile(r"^(2200|2201|2202|2203|2204)"), (16, 17, 18, 19)),  # Mir
    (re.compile(r"^(50|5[6-9]|6[0-9])"), (12, 13, 14, 15, 16, 17, 18, 19)),  # other Maestro/local
    (re.compile(r"^1"), (15,)),  # UATP
)


def credit_card(text: str) -> bool:
    """A payment card number: a known issuer prefix with a length it issues, and Luhn."""
    ds = digits(text)
    if not 12 <= len(ds) <= 19:
        return False
    if len(set(ds)) < 2:  # 0000 0000 0000 0000
        return False
    for prefix, lengths in _CARD_RULES:
        if prefix.match(ds) and len(ds) in lengths:
            return luhn(ds)
    return False


# Country code -> IBAN length (ISO 13616 registry, plus the experimental ones in use).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
    # In use but not (yet) in the registry.
    "AO": 25, "BF": 28, "BJ": 28, "CF": 27, "CG": 27, "CI": 28, "CM": 27, "CV": 25, "DZ": 26,
    "GA": 27, "GQ": 27, "GW": 25, "HN": 28, "IR": 26, "KM": 27, "MA": 28, "MG": 27, "ML": 28,
    "MZ": 25, "NE": 28, "SN": 28, "TD": 27, "TG": 28,
}


def iban(text: str) -> bool:
    """An IBAN: a known country, that country's length, and the ISO 7064 mod 97-10 check."""
    compact = _NON_ALNUM.sub("", text).upper()
    if len(compact) < 15 or not compact[:2].isalpha() or not compact[2:4].isdigit():
        return False
    if IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


def us_ssn(text: str) -> bool:
    """A US Social Security number under the SSA's rules.

    Area 000, 666 and 900-999 are never issued; group 00 and serial 0000 neither; and a few
    numbers are known to be fake (the Woolworth wallet card, advertising samples). Mixed
    separators (``123-45 6789``) are not an SSN.
    """
    seps = {c for c in text if not c.isdigit()}
    if len(seps) > 1:
        return False
    ds = digits(text)
    if len(ds) != 9:
        return False
    area, group, serial = ds[:3], ds[3:5], ds[5:]
    if area in ("000", "666") or area[0] == "9":
        return False
    if group == "00" or serial == "0000":
        return False
    if ds in ("078051120", "219099999", "123456789", "111111111", "333333333", "987654320"):
        return False
    return len(set(ds)) > 1


def aba_routing(text: str) -> bool:
    """An ABA routing transit number: 9 digits with the 3-7-1 weighted checksum."""
    ds = digits(text)
    if len(ds) != 9 or len(set(ds)) == 1:
        return False
    w = (3, 7, 1) * 3
    return sum(int(d) * k for d, k in zip(ds, w, strict=True)) % 10 == 0


def ipv4(text: str) -> bool:
    """A dotted-quad IPv4 address (no leading zeros, each octet 0-255)."""
    parts = text.split(".")
    if len(parts) != 4:
        return False
    for p in parts:
        if not p.isdigit() or len(p) > 3 or (len(p) > 1 and p[0] == "0") or int(p) > 255:
            return False
    return True


def ipv6(text: str) -> bool:
    """An IPv6 address (any valid textual form, zone id allowed)."""
    value = text.split("%", 1)[0]
    if value.count(":") < 2:
        return False
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


_DOC_NETS = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "3fff::/20")
)
_MASK_OCTETS = frozenset({"0", "128", "192", "224", "240", "248", "252", "254", "255"})


def non_personal_ip(text: str) -> bool:
    """Addresses that identify nobody: unspecified (``0.0.0.0``, ``::``), loopback,
    broadcast, netmasks (``255.255.255.0``) and the documentation ranges (RFC 5737, 3849,
    9637)."""
    value = text.split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified or ip.is_loopback:
        return True
    if isinstance(ip, ipaddress.IPv4Address):
        octets = value.split(".") if "." in value and ":" not in value else str(ip).split(".")
        if octets[0] == "255" and all(o in _MASK_OCTETS for o in octets):
            return True  # broadcast or a netmask
    return any(ip in net for net in _DOC_NETS if net.version == ip.version)


def mac(text: str) -> bool:
    """A MAC address with one consistent separator; all-zero and broadcast are not personal."""
    hexdigits = _NON_ALNUM.sub("", text).lower()
    if len(hexdigits) != 12:
        return False
    seps = {c for c in text if not c.isalnum()}
    if len(seps) > 1:
        return False
    return hexdigits not in ("000000000000", "ffffffffffff")


def shannon_entropy(text: str) -> float:
    """Bits per character of ``text``'s character distribution."""
    if not text:
        return 0.0
    n = len(text)
    return -sum((c / n) * math.log2(c / n) for c in Counter(text).values())


def nhs_number(text: str) -> bool:
    """A UK NHS number: 10 digits, mod 11 check."""
    ds = digits(text)
    if len(ds) != 10:
        return False
    total = sum(int(d) * (10 - i) for i, d in enumerate(ds[:9]))
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == int(ds[9])


VALIDATORS: dict[str, Callable[[str], bool]] = {
    "luhn": luhn,
    "credit_card": credit_card,
    "iban": iban,
    "us_ssn": us_ssn,
    "ssn": us_ssn,
    "aba_routing": aba_routing,
    "ipv4": ipv4,
    "ipv6": ipv6,
    "mac": mac,
    "nhs": nhs_number,
}
"""Validators a custom detector may name in the policy file."""
