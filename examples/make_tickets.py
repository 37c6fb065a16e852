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
    "billing": ["I was charged twice for my subscription", "my invoice shows the wrong amount",
                "the refund for order {n} never arrived", "please cancel the extra charge",
                "my card was billed after I cancelled"],
    "technical": ["the app crashes when I open settings", "I get error {n} on login",
                  "the export button does nothing", "sync has been stuck since yesterday",
                  "the page loads forever on my phone"],
    "account": ["I cannot reset my password", "please change the email on my account",
                "my account was locked after {n} attempts", "how do I delete my profile",
                "two-factor codes are not arriving"],
    "shipping": ["my parcel {n} has not moved in a week", "the box arrived damaged",
                 "I need to change the delivery address", "tracking says delivered but "
                 "nothing came", "can you ship to another country"],
}
URGENCY = {"high": ["This is urgent, I need it fixed today.", "Our whole team is blocked."],
           "medium": ["Please look into it this week.", "It is annoying but I can work."],
           "low": ["No rush.", "Just letting you know when you have time."]}
OPENERS = ["Hello,", "Hi team,", "Good morning,", "Hey,", ""]


def ticket(rng: random.Random) -> dict[str, str]:
    category = rng.choice(sorted(SUBJECTS))
    priority = rng.choice(["low", "medium", "high"])
    subject = rng.choice(SUBJECTS[category]).format(n=rng.randint(100, 999))
    text = " ".join(p for p in (rng.choice(OPENERS), subject[0].upper() + subject[1:] + ".",
                                rng.choice(URGENCY[priority])) if p)
    answer = json.dumps({"category": category, "priority": priority})
    return {"instruction": INSTRUCTION, "input": text, "output": answer}


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
