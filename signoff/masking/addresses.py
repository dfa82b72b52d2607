"""Street addresses written in prose: "ship it to 6946 Martin Inlet, Springfield, IL 62704".

An address is a house number, one to four capitalised words and a street suffix from the
USPS list (Street, Ave, Inlet, Crossing, …), optionally followed by a unit ("Apt. 4B",
"Suite 200") and ", City, ST 12345" / ", City 12345"; or a P.O. box. The whole run is masked, not
only the part a name model happens to see. A number followed by a suffix-like word in lower
case ("3 way merge", "5 lanes") is not an address: the street name must be capitalised.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# USPS Publication 28, appendix C1 (street suffixes and their abbreviations), without the ones
# that are everyday words in an engineer's sentence ("3 Run", "2 Pass", "Loop", "Path", "Keys").
_SUFFIXES = (
    "Alley|Aly|Annex|Anx|Arcade|Arc|Avenue|Ave|Av|Bayou|Byu|Beach|Bch|Bend|Bnd|Bluffs?|Blfs?|Bottom|Btm|"
    "Boulevard|Blvd|Branch|Br|Bridge|Brg|Brook|Brk|Burgs?|Bgs?|Bypass|Byp|Camp|Cp|Canyon|Cyn|Cape|Cpe|"
    "Causeway|Cswy|Centers?|Ctrs?|Ctr|Circles?|Cirs?|Cliffs?|Clfs?|Club|Clb|Common|Cmn|Corners?|Cors?|Course|"
    "Crse|Courts?|Cts?|Coves?|Cvs?|Creek|Crk|Crescent|Cres|Crest|Crst|Crossing|Xing|Crossroad|Xrd|"
    "Curve|Curv|Dale|Dl|Dam|Dm|Divide|Dv|Drives?|Drs?|Estates?|Ests?|Expressway|Expy|Extensions?|Exts?|"
    "Falls?|Fls|Ferry|Fry|Fields?|Flds?|Flats?|Flts?|Fords?|Frds?|Forest|Frst|Forges?|Frgs?|Forks?|Frks?|"
    "Fort|Ft|Freeway|Fwy|Gardens?|Gdns?|Gateway|Gtwy|Glens?|Glns?|Greens?|Grns?|Groves?|Grvs?|Harbors?|"
    "Hbrs?|Haven|Hvn|Heights|Hts|Highway|Hwy|Hills?|Hls?|Hollow|Holw|Inlet|Inlt|Islands?|Iss?|Isle|"
    "Junctions?|Jcts?|Knolls?|Knls?|Lakes?|Lks?|Landing|Lndg|Lane|Ln|Loaf|Lf|Lodge|Ldg|Mall|Manors?|Mnrs?|Meadows?|Mdws?|Mews|Mill|Ml|Mission|Msn|Motorway|Mtwy|"
    "Mount|Mt|Mountain|Mtn|Neck|Nck|Orchard|Orch|Oval|Overpass|Opas|Park|Pkwy|Parkway|Passage|Psge|"
    "Pike|Pines?|Pnes?|Place|Pl|Plains?|Plns?|Plaza|Plz|Points?|Pts?|Ports?|Prts?|Prairie|Pr|"
    "Radial|Radl|Ranch|Rnch|Rapids?|Rpds?|Ridges?|Rdgs?|River|Riv|Roads?|Rds?|Route|Rte|"
    "Row|Rue|Shoals?|Shls?|Shores?|Shrs?|Skyway|Skwy|Springs?|Spgs?|Spur|Squares?|Sqs?|Station|Sta|"
    "Stravenue|Stra|Stream|Strm|Streets?|Sts?|Summit|Smt|Terrace|Ter|Throughway|Trwy|Trace|Trce|Trafficway|Trfy|Trail|Trl|Trailer|Trlr|Tunnel|Tunl|Turnpike|Tpke|Underpass|Upas|Valleys?|Vlys?|Viaduct|Via|Villages?|Vlgs?|Ville|Vl|Vista|Vis|Walks?|Way|Ways|"
    "Wells?|Wls?"
)
_UNIT = r"(?:,?\s+(?:Apt\.?|Apartment|Suite|Ste\.?|Unit|Floor|Fl\.?|Room|Rm\.?|Bldg\.?|Building|#)\s*#?[A-Za-z0-9-]{1,8})?"
_CITY = r"(?:,\s*[A-Z][A-Za-z.'-]+(?![\w])(?:\s+[A-Z][A-Za-z.'-]+(?![\w])){0,3})?"
_STATE_ZIP = (
    r"(?:,?\s+[A-Z]{2}\s+\d{5}(?:-\d{4})?|,?\s+\d{5}(?:-\d{4})?"
    r"|,?\s+[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}\b)?"  # US state and ZIP, or a UK postcode
)
STREET_RE = re.compile(
    r"(?<![\w.-])\d{1,6}[A-Za-z]?(?:-\d{1,4})?\s+"
    r"(?:(?:N|S|E|W|NE|NW|SE|SW|North|South|East|West)\.?\s+)?"
    r"(?:[A-Z][A-Za-z'-]*\.?\s+|\d{1,3}(?:st|nd|rd|th)\s+){1,4}"
    rf"(?:{_SUFFIXES})\b\.?"
    r"(?:\s+(?:N|S|E|W|NE|NW|SE|SW)\b\.?)?"
    + _UNIT + _CITY + _STATE_ZIP
)
# Continental style, the number after the name: "Hauptstraße 5, 10115 Berlin", "Via Roma 12".
EU_STREET_RE = re.compile(
    r"(?<![\w-])(?:(?:Via|Rue|Calle|Avenida|Rua|Viale|Piazza|Corso|Boulevard|Avenue|Place|Chemin)"
    r"\s+(?:(?:de|del|della|des|du|la|le|dos|da)\s+)?[A-Z][\w'-]+(?:\s+[A-Z][\w'-]+){0,2}"
    r"|[A-Z][\w'-]*(?:stra(?:ß|ss)e|str\.|weg|gasse|platz|allee|damm|ring|ufer|gracht|laan|straat|vej|gatan|gata))"
    r",?\s+\d{1,5}[a-zA-Z]?(?:,?\s+\d{4,5}\s+[A-Z][\w'-]+(?:\s+[A-Z][\w'-]+)?)?"
)
PO_BOX_RE = re.compile(r"(?i)\bP\.?\s?O\.?\s+Box\s+\d{1,8}\b" + _CITY + _STATE_ZIP)


def find_addresses(text: str) -> Iterator[tuple[int, int, float]]:
    """Street addresses and P.O. boxes in free text."""
    for m in STREET_RE.finditer(text):
        end = m.end()
        while end > m.start() and text[end - 1] in ",. ":
            end -= 1
        yield (m.start(), end, 0.8)
    for m in EU_STREET_RE.finditer(text):
        yield (m.start(), m.end(), 0.75)
    if "box" in text.lower():
        for m in PO_BOX_RE.finditer(text):
            yield (m.start(), m.end(), 0.8)
