"""Writes the bundled sample datasets: support tickets to classify, deterministic (seeded), no
network. Each record is alpaca-shaped: an instruction, the ticket as input, and the expected
JSON answer {"category": billing|technical|account|shipping, "priority": low|medium|high}.

    python examples/make_tickets.py           # src/brewslm/samples/tickets.jsonl, 400 lines
    python examples/make_tickets.py --large   # src/brewslm/samples/support_tickets.jsonl

examples/tickets.jsonl and examples/support_tickets.jsonl link to them.

tickets.jsonl (the demo's small sample) carries a few of the defects real exports have: a line
that is not JSON, a record without an answer, an empty instruction, a duplicate.

support_tickets.jsonl is larger (2,400 tickets from richer templates, 2,468 lines) and planted
with defects so that every data stage catches its share (reason codes: events/taxonomy.yaml):

    ingest    malformed_json x3 (a truncated line, a Python dict repr, a stray log line),
              not_a_record x2 (a null, a record wrapped in a list)
    map       missing_field x2 (no output, output null), empty_text x2 (empty output, empty
              instruction), wrong_type x1 (the answer as an object, not a string)
    clean     pii_found x72, a note: kept, redacted by default (71 tickets leave an email
              address or a phone number, one a card number), exact_duplicate x30 (24 verbatim,
              6 with other case or spacing), near_duplicate x20 (6 with a follow-up appended,
              6 with a typo, 5 with another greeting, 3 relabelled with another priority),
              too_short x2 (a "?" answer, a "test" record), mostly_non_text x1 (a pasted table
              of numbers), answer_equals_prompt x1, repeated_ngrams x1 (the answer 6 times)
    prepare   too_many_tokens x2 (whole e-mail threads pasted in, > 512 tokens of builtin:tiny)

The tickets themselves are chosen so that no two of them are near-duplicates by accident: each
caught row is a planted one (tests/e2e/test_sample_defects.py pins the counts).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

INSTRUCTION = ("Classify the support ticket. Answer with JSON: "
               '{"category": billing|technical|account|shipping, "priority": low|medium|high}.')
SUBJECTS = {
    "billing": ["I was charged twice for my {plan} subscription", "my invoice {n} shows the "
                "wrong amount", "the refund for order {n} never arrived", "please cancel the "
                "extra charge on my {plan} plan", "my card was billed after I cancelled",
                "the {plan} price went up without notice", "I was billed in the wrong currency"],
    "technical": ["the {app} app crashes when I open settings", "I get error {n} on login",
                  "the export button in {app} does nothing", "sync has been stuck since "
                  "yesterday", "the page loads forever on my {device}", "notifications stopped "
                  "on my {device}", "uploads fail with a timeout in {app}"],
    "account": ["I cannot reset my password", "please change the email on my account",
                "my account was locked after {n} attempts", "how do I delete my profile",
                "two-factor codes are not arriving on my {device}", "I want to merge two "
                "accounts", "someone else logged into my account"],
    "shipping": ["my parcel {n} has not moved in a week", "the box with my {item} arrived "
                 "damaged", "I need to change the delivery address for order {n}", "tracking "
                 "says delivered but nothing came", "can you ship the {item} to another "
                 "country", "only half of order {n} arrived", "the courier left my {item} "
                 "outside in the rain"],
}
DETAILS = ["I already tried logging out and back in.", "This started after the last update.",
           "My colleague has the same problem.", "I contacted you last week as well.",
           "I attached a screenshot to my previous email.", "It happens every single time.",
           "I am using the latest version.", "Nothing in the help pages covers this.",
           "The order was placed on {day}.", "My customer number is {n}.",
           "I have been a customer for {years} years.", ""]
URGENCY = {"high": ["This is urgent, I need it fixed today.", "Our whole team is blocked.",
                    "We lose money every hour this is not fixed."],
           "medium": ["Please look into it this week.", "It is annoying but I can work.",
                      "An answer in the next days would help."],
           "low": ["No rush.", "Just letting you know when you have time.",
                   "Whenever you get a chance."]}
OPENERS = ["Hello,", "Hi team,", "Good morning,", "Hey,", "Dear support,", ""]
SIGNOFFS = ["Thanks, {name}", "Regards, {name}", "Cheers, {name}", "{name}", ""]
FILL = {"plan": ["Pro", "Basic", "Family", "Team"], "app": ["Android", "iOS", "desktop", "web"],
        "device": ["phone", "tablet", "laptop", "watch"], "item": ["lamp", "chair", "kettle",
                                                                   "monitor", "jacket"],
        "day": ["Monday", "Tuesday", "Friday", "the 3rd", "the 17th"],
        "name": ["Ana", "Ben", "Chen", "Dara", "Eli", "Femi", "Goran", "Hana", "Ivo", "Jules"]}


def fill(rng: random.Random, text: str) -> str:
    values = {key: rng.choice(options) for key, options in FILL.items()}
    return text.format(n=rng.randint(100, 9999), years=rng.randint(2, 12), **values)


def ticket(rng: random.Random) -> dict[str, str]:
    category = rng.choice(sorted(SUBJECTS))
    priority = rng.choice(["low", "medium", "high"])
    subject = fill(rng, rng.choice(SUBJECTS[category]))
    parts = [rng.choice(OPENERS), subject[0].upper() + subject[1:] + ".",
             fill(rng, rng.choice(DETAILS)), rng.choice(URGENCY[priority]),
             fill(rng, rng.choice(SIGNOFFS))]
    answer = json.dumps({"category": category, "priority": priority})
    return {"instruction": INSTRUCTION, "input": " ".join(p for p in parts if p), "output": answer}


SAMPLES = Path(__file__).resolve().parents[1] / "src" / "brewslm" / "samples"


def small_lines() -> list[str]:
    """The 400 lines of tickets.jsonl (tests pin their counts: keep them byte-identical)."""
    rng = random.Random(7)
    lines = [json.dumps(ticket(rng)) for _ in range(400)]
    lines[17] = '{"instruction": "Classify the support ticket.", "input": "truncated export'
    lines[42] = json.dumps({"instruction": INSTRUCTION, "input": "Where is my order?"})
    lines[99] = json.dumps({"instruction": "", "input": "Hi.", "output": "{}"})
    lines[150] = lines[149]
    return lines


# --- the large sample ---------------------------------------------------------------------

LARGE_SEED = 2024
LARGE_TICKETS = 2400
LARGE_SUBJECTS = {
    "billing": SUBJECTS["billing"] + [
        "the discount code {code} was not applied to my order", "I need a copy of the "
        "receipt for {month}", "the payment failed but the money left my account", "please "
        "switch my {plan} plan from monthly to yearly billing", "the tax on invoice {n} looks "
        "wrong", "I was charged {amount} instead of the advertised price", "my free trial "
        "turned into a paid {plan} plan without warning", "the invoice for {month} is "
        "addressed to the wrong company", "I paid for {seats} seats but we only use {seats2}"],
    "technical": SUBJECTS["technical"] + [
        "the {app} app freezes when I upload a photo", "the {feature} stopped working after "
        "the update", "search returns no results in the {app} app", "the dashboard shows "
        "error {n} since this morning", "I cannot print reports from {browser}", "the {app} "
        "app logs me out every few minutes", "dark mode makes the text unreadable on my "
        "{device}", "the calendar does not sync with my {device}", "video calls drop after "
        "{mins} minutes in {browser}"],
    "account": SUBJECTS["account"] + [
        "I never received the verification email", "please add a second user to our {plan} "
        "account", "my profile shows the wrong name", "I cannot log in on my new {device}",
        "I want to change the owner of our team account", "the password reset link has "
        "expired", "my account says it is suspended", "please remove my old {device} from my "
        "account", "I cannot turn off two-factor login"],
    "shipping": SUBJECTS["shipping"] + [
        "the {item} I ordered came in the wrong colour", "order {n} was sent to my old "
        "address", "{courier} says the address on parcel {n} is incomplete", "the delivery "
        "to {country} is taking weeks", "one {item} is missing from parcel {n}", "can I pick "
        "up order {n} at a store instead", "the tracking number for order {n} does not work",
        "{courier} asked me to pay customs for the {item}", "the {item} was delivered to my "
        "neighbour without asking"],
}
LARGE_DETAILS = [d for d in DETAILS if d] + [
    "I tried again on my {device} with the same result.", "I restarted the {device} twice.",
    "The same thing happened in {month}.", "Your chat bot could not help me.",
    "I checked my spam folder too.", "I waited two days before writing.",
    "My order number is {n}.", "The reference on your email is {n}.",
    "I have screenshots if you need them.", "It worked fine until last {day}.",
    "Other people on the forum report the same.", "I am writing from my work account.",
    "My colleague in {country} sees it as well.", "I followed the steps in your guide.",
    "I am on the {plan} plan.", "This is the second time this {month}.",
    "I already cleared the cache.", "Help article {n} did not answer it.",
    "We have {seats} people on our account.", "I noticed it around {hour} o'clock."]
LARGE_URGENCY = {
    "high": URGENCY["high"] + ["Please treat this as a priority.", "I need an answer within "
                               "the hour.", "Customers are complaining right now.", "This "
                               "blocks our launch today."],
    "medium": URGENCY["medium"] + ["It would be good to sort this out soon.", "A fix by the "
                                   "end of the week is fine.", "It slows me down a bit.",
                                   "Please get back to me in a few days."],
    "low": URGENCY["low"] + ["It is a minor thing.", "No need to hurry with this one.", "It "
                             "can wait until next month.", "Only a small annoyance, really."]}
LARGE_OPENERS = OPENERS + ["Hi there,", "Hello support,", "Good afternoon,", "To whom it may "
                           "concern,"]
LARGE_SIGNOFFS = SIGNOFFS + ["Best, {name}", "Many thanks, {name}", "Kind regards, {name}",
                             "Thank you! {name}", "- {name}"]
LARGE_FILL = {**FILL,
              "name": FILL["name"] + ["Kofi", "Lena", "Mateo", "Nora", "Oskar", "Priya",
                                      "Rui", "Sofia", "Tomas", "Yara", "Zain", "Mila"],
              "code": ["SPRING10", "WELCOME", "SAVE20", "FRIENDS", "BLACKFRI"],
              "month": ["January", "March", "May", "July", "September", "November"],
              "amount": ["49 euros", "120 dollars", "15 pounds", "89 euros", "230 dollars"],
              "browser": ["Firefox", "Chrome", "Safari", "Edge"],
              "feature": ["export", "calendar", "search", "chat", "photo upload"],
              "country": ["Spain", "Canada", "Kenya", "Japan", "Brazil", "Norway"],
              "courier": ["The courier", "DHL", "UPS", "The post office"],
              "seats": ["5", "8", "12", "20"], "seats2": ["3", "4", "6"],
              "mins": ["10", "15", "30"], "hour": ["8", "11", "3", "6"]}
SURNAMES = ["Silva", "Okafor", "Novak", "Berg", "Tanaka", "Moreau", "Kowalski", "Haddad",
            "Lindqvist", "Mensah", "Rossi", "Petrov"]
EMAIL_DOMAINS = ["example.com", "example.org", "example.net", "mail.example.com"]
CONTACT = ["You can reach me at {email}.", "Please reply to {email}, not to the old address.",
           "My phone number is {phone}.", "Call me on {phone} if that is easier.",
           "You can reach me at {email} or on {phone}.", "My email is {email}."]
FOLLOW_UPS = [" Any update on this?", " Still waiting.", " Sorry, sending this again.",
              " Please confirm you got this.", " Any news?"]


def large_fill(rng: random.Random, text: str) -> str:
    values = {key: rng.choice(options) for key, options in LARGE_FILL.items()}
    return text.format(n=rng.randint(100, 9999), years=rng.randint(2, 12), **values)


def phone(rng: random.Random) -> str:
    """A made-up phone number in one of the forms people write (UK and US ones in the ranges
    reserved for drama)."""
    n, us = rng.randint(100, 999), rng.randint(100, 199)
    return rng.choice([f"+44 20 7946 0{n}", f"(415) 555-0{us}", f"+1 212 555 0{us}",
                       f"030 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}",
                       f"07700 900{n}", f"+49 30 {rng.randint(100000, 999999)}"])


def email(rng: random.Random, name: str) -> str:
    local = rng.choice([f"{name}.{rng.choice(SURNAMES)}", f"{name}{rng.randint(1, 99)}",
                        f"{name[0]}.{rng.choice(SURNAMES)}"])
    return f"{local.lower()}@{rng.choice(EMAIL_DOMAINS)}"


def large_ticket(rng: random.Random, *, contact: bool = False) -> tuple[dict[str, str], str]:
    """A record, and its text as clean's dedup will see it (PII replaced by placeholders).
    With contact, the customer leaves an email address or a phone number."""
    category = rng.choice(sorted(LARGE_SUBJECTS))
    priority = rng.choice(["low", "medium", "high"])
    subject = large_fill(rng, rng.choice(LARGE_SUBJECTS[category]))
    details = rng.sample(LARGE_DETAILS, 2 if rng.random() < 0.6 else 1)
    name = rng.choice(LARGE_FILL["name"])
    parts = [rng.choice(LARGE_OPENERS), subject[0].upper() + subject[1:] + "."]
    parts += [large_fill(rng, d) for d in details]
    masked = list(parts)
    if contact:
        sentence = rng.choice(CONTACT)
        parts.append(sentence.format(email=email(rng, name), phone=phone(rng)))
        masked.append(sentence.format(email="<EMAIL>", phone="<PHONE>"))
    tail = [rng.choice(LARGE_URGENCY[priority]), rng.choice(LARGE_SIGNOFFS).format(name=name)]
    record = {"instruction": INSTRUCTION, "input": " ".join(p for p in parts + tail if p),
              "output": answer_of(category, priority)}
    return record, dedup_text({**record, "input": " ".join(p for p in masked + tail if p)})


def answer_of(category: str, priority: str) -> str:
    return json.dumps({"category": category, "priority": priority})


def dedup_text(record: dict[str, str]) -> str:
    """The record as clean compares rows: prompt and answer, case and spacing folded."""
    text = f"{record['instruction']} {record['input']} {record['output']}"
    return " ".join(text.casefold().split())


def shingles(text: str, n: int = 5) -> set[str]:
    return {text[i:i + n] for i in range(len(text) - n + 1)}


class Distinct:
    """Refuses a ticket too similar to an earlier one, so that the only duplicates in the large
    sample are the planted ones. Clean flags near-duplicates at an estimated Jaccard of 0.85 of
    5-character shingles; tickets here stay below 0.7 exactly (tickets that differ in category
    or priority differ in their answer, so only the same label is compared)."""

    LIMIT = 0.7

    def __init__(self) -> None:
        self.seen: dict[str, list[set[str]]] = {}

    def admit(self, record: dict[str, str], text: str) -> bool:
        grams = shingles(text)
        bucket = self.seen.setdefault(record["output"], [])
        for old in bucket:
            common = len(grams & old)
            if common >= self.LIMIT * (len(grams) + len(old) - common):
                return False
        bucket.append(grams)
        return True


def thread(rng: random.Random, category: str, messages: int) -> str:
    """A whole e-mail thread pasted into one ticket: far longer than a training row."""
    parts = ["Hello, I am forwarding the whole thread so that you have the context."]
    for i in range(messages):
        who = rng.choice(LARGE_FILL["name"])
        subject = large_fill(rng, rng.choice(LARGE_SUBJECTS[category]))
        said = [subject[0].upper() + subject[1:] + "."]
        said += [large_fill(rng, d) for d in rng.sample(LARGE_DETAILS, 3)]
        parts.append(f"On {rng.choice(LARGE_FILL['month'])} {i + 3}, {who} wrote: "
                     + " ".join(said))
    parts.append("This is urgent, I need it fixed today.")
    return "\n\n".join(parts)


def near_copy(rng: random.Random, record: dict[str, str], how: str) -> dict[str, str]:
    """The same ticket with a small edit: what a customer's second try looks like."""
    text = record["input"]
    if how == "follow_up":
        text += rng.choice(FOLLOW_UPS)
    elif how == "typo":
        words = text.split(" ")
        i = max(range(len(words)), key=lambda k: (len(words[k]), -k))  # the longest word
        word = words[i]
        j = next(j for j in range(1, len(word) - 1) if word[j] != word[j + 1])
        words[i] = word[:j] + word[j + 1] + word[j] + word[j + 2:]  # two letters swapped
        text = " ".join(words)
    elif how == "greeting":
        for old in sorted(LARGE_OPENERS, key=len, reverse=True):
            if old and text.startswith(old):
                text = text[len(old):].lstrip()
                break
        text = "Hi again, " + text
    else:  # relabelled: the same ticket, another priority
        answer = json.loads(record["output"])
        others = [p for p in ("low", "medium", "high") if p != answer["priority"]]
        return {**record, "output": answer_of(answer["category"], rng.choice(others))}
    return {**record, "input": text}


def spacing_copy(rng: random.Random, record: dict[str, str]) -> dict[str, str]:
    """The same ticket with other case or spacing: normalised, it is an exact duplicate."""
    text = record["input"]
    text = rng.choice([text.replace(". ", ".  "), text.upper(), "  " + text + "  ",
                       text.replace(" ", "\t", 3)])
    return {**record, "input": text}


def large_sample() -> list[tuple[str, str]]:
    """(line, planted defect) for each line of support_tickets.jsonl, in file order; the
    defect is the reason code of the stage meant to catch it, "" for a clean ticket."""
    rng = random.Random(LARGE_SEED)
    contact_at = set(rng.sample(range(LARGE_TICKETS), 71))
    distinct, records = Distinct(), []
    while len(records) < LARGE_TICKETS:
        record, text = large_ticket(rng, contact=len(records) in contact_at)
        if distinct.admit(record, text):
            records.append(record)
    # (key, seq, line, defect): a ticket sorts at its index, a copy somewhere after its original.
    placed: list[tuple[float, int, str, str]] = []

    def put(key: float, record: object, defect: str, raw: str | None = None) -> None:
        placed.append((key, len(placed), json.dumps(record) if raw is None else raw, defect))

    for i, record in enumerate(records):
        put(float(i), record, "pii_found" if i in contact_at else "")

    def anywhere(record: object, defect: str, raw: str | None = None) -> None:
        put(rng.uniform(0, LARGE_TICKETS), record, defect, raw)

    def after(i: int, record: dict[str, str], defect: str) -> None:
        put(rng.uniform(i + 0.5, LARGE_TICKETS), record, defect)

    originals = rng.sample([i for i in range(LARGE_TICKETS) if i not in contact_at], 50)
    for i in originals[:24]:  # submitted twice
        after(i, records[i], "exact_duplicate")
    for i in originals[24:30]:
        after(i, spacing_copy(rng, records[i]), "exact_duplicate")
    edits = ["follow_up"] * 6 + ["typo"] * 6 + ["greeting"] * 5 + ["relabel"] * 3
    for i, how in zip(originals[30:], edits, strict=True):
        after(i, near_copy(rng, records[i], how), "near_duplicate")

    def fresh() -> dict[str, str]:
        while True:  # distinct from every ticket, so that dedup does not catch it first
            record, text = large_ticket(rng)
            if distinct.admit(record, text):
                return record

    # ingest: lines that are not JSON, JSON values that are not records
    cut = json.dumps(fresh())
    anywhere(None, "malformed_json", cut[:len(cut) * 2 // 3])  # an export cut off mid-record
    anywhere(None, "malformed_json", repr(fresh()))  # a Python dict, not JSON
    anywhere(None, "malformed_json", "WARN export: 3 records skipped (timeout)")
    anywhere(None, "not_a_record")
    anywhere([fresh()], "not_a_record")
    # map: the answer missing, null, empty, of the wrong type; an empty instruction
    anywhere({k: v for k, v in fresh().items() if k != "output"}, "missing_field")
    anywhere({**fresh(), "output": None}, "missing_field")
    anywhere({**fresh(), "output": ""}, "empty_text")
    anywhere({**fresh(), "instruction": ""}, "empty_text")
    record = fresh()
    anywhere({**record, "output": json.loads(record["output"])}, "wrong_type")
    # clean: a card number (redacted, kept), low-quality rows
    anywhere({"instruction": INSTRUCTION, "input": "I was charged twice on my card 4111 1111 "
              "1111 1111. Please refund one of the charges. This is urgent, I need it fixed "
              "today.", "output": answer_of("billing", "high")}, "pii_found")
    anywhere({**fresh(), "output": "?"}, "too_short")  # a labeller's placeholder
    anywhere({"instruction": "test", "input": "", "output": "ok"}, "too_short")
    rows = "\n".join(f"2024-03-{d:02d};{rng.randint(10, 999)}.{rng.randint(10, 99)};"
                     f"{rng.choice([402, 409, 502, 504])};{rng.randint(10000, 99999)}"
                     for d in range(1, 29))
    anywhere({"instruction": INSTRUCTION, "input": rows,
              "output": answer_of("billing", "medium")}, "mostly_non_text")
    echo = fresh()
    anywhere({**echo, "output": f"{echo['instruction']} {echo['input']}"},
             "answer_equals_prompt")
    loop = fresh()
    anywhere({**loop, "output": " ".join([loop["output"]] * 6)}, "repeated_ngrams")
    # prepare: whole threads pasted in, longer than 512 tokens
    for category, messages in (("shipping", 9), ("technical", 16)):
        anywhere({"instruction": INSTRUCTION, "input": thread(rng, category, messages),
                  "output": answer_of(category, "high")}, "too_many_tokens")
    placed.sort()
    return [(line, defect) for _, _, line, defect in placed]


def large_lines() -> list[str]:
    return [line for line, _ in large_sample()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--large", action="store_true",
                        help="write support_tickets.jsonl (the large, defect-planted sample)")
    args = parser.parse_args(argv)
    name, lines = (("support_tickets.jsonl", large_lines()) if args.large
                   else ("tickets.jsonl", small_lines()))
    out = SAMPLES / name
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} lines to {out}")


if __name__ == "__main__":
    main()
