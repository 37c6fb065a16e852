"""PII detection and redaction for stage 05 (clean): regular expressions plus validation.

    from brewslm.clean.pii import find_pii, redact
    spans = find_pii("Mail jo@example.com, card 4111 1111 1111 1111")
    redact(text, spans)   # "Mail <EMAIL>, card <CREDIT_CARD>"

Kinds and what makes a match count (a candidate that fails its check is not PII):

- EMAIL: local@domain.tld, no leading, trailing or doubled dot in the local part.
- PHONE: international (+CC or 00CC, 8-15 digits), North American (NPA-NXX-XXXX with valid
  area and exchange codes, optional 1 and brackets), European national numbers starting with 0
  and written with separators (10-11 digits), and bare 10-13 digit runs only right after a
  phone word ("call", "tel", "mobile", ...). Years, prices, dates and order ids do not match.
- CREDIT_CARD: 13-19 digits, contiguous or grouped with one kind of separator, a known issuer
  prefix (Visa, Mastercard, Amex, Discover, Diners, JCB, UnionPay, Maestro), Luhn-valid.
- IP_ADDRESS: IPv4 with octets 0-255 (not after "v" or "version", where it is a version), IPv6
  as validated by `ipaddress`.
- IBAN: a known country code, that country's length, mod-97 remainder 1.
- API_KEY: known token shapes (AWS access key ids, GitHub, Slack, OpenAI, Anthropic,
  Hugging Face, Google API keys, JWTs whose header decodes to JSON, `Bearer <token>`) and long
  high-entropy values after key=/token=/secret=/password= style names.

Person names are NOT detected: that needs a named-entity model and BrewSLM ships none that
works offline, so this module does not pretend to. Names (and postal addresses) pass through.

Spans never overlap: where two candidates do, the higher-priority kind wins (API_KEY, EMAIL,
IBAN, CREDIT_CARD, IP_ADDRESS, PHONE), then the longer one. Pure functions; no events.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

KINDS = ("API_KEY", "EMAIL", "IBAN", "CREDIT_CARD", "IP_ADDRESS", "PHONE")  # priority order
PLACEHOLDERS = {kind: f"<{kind}>" for kind in KINDS}


@dataclass(frozen=True)
class PiiSpan:
    """A PII match: text[start:end] is of this kind."""

    kind: str
    start: int
    end: int


Finder = Callable[[str], Iterator[tuple[int, int]]]


# --- shared ------------------------------------------------------------------------------

# An IBAN head ("NL91 ABNA ") or a group with digits ("3704 ") right before a match: the match
# is the tail of a longer code (an invalid IBAN, a reference), not a number of its own.
GLUED_RE = re.compile(r"(?:\b[A-Z]{2}\d{2}(?: [A-Z0-9]{4})* |(?=[A-Z0-9]*\d)[A-Z0-9]{3,} )$")


def _glued(text: str, start: int) -> bool:
    return GLUED_RE.search(text, max(0, start - 40), start) is not None


# --- EMAIL -------------------------------------------------------------------------------

EMAIL_RE = re.compile(
    r"(?<![\w.%+-])([A-Za-z0-9._%+-]{1,64})@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,24})(?![\w-])")


def _emails(text: str) -> Iterator[tuple[int, int]]:
    if "@" not in text:
        return
    for m in EMAIL_RE.finditer(text):
        local = m.group(1)
        if not (local.startswith(".") or local.endswith(".") or ".." in local):
            yield m.span()


# --- PHONE -------------------------------------------------------------------------------

# Digit boundaries: not glued to other digits, words, decimals or dashed ids on either side.
_PRE = r"(?<![\w.,/+-])"
_POST = r"(?![\w/]|[.,-]\d)"
INTL_PHONE_RE = re.compile(
    _PRE + r"(?:\+|00)[1-9]\d{0,2}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,5}){1,6}" + _POST)
NANP_PHONE_RE = re.compile(
    r"(?<![\w.,/+(-])(?:1[ .-]?)?(?:\(([2-9]\d\d)\) ?|([2-9]\d\d)[ .-])([2-9]\d\d)[ .-]\d{4}"
    + _POST)
NATIONAL_PHONE_RE = re.compile(
    r"(?<![\w.,/+(-])(?:\(0\d{1,4}\)|0[1-9]\d{0,3})(?:[ .\-/]\d{2,8}){1,4}" + _POST)
LONG_DIGITS_RE = re.compile(r"\d{10}")
BARE_PHONE_RE = re.compile(
    r"(?i)\b(?:phone|tel|telephone|mobile|cell|call|text me|sms|whatsapp|fax)\b[^\d\n]{0,12}"
    r"(?<![\d+])(\+?\d{10,13})" + _POST)


def _digit_count(s: str) -> int:
    return sum(c.isdigit() for c in s)


def _intl_ok(number: str) -> bool:
    if number.startswith("00"):
        # Without separators 00... is as likely a zero-padded id as a dialled prefix.
        return 8 <= _digit_count(number) - 2 <= 15 and not number.isdigit()
    return 8 <= _digit_count(number) <= 15


def _phones(text: str) -> Iterator[tuple[int, int]]:
    for m in INTL_PHONE_RE.finditer(text):
        if _intl_ok(m.group()) and not _glued(text, m.start()):
            yield m.span()
    yield from (m.span() for m in NANP_PHONE_RE.finditer(text) if not _glued(text, m.start()))
    for m in NATIONAL_PHONE_RE.finditer(text):
        # 10-11 digits: shorter dotted or slashed groups are dates (01.02.2023), not numbers.
        if 10 <= _digit_count(m.group()) <= 11 and not _glued(text, m.start()):
            yield m.span()
    if LONG_DIGITS_RE.search(text):  # the phone-word rule is slow; most texts skip it
        yield from (m.span(1) for m in BARE_PHONE_RE.finditer(text))


# --- CREDIT_CARD -------------------------------------------------------------------------

CARD_RE = re.compile(
    r"(?<![\w.,-])(?:\d{4}([ -])\d{4}\1\d{4}\1\d{1,4}(?:\1\d{3})?"  # 4-4-4-(1..4)(-3)
    r"|\d{4}([ -])\d{6}\2\d{4,5}"  # Amex / Diners 4-6-5, 4-6-4
    r"|\d{13,19})" + r"(?![\w]|[.,-]\d)")
# Issuer (IIN) prefixes: a Luhn check alone passes one random number in ten.
# Visa 4; Mastercard 51-55, 2221-2720; Maestro 50, 56-69; Discover, UnionPay 6; Amex 34, 37;
# Diners 30, 36, 38, 39; JCB 35.
CARD_PREFIX_RE = re.compile(r"[456]|3[045-9]|2(?:22[1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720)")


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a digit string (card numbers end in a Luhn check digit)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _cards(text: str) -> Iterator[tuple[int, int]]:
    for m in CARD_RE.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if (13 <= len(digits) <= 19 and CARD_PREFIX_RE.match(digits) and luhn_ok(digits)
                and not _glued(text, m.start())):
            yield m.span()


# --- IP_ADDRESS --------------------------------------------------------------------------

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
IPV4_RE = re.compile(r"(?<![\w.])" + _OCTET + r"(?:\." + _OCTET + r"){3}(?![\w]|\.\d)")
IPV6_RE = re.compile(r"(?<![\w:.])[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*(?:%\w+)?(?![\w:])")
VERSION_BEFORE_RE = re.compile(r"(?i)(?:\bv|\b(?:version|ver|build|release)\s*)$")


def _ips(text: str) -> Iterator[tuple[int, int]]:
    for m in IPV4_RE.finditer(text):
        if not VERSION_BEFORE_RE.search(text[max(0, m.start() - 12):m.start()]):
            yield m.span()
    if "::" in text or text.count(":") >= 7:
        for m in IPV6_RE.finditer(text):
            if _is_ipv6(m.group().rstrip(".")):
                yield m.start(), m.start() + len(m.group().rstrip("."))


def _is_ipv6(candidate: str) -> bool:
    # "::", "a::b" (C++ scopes) and "dead::beef" are valid syntax but rarely addresses in
    # prose: ask for a decimal digit too (::1 and fe80::1 still count).
    if not any(c.isdigit() for c in candidate):
        return False
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


# --- IBAN --------------------------------------------------------------------------------

IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}
IBAN_RE = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?"
                     r"(?![A-Za-z0-9])")


def iban_ok(iban: str) -> bool:
    """Country length and the ISO 13616 mod-97 check of a compact (no spaces) IBAN."""
    if IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _ibans(text: str) -> Iterator[tuple[int, int]]:
    for m in IBAN_RE.finditer(text):
        length = IBAN_LENGTHS.get(m.group()[:2])
        compact = m.group().replace(" ", "")
        if length and len(compact) >= length and iban_ok(compact[:length]):
            # The match may run on into a following code: keep exactly `length` characters.
            end, seen = m.start(), 0
            while seen < length:
                seen += text[end] != " "
                end += 1
            yield m.start(), end


# --- API_KEY -----------------------------------------------------------------------------

TOKEN_RE = re.compile("|".join(f"(?:{p})" for p in (  # one pass over the text for all shapes
    r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA)[A-Z0-9]{16}\b",  # AWS access key id
    r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b",  # GitHub tokens
    r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b",  # GitHub fine-grained tokens
    r"\bxox[abposr]-[A-Za-z0-9-]{10,250}\b",  # Slack
    r"\bsk-ant-[A-Za-z0-9_-]{20,}",  # Anthropic
    r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",  # OpenAI
    r"\bhf_[A-Za-z0-9]{30,}\b",  # Hugging Face
    r"\bAIza[0-9A-Za-z_-]{35}(?![\w-])",  # Google API key
)))
JWT_RE = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}")
BEARER_RE = re.compile(r"\bBearer\s+([A-Za-z0-9._~+/-]{16,}=*)")
# name = value, the name starting at an identifier start (not at every character: speed).
ASSIGNED_RE = re.compile(r"(?<![A-Za-z0-9_-])([A-Za-z][A-Za-z0-9_-]{1,60})[\"']?\s*[:=]\s*[\"']?"
                         r"([A-Za-z0-9_\-./+=]{20,})")
SECRET_NAME_RE = re.compile(r"(?i)(?:api[_-]?key|secret|token|passw(?:or)?d|pwd|access[_-]?key|"
                            r"private[_-]?key|auth)$")
MIN_SECRET_ENTROPY = 3.5  # bits per character: random tokens reach ~4.5-6, words and ids less


def shannon_entropy(s: str) -> float:
    """Bits per character of the string's own character distribution."""
    counts = Counter(s)
    return -sum(n / len(s) * math.log2(n / len(s)) for n in counts.values())


def _looks_random(token: str) -> bool:
    """A secret, not a word, path or id: two of lower case, upper case and digits, and high
    entropy."""
    classes = (any(c.islower() for c in token) + any(c.isupper() for c in token)
               + any(c.isdigit() for c in token))
    return classes >= 2 and shannon_entropy(token) >= MIN_SECRET_ENTROPY


def _jwt_ok(token: str) -> bool:
    header = token.split(".", 1)[0]
    try:
        decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return False
    return isinstance(decoded, dict) and "alg" in decoded


def _api_keys(text: str) -> Iterator[tuple[int, int]]:
    yield from (m.span() for m in TOKEN_RE.finditer(text))
    if "eyJ" in text:  # cheap literal checks spare most texts a regex pass
        yield from (m.span() for m in JWT_RE.finditer(text) if _jwt_ok(m.group()))
    secrets = [m.span(1) for m in BEARER_RE.finditer(text)] if "Bearer" in text else []
    secrets += [m.span(2) for m in ASSIGNED_RE.finditer(text)
                if SECRET_NAME_RE.search(m.group(1))]
    for start, end in secrets:
        token = text[start:end].rstrip(".")  # a sentence's full stop is not part of the secret
        if _looks_random(token):
            yield start, start + len(token)


# --- finding and redacting ---------------------------------------------------------------

FINDERS: dict[str, Finder] = {"API_KEY": _api_keys, "EMAIL": _emails, "IBAN": _ibans,
                              "CREDIT_CARD": _cards, "IP_ADDRESS": _ips, "PHONE": _phones}
NEEDS_DIGIT = {"IBAN", "CREDIT_CARD", "PHONE"}


def _candidates(text: str) -> list[PiiSpan]:
    has_digit = any(c.isdigit() for c in text)
    return [PiiSpan(kind, start, end) for kind, finder in FINDERS.items()
            if has_digit or kind not in NEEDS_DIGIT
            for start, end in finder(text) if end > start]


def _overlaps(span: PiiSpan, taken: list[PiiSpan]) -> bool:
    return any(span.start < t.end and t.start < span.end for t in taken)


def find_pii(text: str) -> list[PiiSpan]:
    """All PII spans in the text, sorted by start, never overlapping."""
    if not text:
        return []
    ranked = sorted(_candidates(text),
                    key=lambda s: (KINDS.index(s.kind), s.start - s.end, s.start))
    taken: list[PiiSpan] = []
    for span in ranked:
        if not _overlaps(span, taken):
            taken.append(span)
    return sorted(taken, key=lambda s: s.start)


def redact(text: str, spans: list[PiiSpan]) -> str:
    """The text with each span replaced by its typed placeholder (<EMAIL>, <PHONE>, ...)."""
    out, pos = [], 0
    for span in sorted(spans, key=lambda s: s.start):
        out += [text[pos:span.start], PLACEHOLDERS[span.kind]]
        pos = span.end
    out.append(text[pos:])
    return "".join(out)
