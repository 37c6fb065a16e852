"""Writes src/brewslm/samples/tickets.jsonl (examples/tickets.jsonl links to it): the bundled
sample dataset, support tickets to classify.

    python examples/make_tickets.py          # rewrites the file; deterministic (seeded)

Each record is alpaca-shaped: an instruction, the ticket as input, and the expected JSON answer
{"category": ..., "priority": ...}. A few records carry the defects real exports have (a line
that is not JSON, a record without an answer, an empty instruction, a duplicate), so that the
ledger has something to account for.
"""

from __future__ import annotations

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


def main() -> None:
    rng = random.Random(7)
    lines = [json.dumps(ticket(rng)) for _ in range(400)]
    lines[17] = '{"instruction": "Classify the support ticket.", "input": "truncated export'
    lines[42] = json.dumps({"instruction": INSTRUCTION, "input": "Where is my order?"})
    lines[99] = json.dumps({"instruction": "", "input": "Hi.", "output": "{}"})
    lines[150] = lines[149]
    out = Path(__file__).resolve().parents[1] / "src" / "brewslm" / "samples" / "tickets.jsonl"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} lines to {out}")


if __name__ == "__main__":
    main()
