"""Generate corpus.txt, the small English corpus the builtin tiny model is built from.

The text is produced here from seeded templates (nothing is copied from elsewhere), so
running this module again writes the same bytes:

    python -m brewslm.basemodels.make_corpus            # rewrites corpus.txt beside this file
    python -m brewslm.basemodels.make_corpus --check    # exit 1 if corpus.txt differs

It covers support tickets, categories and priorities, JSON labels such as
{"category": "billing", "priority": "high"}, short Q&A, and ChatML conversations with
<|im_start|>/<|im_end|>, so a later pretraining pass sees every word piece and the chat
format that fine-tuning on ticket classification will need. Documents are separated by
<|endoftext|>. The output stays near 250 KB because it ships as package data.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

SEED = 20240601
CORPUS_PATH = Path(__file__).with_name("corpus.txt")
EOT = "<|endoftext|>"

NAMES = [
    "Ana", "Ben", "Chen", "Dara", "Eli", "Farah", "Gus", "Hana", "Ivan", "Jo", "Kemal",
    "Lina", "Marco", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tara", "Uma",
    "Victor", "Wen", "Yusuf", "Zoe",
]
PRODUCTS = [
    "the mobile app", "the web dashboard", "the desktop client", "the router",
    "the smart thermostat", "the invoice portal", "the public API", "the printer",
    "the wireless headset", "the laptop", "the backup service", "the team workspace",
]
# Ticket texts per category; the model later learns to map such text to a label.
ISSUES = {
    "billing": [
        "I was charged twice for my subscription this month",
        "my invoice shows the wrong amount",
        "the card payment failed but the money left my account",
        "I need a copy of last month's receipt",
        "the discount code was not applied to my order",
        "you billed me after I cancelled the plan",
        "the tax on my invoice looks wrong",
        "I want to switch from monthly to yearly billing",
    ],
    "technical": [
        "the app crashes when I open the settings page",
        "the page keeps loading and never finishes",
        "sync stopped working after the last update",
        "I get error 500 when I save a report",
        "the export button does nothing",
        "notifications arrive hours late",
        "the device will not connect to wifi",
        "the screen goes black after a few minutes",
    ],
    "account": [
        "I cannot reset my password",
        "please change the email address on my account",
        "my account was locked after three attempts",
        "how do I delete my profile",
        "I want to add a second user to my account",
        "the two factor code never arrives",
        "I cannot log in with my new phone",
        "please merge my two accounts",
    ],
    "shipping": [
        "my package has not arrived yet",
        "tracking says delivered but nothing came",
        "the box arrived damaged",
        "can I change the delivery address",
        "the order shipped to my old address",
        "one item is missing from the parcel",
        "the courier left the package in the rain",
        "how long does delivery take to my city",
    ],
    "refund": [
        "I would like a refund for an unused licence",
        "I returned the item two weeks ago and have no refund",
        "please refund the duplicate charge",
        "the refund went to an expired card",
        "can I get my money back for the broken headset",
        "I was promised a partial refund",
    ],
    "security": [
        "I see a login from a country I have never visited",
        "someone changed my password without asking me",
        "I got an email that looks like phishing",
        "an unknown device is linked to my account",
        "my API key may have leaked in a public repository",
        "there are orders I did not place",
    ],
    "feature_request": [
        "please add a dark mode",
        "it would help to export data as CSV",
        "can you support more languages",
        "I would like a calendar view for tasks",
        "please let us schedule reports by email",
        "an offline mode would be great",
    ],
    "general": [
        "what are your opening hours",
        "where can I find the user guide",
        "do you have a discount for students",
        "how do I contact the sales team",
        "is there a phone number for support",
        "which plan is right for a small team",
    ],
}
CATEGORIES = list(ISSUES)
PRIORITIES = ["low", "medium", "high", "urgent"]
# Phrases that hint at a priority, so text and label agree in the corpus.
PRIORITY_CUES = {
    "low": ["No rush, whenever you have time.", "Just curious.", "It is not urgent.",
            "This can wait until next week."],
    "medium": ["Please look at it this week.", "It is annoying but I can work around it.",
               "I would like an answer soon.", "It happens now and then."],
    "high": ["It blocks my work today.", "Please help as soon as you can.",
             "Several people on my team are affected.", "I need this fixed today."],
    "urgent": ["Production is down right now!", "All our customers are affected.",
               "We are losing money every minute.", "This is an emergency, please call me."],
}
OPENERS = ["Hello,", "Hi team,", "Good morning,", "Dear support,", "Hey,", "Hi there,", ""]
QUESTION_WORDS = {"how", "what", "where", "which", "do", "is", "can"}
CLOSERS = ["Thanks.", "Thank you!", "Regards.", "Best wishes.", "Cheers.", ""]
STATUSES = ["open", "pending", "in_progress", "resolved", "closed"]
CHANNELS = ["email", "chat", "phone", "web form"]
CATEGORY_MEANING = {
    "billing": "charges, invoices, payments and plans",
    "technical": "errors, crashes, slow pages and broken features",
    "account": "logins, passwords, profiles and user access",
    "shipping": "parcels, delivery times, tracking and addresses",
    "refund": "money going back to the customer",
    "security": "suspicious logins, leaked keys and fraud",
    "feature_request": "ideas for new features or improvements",
    "general": "questions that fit no other category",
}
PRIORITY_MEANING = {
    "low": "it can wait and nobody is blocked",
    "medium": "it should be handled within a few days",
    "high": "someone is blocked and needs help today",
    "urgent": "many people are affected and it needs help right now",
}
# A plain-English lexicon for everyday sentences, so the tokenizer and the model see more than
# support jargon (later datasets will contain words this corpus would otherwise never show).
ADJECTIVES = [
    "small", "large", "quiet", "busy", "bright", "dark", "early", "late", "simple", "careful",
    "quick", "slow", "friendly", "patient", "tired", "happy", "calm", "noisy", "clean", "empty",
    "full", "heavy", "light", "warm", "cold", "fresh", "old", "new", "modern", "strange",
    "useful", "helpful", "clear", "short", "long", "curious", "polite", "modest", "gentle",
    "proud", "nervous", "brave", "serious", "famous", "local", "public", "private", "shared",
    "green", "blue", "yellow", "red", "golden", "silver", "wooden", "narrow", "wide", "steady",
]
NOUNS = [
    "office", "kitchen", "garden", "library", "station", "market", "river", "bridge", "village",
    "city", "meeting", "report", "letter", "message", "window", "door", "table", "chair",
    "computer", "phone", "keyboard", "screen", "cable", "battery", "charger", "camera", "lamp",
    "bicycle", "train", "bus", "car", "plane", "ticket", "bottle", "cup", "coffee", "tea",
    "sandwich", "apple", "bread", "cake", "book", "notebook", "pencil", "map", "umbrella",
    "jacket", "shoe", "bag", "wallet", "key", "clock", "calendar", "schedule", "project",
    "budget", "contract", "policy", "question", "answer", "idea", "plan", "problem", "solution",
    "manager", "engineer", "teacher", "student", "doctor", "driver", "neighbour", "friend",
    "colleague", "customer", "visitor", "team", "company", "shop", "school", "hospital",
    "airport", "hotel", "museum", "park", "beach", "mountain", "forest", "lake", "street",
    "weather", "morning", "evening", "weekend", "holiday", "summer", "winter", "spring",
    "autumn", "storm", "cloud", "song", "story", "picture", "recipe", "game", "puzzle",
]
PAST_VERBS = [
    "opened", "closed", "found", "lost", "fixed", "broke", "carried", "moved", "painted",
    "cleaned", "visited", "watched", "noticed", "borrowed", "returned", "ordered", "packed",
    "delivered", "prepared", "planned", "finished", "started", "shared", "printed", "signed",
    "counted", "measured", "tested", "described", "explained", "remembered", "forgot",
    "celebrated", "discussed", "improved", "replaced", "repaired", "collected", "organised",
    "recorded", "translated", "compared", "photographed", "cooked", "bought", "sold",
    "wrote", "read", "built", "designed",
]
PLACES = [
    "near the station", "behind the library", "in the small kitchen", "at the busy market",
    "next to the river", "on the top floor", "in the meeting room", "at the front desk",
    "in the garden", "outside the hotel", "across the street", "in the city centre",
    "at the airport", "inside the museum", "by the lake", "in the quiet village",
]
TIMES = [
    "yesterday", "this morning", "last night", "on Tuesday", "on Friday afternoon",
    "during the storm", "before breakfast", "after dinner", "last summer", "in January",
    "in March", "in July", "in October", "in December", "at midnight", "around noon",
    "two days ago", "earlier today", "at the weekend", "during the holiday",
]
TEAMS = ["sales", "design", "support", "night", "kitchen", "garden", "travel", "finance",
         "research", "delivery"]
CONNECTORS = ["because", "although", "while", "so", "and then", "but", "after", "before"]
DOMAINS = ["example.com", "example.org", "mail.example.net", "shop.example.com"]

SYSTEM_PROMPTS = [
    "You are a support assistant. Classify the ticket and reply with JSON only.",
    "Classify the support ticket. Answer with a JSON object with keys category and priority.",
    "You are a helpful assistant for a customer support team.",
    "You sort support tickets by category and priority.",
]
SUBJECTS = ["The agent", "The support team", "Our team", "The customer", "The manager",
            "The system", "A new agent", "The night shift"]
VERBS = ["reviewed", "answered", "closed", "escalated", "tagged", "reopened", "assigned",
         "updated", "merged", "checked"]
OBJECTS = ["the ticket", "the request", "the billing case", "the refund request",
           "the urgent issue", "the bug report", "the complaint", "the follow up"]
TAILS = ["before lunch", "within an hour", "after a short call", "on Monday morning",
         "late in the evening", "without any delay", "after checking the logs",
         "once the customer replied"]


def chatml(messages: list[tuple[str, str]]) -> str:
    """Render messages exactly as the builtin chat template does (ChatML)."""
    return "".join(f"<|im_start|>{role}\n{content}<|im_end|>\n" for role, content in messages)


def article(word: str) -> str:
    """"a" or "an" for the word that follows, so the corpus reads as correct English."""
    return "an" if word[0] in "aeiou" else "a"


def label(category: str, priority: str, compact: bool = False) -> str:
    data = {"category": category, "priority": priority}
    return json.dumps(data, separators=(",", ":")) if compact else json.dumps(data)


def ticket(rng: random.Random) -> tuple[str, str, str]:
    """A ticket text with its category and priority."""
    category = rng.choice(CATEGORIES)
    priority = rng.choice(PRIORITIES)
    issue = rng.choice(ISSUES[category])
    product = rng.choice(PRODUCTS)
    opener = rng.choice(OPENERS)
    # After "Hi team," the sentence goes on in lower case; the pronoun I stays upper case.
    body = issue if opener and not issue.startswith("I ") else issue[0].upper() + issue[1:]
    if rng.random() < 0.4:
        body += f" with {product}"
    body += "?" if issue.split()[0] in QUESTION_WORDS else "."
    parts = [opener, body, rng.choice(PRIORITY_CUES[priority]), rng.choice(CLOSERS)]
    return " ".join(p for p in parts if p), category, priority


def prose(rng: random.Random) -> str:
    """A short paragraph of plain English about support work."""
    sentences: list[str] = []
    for _ in range(rng.randint(3, 6)):
        kind = rng.random()
        cat, pri = rng.choice(CATEGORIES), rng.choice(PRIORITIES)
        if kind < 0.3:
            sentence = (f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} "
                        f"{rng.choice(OBJECTS)} {rng.choice(TAILS)}.")
        elif kind < 0.5:
            sentence = (f"{rng.choice(NAMES)} {rng.choice(VERBS)} {article(pri)} {pri} priority "
                        f"{cat.replace('_', ' ')} ticket about {rng.choice(PRODUCTS)}.")
        elif kind < 0.75:
            name = cat.replace("_", " ")
            sentence = f"{article(name).title()} {name} ticket is about {CATEGORY_MEANING[cat]}."
        else:
            sentence = f"A ticket has {pri} priority when {PRIORITY_MEANING[pri]}."
        if sentence not in sentences:  # a paragraph never repeats itself
            sentences.append(sentence)
    return " ".join(sentences)


def everyday(rng: random.Random) -> str:
    """A paragraph of everyday English built from the lexicon above."""
    sentences: list[str] = []
    for _ in range(rng.randint(3, 6)):
        who = rng.choice(NAMES) if rng.random() < 0.5 else f"The {rng.choice(TEAMS)} team"
        adj, noun = rng.choice(ADJECTIVES), rng.choice(NOUNS)
        first = (f"{who} {rng.choice(PAST_VERBS)} {article(adj)} {adj} {noun} "
                 f"{rng.choice(PLACES)} {rng.choice(TIMES)}")
        if rng.random() < 0.5:
            other = rng.choice(NOUNS)
            first += (f", {rng.choice(CONNECTORS)} the {other} was "
                      f"{rng.choice(ADJECTIVES)}")
        sentences.append(first + ".")
    return " ".join(sentences)


def record(rng: random.Random) -> str:
    """A short structured note: names, emails, dates, amounts and order numbers."""
    name = rng.choice(NAMES)
    email = f"{name.lower()}.{rng.choice(NOUNS)}@{rng.choice(DOMAINS)}"
    date = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    amount = f"{rng.randint(5, 499)}.{rng.randint(0, 99):02d}"
    order = f"A{rng.randint(1000, 9999)}"
    return (f"Customer: {name}\nEmail: {email}\nDate: {date}\nOrder: {order}\n"
            f"Amount: ${amount}\nNote: {rng.choice(ADJECTIVES).capitalize()} "
            f"{rng.choice(NOUNS)} {rng.choice(PAST_VERBS)} {rng.choice(TIMES)}.")


def qa(rng: random.Random) -> str:
    cat = rng.choice(CATEGORIES)
    pri = rng.choice(PRIORITIES)
    pairs = [
        (f"What is {article(cat)} {cat} ticket?", f"It is a ticket about {CATEGORY_MEANING[cat]}."),
        (f"When is a ticket {pri} priority?", f"When {PRIORITY_MEANING[pri]}."),
        ("Which keys does a label have?", 'A label has two keys: "category" and "priority".'),
        (f"How should {rng.choice(NAMES)} answer {article(pri)} {pri} priority ticket?",
         f"Reply {rng.choice(TAILS)} and keep the customer informed."),
    ]
    question, answer = rng.choice(pairs)
    return f"Q: {question}\nA: {answer}"


def labelled(rng: random.Random) -> str:
    text, cat, pri = ticket(rng)
    style = rng.randrange(4)
    if style == 0:
        return f"Ticket: {text}\nCategory: {cat}\nPriority: {pri}"
    if style == 1:
        return f"Ticket: {text}\nLabel: {label(cat, pri)}"
    if style == 2:
        return f"Input: {text}\nOutput: {label(cat, pri, compact=True)}"
    record = {"ticket_id": rng.randint(1000, 9999), "customer": rng.choice(NAMES),
              "channel": rng.choice(CHANNELS), "category": cat, "priority": pri,
              "status": rng.choice(STATUSES), "text": text}
    return json.dumps(record)


def conversation(rng: random.Random) -> str:
    text, cat, pri = ticket(rng)
    style = rng.randrange(4)
    if style <= 1:  # the fine-tuning task itself, with and without a system prompt
        messages = [("user", text), ("assistant", label(cat, pri))]
        if style == 0:
            messages.insert(0, ("system", rng.choice(SYSTEM_PROMPTS[:2] + SYSTEM_PROMPTS[3:])))
        return chatml(messages)
    if style == 2:
        question, answer = qa(rng).split("\n")
        return chatml([("system", SYSTEM_PROMPTS[2]), ("user", question[3:]),
                       ("assistant", answer[3:])])
    order = f"A{rng.randint(1000, 9999)}"
    status = rng.choice(["shipped", "delayed", "delivered", "processing"])
    return chatml([
        ("system", SYSTEM_PROMPTS[2]),
        ("user", f"Where is my order {order}?"),
        ("assistant", json.dumps({"tool": "lookup_order", "order_id": order})),
        ("tool", json.dumps({"order_id": order, "status": status})),
        ("assistant", f"Your order {order} is {status}."),
    ])


def generate(target_bytes: int = 250_000) -> str:
    """Build the corpus text: mixed documents until about target_bytes, each ending in EOT."""
    rng = random.Random(SEED)
    makers = [prose, everyday, everyday, record, qa, labelled, labelled, conversation,
              conversation, conversation]
    docs: list[str] = []
    size = 0
    while size < target_bytes:
        doc = rng.choice(makers)(rng).strip("\n") + "\n" + EOT + "\n"
        docs.append(doc)
        size += len(doc)
    return "".join(docs)


def main(argv: list[str]) -> int:
    text = generate()
    if "--check" in argv:
        same = CORPUS_PATH.exists() and CORPUS_PATH.read_text(encoding="utf-8") == text
        print("corpus.txt is up to date" if same else "corpus.txt differs from the generator")
        return 0 if same else 1
    CORPUS_PATH.write_text(text, encoding="utf-8", newline="\n")
    print(f"wrote {CORPUS_PATH} ({len(text.encode())} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
