"""Benchmark: BrewSLM's PII recognizers (brewslm.clean.pii) against Microsoft Presidio.

    .venv/bin/python benchmarks/pii.py                   # 5,000 rows, seed 7
    .venv/bin/python benchmarks/pii.py --rows 20000 --seed 1

Generates a seeded corpus of support-ticket-like rows with planted PII of every kind (EMAIL,
PHONE, CREDIT_CARD, IP_ADDRESS, IBAN, API_KEY), whose spans are known, and PII-like decoys
that are not PII (order numbers, prices, dates, times, version strings, SKUs, UUIDs, commit
hashes, Luhn-invalid card numbers, mod-97-invalid IBANs). Both systems scan every row.

Scoring: a planted span is found when a prediction of the same kind overlaps it; a prediction
that overlaps no planted span of its kind is a false positive. Per kind: planted, found,
recall, false_positives; overall recall and precision (and recall over the five kinds Presidio
covers); rows/s; and which decoys each flagged (`false_positives_by_decoy`, "other_text" when
no decoy was hit).

Caveat: the corpus formats and our recognizers were written by the same hands, so our figures
here are in-distribution (an upper bound), not a field measurement.

Presidio runs pattern-only: an AnalyzerEngine on `spacy.blank("en")` (no model download),
limited to the five entity types it shares with us (it has no API-key recognizer; its
API_KEY recall is reported as 0 with `"supported": false`). Its e-mail recognizer calls
tldextract, which fetches the public-suffix list from the network by default: the benchmark
points tldextract at its bundled snapshot instead. Presidio is only imported here, never by
brewslm; if it or spacy is missing, only BrewSLM's figures are printed.

Progress goes to stderr; one JSON object goes to stdout.
"""

from __future__ import annotations

import argparse
import base64
import ipaddress
import json
import logging
import random
import string
import sys
import time
from collections import Counter
from typing import Any

from brewslm.clean.pii import find_pii, luhn_ok

KINDS = ("EMAIL", "PHONE", "CREDIT_CARD", "IP_ADDRESS", "IBAN", "API_KEY")
PRESIDIO_KINDS = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "CREDIT_CARD": "CREDIT_CARD",
                  "IP_ADDRESS": "IP_ADDRESS", "IBAN_CODE": "IBAN"}
ALNUM = string.ascii_letters + string.digits


def log(message: str) -> None:
    print(f"[pii] {message}", file=sys.stderr, flush=True)


# --- planted PII ---------------------------------------------------------------------------

FIRST = ["anna", "li", "omar", "sofia", "jan", "maria", "kenji", "lena", "tom", "priya"]
LAST = ["smith", "garcia", "muller", "rossi", "tanaka", "novak", "dubois", "okafor", "lee"]
DOMAINS = ["example.com", "mail.example.org", "corp.example.co.uk", "example.net",
           "shop.example.io"]
# Assigned North American area codes: numbers in unassigned ones are not real numbers.
AREA_CODES = ["212", "213", "305", "312", "415", "503", "617", "646", "702", "718", "773",
              "818", "917", "206", "404", "512", "615", "713", "801", "919"]


def digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def email(rng: random.Random) -> str:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    local = rng.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}{rng.randint(1, 99)}",
                        f"{first}+orders", f"{last}_{first}"])
    return f"{local}@{rng.choice(DOMAINS)}"


def phone(rng: random.Random) -> str:
    area, exch = rng.choice(AREA_CODES), f"{rng.randint(2, 9)}{digits(rng, 2)}"
    line = digits(rng, 4)
    forms = [f"({area}) {exch}-{line}", f"{area}-{exch}-{line}", f"{area}.{exch}.{line}",
             f"+1 {area} {exch} {line}", f"+1-{area}-{exch}-{line}", f"1-800-{exch}-{line}",
             f"+44 20 7{digits(rng, 3)} {digits(rng, 4)}",
             f"020 8{digits(rng, 3)} {digits(rng, 4)}",
             f"07{rng.randint(4, 9)}{digits(rng, 2)} {digits(rng, 6)}",
             f"+49 30 {digits(rng, 8)}", f"030 {digits(rng, 8)}",
             f"+33 1 {digits(rng, 2)} {digits(rng, 2)} {digits(rng, 2)} {digits(rng, 2)}",
             f"01 {digits(rng, 2)} {digits(rng, 2)} {digits(rng, 2)} {digits(rng, 2)}",
             f"+91 98{digits(rng, 3)} {digits(rng, 5)}"]
    return rng.choice(forms)


def card_digits(rng: random.Random, valid: bool = True) -> str:
    prefix, length = rng.choice([("4", 16), ("5" + str(rng.randint(1, 5)), 16), ("34", 15),
                                 ("37", 15), ("6011", 16)])
    body = prefix + digits(rng, length - len(prefix) - 1)
    check = next(d for d in string.digits if luhn_ok(body + d))
    if not valid:
        check = str((int(check) + rng.randint(1, 9)) % 10)
    return body + check


def card_format(rng: random.Random, number: str) -> str:
    sep = rng.choice([" ", "-", ""])
    groups = ([number[:4], number[4:10], number[10:]] if len(number) == 15
              else [number[i:i + 4] for i in range(0, len(number), 4)])
    return sep.join(groups)


def ip(rng: random.Random) -> str:
    if rng.random() < 0.7:
        return ".".join(str(rng.randint(1, 254)) for _ in range(4))
    groups = [rng.randint(0, 0xFFFF) for _ in range(8)]
    groups[rng.randint(2, 5)] = 0
    groups[rng.randint(2, 5)] = 0
    return str(ipaddress.IPv6Address(":".join(f"{g:x}" for g in [0x2001, 0xDB8, *groups[2:]])))


IBAN_FORMATS = {"DE": lambda r: digits(r, 18), "FR": lambda r: digits(r, 23),
                "ES": lambda r: digits(r, 20), "GB": lambda r: "NWBK" + digits(r, 14),
                "NL": lambda r: "ABNA" + digits(r, 10)}


def iban(rng: random.Random, valid: bool = True) -> str:
    country = rng.choice(sorted(IBAN_FORMATS))
    bban = IBAN_FORMATS[country](rng)
    check = 98 - int("".join(str(int(c, 36)) for c in bban + country + "00")) % 97
    if not valid:
        check = (check + rng.randint(1, 90)) % 97 + 2
    compact = f"{country}{check:02d}{bban}"
    if rng.random() < 0.5:
        return compact
    return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))


def token(rng: random.Random, n: int, alphabet: str = ALNUM) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def hexes(rng: random.Random, n: int) -> str:
    return token(rng, n, "0123456789abcdef")


def jwt(rng: random.Random) -> str:
    def b64(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return ".".join([b64({"alg": "HS256", "typ": "JWT"}),
                     b64({"sub": digits(rng, 8), "iat": 1700000000 + rng.randint(0, 10**6)}),
                     token(rng, 43, ALNUM + "-_")])


def api_key(rng: random.Random) -> tuple[str, str]:
    """(context, key): the context is written before the key, outside the planted span."""
    upper = string.ascii_uppercase + string.digits
    shapes = [("the AWS key ", "AKIA" + token(rng, 16, upper)),
              ("a GitHub token ", "ghp_" + token(rng, 36)),
              ("the fine-grained PAT ", "github_pat_" + token(rng, 22) + "_" + token(rng, 59)),
              ("the Slack bot token ", f"xoxb-{digits(rng, 12)}-{digits(rng, 12)}-"
                                       + token(rng, 24)),
              ("OPENAI_API_KEY=", "sk-proj-" + token(rng, 48, ALNUM + "_-")),
              ("the Anthropic key ", "sk-ant-api03-" + token(rng, 80, ALNUM + "_-")),
              ("HF_TOKEN ", "hf_" + token(rng, 34)),
              ("maps key ", "AIza" + token(rng, 35, ALNUM + "_-")),
              ("session ", jwt(rng)),
              ("header Authorization: Bearer ", token(rng, 40, ALNUM + "._-")),
              ("config api_key=", token(rng, 32)),
              ("client_secret: ", token(rng, 40))]
    return rng.choice(shapes)


def planted(rng: random.Random, kind: str) -> tuple[str, str, str]:
    """(text before, the PII, text after) for one planted item of this kind."""
    if kind == "API_KEY":
        context, key = api_key(rng)
        return f"Our integration leaked {context}", key, " in the logs."
    value = {"EMAIL": email, "PHONE": phone, "IP_ADDRESS": ip,
             "CREDIT_CARD": lambda r: card_format(r, card_digits(r)), "IBAN": iban}[kind](rng)
    before = rng.choice({
        "EMAIL": ["Please reply to ", "My e-mail is ", "CC "],
        "PHONE": ["Call me back on ", "My number is ", "You can reach me at "],
        "CREDIT_CARD": ["I paid with card ", "The charge on ", "Card number: "],
        "IP_ADDRESS": ["The login came from ", "Server ", "Blocked address "],
        "IBAN": ["Please refund to IBAN ", "My account is ", "Transfer to "],
    }[kind])
    return before, value, rng.choice([".", " today.", ", thanks.", " if possible."])


# --- decoys --------------------------------------------------------------------------------

def decoy(rng: random.Random) -> tuple[str, str]:
    """(decoy type, sentence) with PII-like numbers that are not PII."""
    d = rng.choice
    options = {
        "order_number": lambda: f"Order #{rng.randint(10000, 9999999)} is late.",
        "ticket_id": lambda: f"Ticket TCK-{rng.randint(2019, 2025)}-{digits(rng, 6)} was reopened.",
        "invoice": lambda: f"Invoice INV-{rng.randint(2019, 2025)}-{digits(rng, 6)} is attached.",
        "long_order_number": lambda: f"Order no. {rng.randint(1, 9)}{digits(rng, 9)} shipped.",
        "price": lambda: d([f"It cost ${rng.randint(1, 9)},{digits(rng, 3)}.{digits(rng, 2)}.",
                            f"The fee was EUR {rng.randint(10, 999)}.{digits(rng, 2)}.",
                            f"I was charged {rng.randint(10, 99)}.{digits(rng, 2)} USD twice."]),
        "date": lambda: d([f"Since {rng.randint(2019, 2025)}-{rng.randint(1, 12):02d}-"
                           f"{rng.randint(1, 28):02d} nothing works.",
                           f"It was delivered on {rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}"
                           f"/{rng.randint(2019, 2025)}.",
                           f"Booked for {rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}."
                           f"{rng.randint(2019, 2025)}."]),
        "time": lambda: f"The outage started at {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"
                        f":{rng.randint(0, 59):02d} UTC.",
        "version": lambda: d([f"After updating to v{rng.randint(1, 9)}.{rng.randint(0, 20)}."
                              f"{rng.randint(0, 9)} it crashes.",
                              f"Running version {rng.randint(1, 9)}.{rng.randint(0, 30)}."
                              f"{rng.randint(0, 99)} on Windows build 10.0.{digits(rng, 5)}."]),
        "sku": lambda: f"Item SKU-{digits(rng, 4)}-XL, qty {rng.randint(1, 12)}, zip "
                       f"{digits(rng, 5)}.",
        "uuid": lambda: f"Request id {hexes(rng, 8)}-{hexes(rng, 4)}-4{hexes(rng, 3)}"
                        f"-a{hexes(rng, 3)}-{hexes(rng, 12)} failed.",
        "commit": lambda: f"Fixed in commit {hexes(rng, 40)}.",
        "invalid_card": lambda: f"The number {card_format(rng, card_digits(rng, valid=False))} "
                                "was rejected as invalid.",
        "invalid_iban": lambda: f"The bank said {iban(rng, valid=False)} is not a valid IBAN.",
    }
    kind = d(sorted(options))
    return kind, options[kind]()


FILLER = ["Hi support,", "Hello team,", "This is the third time I am writing about this.",
          "The app keeps logging me out.", "Nothing happened after I pressed the button.",
          "Could you please look into it?", "Thanks in advance.", "Best regards.",
          "I would like a refund.", "The package never arrived.", "Please escalate this."]


def make_row(rng: random.Random) -> tuple[str, list[tuple[str, int, int]], list[tuple]]:
    """A ticket: filler, 0-3 planted PII items and 0-3 decoys, in random order; with the
    planted spans (kind, start, end) and the decoy spans (type, start, end)."""
    kinds = [rng.choice(KINDS) for _ in range(rng.randint(0, 3))]
    parts: list[tuple[str, Any]] = [("filler", rng.choice(FILLER))]
    parts += [("pii", (kind, *planted(rng, kind))) for kind in kinds]
    parts += [("decoy", decoy(rng)) for _ in range(rng.randint(0, 3))]
    parts += [("filler", rng.choice(FILLER)) for _ in range(rng.randint(0, 2))]
    rng.shuffle(parts)
    text, spans, decoys = "", [], []
    for what, part in parts:
        text += " " if text else ""
        if what == "pii":
            kind, before, value, after = part
            start = len(text) + len(before)
            spans.append((kind, start, start + len(value)))
            text += before + value + after
        elif what == "decoy":
            decoys.append((part[0], len(text), len(text) + len(part[1])))
            text += part[1]
        else:
            text += part
    return text, spans, decoys


def corpus(rows: int, seed: int) -> list[tuple[str, list, list]]:
    rng = random.Random(seed)
    return [make_row(rng) for _ in range(rows)]


# --- systems -------------------------------------------------------------------------------

def ours(text: str) -> list[tuple[str, int, int]]:
    return [(s.kind, s.start, s.end) for s in find_pii(text)]


def presidio_system() -> tuple[Any, dict[str, str]] | tuple[None, str]:
    """(analyze function, versions), or (None, why) when Presidio or spaCy is missing."""
    try:
        import presidio_analyzer
        import spacy
        import tldextract
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import SpacyNlpEngine
    except ImportError as exc:
        return None, (f"Presidio is not installed ({exc.name}); install it for the comparison: "
                      ".venv/bin/pip install presidio-analyzer spacy")
    from importlib.metadata import version

    # Offline: the bundled public-suffix snapshot instead of a download on first use.
    tldextract.extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)

    class BlankSpacyEngine(SpacyNlpEngine):
        """spaCy's blank English pipeline: tokenizer only, no NER model to download."""

        def load(self) -> None:
            self.nlp = {"en": spacy.blank("en")}

    engine = AnalyzerEngine(nlp_engine=BlankSpacyEngine(), supported_languages=["en"])
    entities = sorted(PRESIDIO_KINDS)

    def analyze(text: str) -> list[tuple[str, int, int]]:
        return [(PRESIDIO_KINDS[r.entity_type], r.start, r.end)
                for r in engine.analyze(text, language="en", entities=entities)]

    return analyze, {"presidio_analyzer": presidio_analyzer.__version__
                     if hasattr(presidio_analyzer, "__version__")
                     else version("presidio-analyzer"), "spacy": spacy.__version__}


# --- scoring -------------------------------------------------------------------------------

def _overlap(a: tuple, b: tuple) -> bool:
    return a[1] < b[2] and b[1] < a[2]


def score(rows: list[tuple[str, list, list]], system) -> dict[str, Any]:
    planted_n, found, fps, decoy_hits = Counter(), Counter(), Counter(), Counter()
    predicted = true_pos = 0
    start = time.perf_counter()
    predictions = [system(text) for text, _, _ in rows]
    seconds = time.perf_counter() - start
    for (_, spans, decoys), preds in zip(rows, predictions, strict=True):
        for span in spans:
            planted_n[span[0]] += 1
            found[span[0]] += any(p[0] == span[0] and _overlap(p, span) for p in preds)
        for pred in preds:
            predicted += 1
            if any(s[0] == pred[0] and _overlap(pred, s) for s in spans):
                true_pos += 1
            else:
                fps[pred[0]] += 1
                hit = next((d[0] for d in decoys if _overlap(pred, d)), "other_text")
                decoy_hits[f"{hit}->{pred[0]}"] += 1
    per_kind = {k: {"planted": planted_n[k], "found": found[k],
                    "recall": round(found[k] / max(planted_n[k], 1), 4),
                    "false_positives": fps[k]} for k in KINDS}
    return {"per_kind": per_kind,
            "recall": round(sum(found.values()) / max(sum(planted_n.values()), 1), 4),
            # The five kinds Presidio also covers: the fair comparison of recall.
            "recall_without_api_key": round(
                (sum(found.values()) - found["API_KEY"])
                / max(sum(planted_n.values()) - planted_n["API_KEY"], 1), 4),
            "precision": round(true_pos / max(predicted, 1), 4),
            "rows_per_s": round(len(rows) / seconds, 1), "seconds": round(seconds, 2),
            "false_positives_by_decoy": dict(sorted(decoy_hits.items()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    log(f"generating {args.rows:,} rows (seed {args.seed})")
    rows = corpus(args.rows, args.seed)
    result: dict[str, Any] = {
        "rows": args.rows, "seed": args.seed,
        "planted": dict(Counter(s[0] for _, spans, _ in rows for s in spans)),
        "decoys": dict(sorted(Counter(d[0] for _, _, ds in rows for d in ds).items()))}
    log("scanning with brewslm.clean.pii")
    result["brewslm"] = score(rows, ours)
    analyze, info = presidio_system()
    if analyze is None:
        log(str(info))
        result["presidio"] = {"available": False, "reason": info}
    else:
        log(f"scanning with Presidio {info['presidio_analyzer']} (blank spaCy {info['spacy']})")
        result["presidio"] = {"available": True, **info, **score(rows, analyze)}
        result["presidio"]["per_kind"]["API_KEY"]["supported"] = False
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
