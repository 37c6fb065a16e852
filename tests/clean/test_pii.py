"""brewslm.clean.pii: every kind found with its exact span and redacted with its placeholder;
invalid look-alikes (Luhn, mod-97) and everyday numbers are not flagged."""

from __future__ import annotations

import pytest

from brewslm.clean.pii import PiiSpan, find_pii, iban_ok, luhn_ok, redact

# Token-shaped values are assembled at run time so that secret scanners do not flag this file.
ALNUM36 = "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF3hJ5"
GITHUB = "ghp" + "_" + ALNUM36
GITHUB_PAT = "github" + "_pat_" + "11ABCDEFG0123456789abc" + "_" + "x" * 20 + "Y7z" * 13
SLACK = "xox" + "b-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
OPENAI = "sk" + "-proj-" + "Q2w3E4r5T6y7U8i9O0pA1s2D3f4G5h6J7k8L9z0X"
ANTHROPIC = "sk" + "-ant-api03-" + "Zx8vQ2mN4pL7rT1wY6uB3cK9-_aS5dF7gH9jK1lQ3wE5rT7yU9i"
HF = "hf" + "_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ01234567"
GOOGLE = "AI" + "za" + "SyD-1a2B3c4D5e6F7g8H9i0JkLmNoPqRsTu"  # AIza + 35
AWS = "AKIA" + "IOSFODNN7EXAMPLE"
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9" + "." + "eyJzdWIiOiIxMjM0NTY3ODkwIn0" + "."
       + "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U")


def found(text: str) -> list[tuple[str, str]]:
    return [(s.kind, text[s.start:s.end]) for s in find_pii(text)]


@pytest.mark.parametrize(("kind", "value"), [
    ("EMAIL", "anna.smith+orders@mail.example.org"),
    ("EMAIL", "j_doe99@example.co.uk"),
    ("PHONE", "(415) 555-2671"),
    ("PHONE", "415-555-2671"),
    ("PHONE", "415.555.2671"),
    ("PHONE", "+1 415 555 2671"),
    ("PHONE", "1-800-555-0199"),
    ("PHONE", "+44 20 7946 0958"),
    ("PHONE", "020 7946 0958"),
    ("PHONE", "07700 900123"),
    ("PHONE", "+49 30 12345678"),
    ("PHONE", "030 12345678"),
    ("PHONE", "+33 1 23 45 67 89"),
    ("PHONE", "01 23 45 67 89"),
    ("PHONE", "+91 98765 43210"),
    ("PHONE", "0044 20 7946 0958"),
    ("PHONE", "+14155552671"),
    ("CREDIT_CARD", "4111 1111 1111 1111"),
    ("CREDIT_CARD", "5555-5555-5555-4444"),
    ("CREDIT_CARD", "3782 822463 10005"),
    ("CREDIT_CARD", "6011111111111117"),
    ("IP_ADDRESS", "192.168.10.254"),
    ("IP_ADDRESS", "2001:db8::8a2e:370:7334"),
    ("IP_ADDRESS", "fe80::1"),
    ("IP_ADDRESS", "::ffff:192.0.2.1"),
    ("IBAN", "DE89 3704 0044 0532 0130 00"),
    ("IBAN", "GB82WEST12345698765432"),
    ("IBAN", "GB82 WEST 1234 5698 7654 32"),
    ("IBAN", "NL91ABNA0417164300"),
    ("IBAN", "FR1420041010050500013M02606"),
    ("API_KEY", AWS),
    ("API_KEY", GITHUB),
    ("API_KEY", GITHUB_PAT),
    ("API_KEY", SLACK),
    ("API_KEY", OPENAI),
    ("API_KEY", ANTHROPIC),
    ("API_KEY", HF),
    ("API_KEY", GOOGLE),
    ("API_KEY", JWT),
])
def test_each_kind_is_found_with_its_exact_span_and_redacted(kind, value):
    text = f"Hi, this is for ticket 4821: {value}. Thanks!"
    spans = find_pii(text)
    start = text.index(value)
    assert spans == [PiiSpan(kind, start, start + len(value))]
    assert redact(text, spans) == f"Hi, this is for ticket 4821: <{kind}>. Thanks!"


def test_secrets_after_bearer_or_a_key_name_are_redacted_but_the_name_stays():
    text = ('curl -H "Authorization: Bearer 9f8E7d6C5b4A3f2E1d0C9b8A7f6E5d4C" and '
            'api_key="Zx8vQ2mN4pL7rT1wY6uB3cK9", client_secret: s3CrEt0123456789abcdEFGH.')
    assert redact(text, find_pii(text)) == (
        'curl -H "Authorization: Bearer <API_KEY>" and api_key="<API_KEY>", '
        'client_secret: <API_KEY>.')


def test_a_row_with_every_kind_redacts_to_typed_placeholders():
    text = (f"Mail anna@example.com or call (415) 555-2671. Card 4111 1111 1111 1111, "
            f"IBAN DE89 3704 0044 0532 0130 00, from 10.0.0.7, key {AWS}.")
    assert redact(text, find_pii(text)) == (
        "Mail <EMAIL> or call <PHONE>. Card <CREDIT_CARD>, IBAN <IBAN>, from <IP_ADDRESS>, "
        "key <API_KEY>.")
    spans = find_pii(text)
    assert [s.start for s in spans] == sorted(s.start for s in spans)
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:], strict=False))


@pytest.mark.parametrize("text", [
    "The card 4111 1111 1111 1112 was declined.",  # Luhn-invalid
    "The card 5555-5555-5555-4445 was declined.",
    "The card 3782 822463 10006 was declined.",
    "Card 1234 5678 9012 3452 is a test number.",  # Luhn-valid but no issuer starts with 1
    "Refund to DE89 3704 0044 0532 0130 01 failed.",  # mod-97-invalid
    "Refund to GB82 WEST 1234 5698 7654 33 failed.",
    "Refund to NL91ABNA0417164301 failed.",
    "Refund to XX89 3704 0044 0532 0130 00 failed.",  # no such country
])
def test_invalid_cards_and_ibans_are_not_flagged_at_all(text):
    assert found(text) == []


@pytest.mark.parametrize("text", [
    "Order #48213 and order 1234567 are late.",
    "Order no. 5550123456 shipped.",  # a bare 10-digit id without a phone word
    "Case 0012345678 reopened.",
    "Ticket TCK-2024-001234, invoice INV-2024-000123, SKU-2291-XL.",
    "It cost $1,299.99, or EUR 49.00, or 1.299,00 EUR.",
    "Since 2024-03-15, on 03/15/2024, booked for 15.03.2024 at 14:05 (10:30:00 UTC).",
    "In 1999 and 2023 we sold 250000 units.",
    "After updating to v2.3.1 and version 4.12.0 on build 10.0.19045, v1.2.3.4 broke.",
    "Running version 1.2.3.4 now.",
    "Request id 3f2b8c1e-9d4a-4b7e-8c2f-1a2b3c4d5e6f failed.",
    "Fixed in commit 9fceb02d0ae598e95dc970b74767f19372d61af8.",
    "Use std::vector and a::b; MAC 00:1A:2B:3C:4D:5E.",
    "Tracking 1Z999AA10123456784, zip 94103, pi 3.14159265358.",
    "Set token=short and password=hunter2 and secret: not-a-real-one.",
    "The taskforce met; the ask-me-anything thread is open.",
    "Contact John Smith at the Berlin office.",  # names are not detected (no offline NER)
])
def test_everyday_numbers_and_words_are_not_flagged(text):
    assert found(text) == []


def test_overlapping_candidates_keep_the_higher_priority_kind():
    # An e-mail whose local part is digits: PHONE would match inside it; EMAIL wins.
    text = "write to 4155552671@example.com please"
    assert found(text) == [("EMAIL", "4155552671@example.com")]


def test_trailing_full_stop_is_not_part_of_a_match():
    assert found("Reach me at jo@example.com.") == [("EMAIL", "jo@example.com")]
    assert found("Server 10.1.2.3.") == [("IP_ADDRESS", "10.1.2.3")]


def test_the_checksums():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("DE89370400440532013000") and not iban_ok("DE89370400440532013001")
    assert not iban_ok("DE8937040044053201300")  # one character short for DE


def test_redact_without_spans_and_empty_text():
    assert redact("nothing here", []) == "nothing here"
    assert find_pii("") == []
