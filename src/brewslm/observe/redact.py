"""Secret redaction for whatever leaves the machine (the support bundle).

    r = Redactor.from_environment()
    clean = r.redact_obj({"hf_token": "hf_...", "note": "Bearer abc123..."})
    text = r.redact_text(log_text)
    r.finish(text)          # a last pass for secret values learnt after the text was redacted
    r.counts                # {"hf_token": 1, "bearer_token": 1, ...} — one count per replacement

Three nets, applied in this order:
  1. by value pattern: Hugging Face, OpenAI, Anthropic, GitHub, Slack and Google keys, AWS access
     key ids and secret keys, bearer tokens, JWTs, credentials in URLs, PEM private keys;
  2. by key name: a value stored under a name such as `api_key`, `hf_token`, `password` or
     `AWS_SECRET_ACCESS_KEY` (in a dict, or as `name=value` / `name: value` in text);
  3. by known value: BREWSLM_API_TOKEN and every secret-named environment variable, and every
     value net 2 caught, replaced wherever else it appears (a token echoed into a log line).
Each replacement reads `[REDACTED:kind]`, so a reader sees what was there without the secret.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

MARK = "[REDACTED:{}]"
# A value learnt by its key name is replaced everywhere else too, so it must look like a secret:
# "enabled" under `auth:` is redacted where it stands, but not in every other sentence.
MIN_KNOWN_LEN = 8

_PEM_END = r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----"
# (kind, pattern, number of the group to replace; 0 = the whole match)
PATTERNS: list[tuple[str, re.Pattern[str], int]] = [
    # A key cut off by a log tail has no END line: take the base64 body that follows instead.
    ("private_key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?:.*?" + _PEM_END
                               + r"|(?:(?:\s|\\[rn])+[A-Za-z0-9+/=]{16,})*)", re.S), 0),
    # user:password@ (user may be empty: redis://:SECRET@host), or a token used as the user
    # (https://TOKEN@host); a bare user name (postgresql://brewslm@host) is not a secret.
    ("url_credentials", re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://([^\s/@'\"<>:]*:[^\s/@'\"<>]+"
                                   r"|[A-Za-z0-9_-]{20,})@"), 1),
    ("bearer_token", re.compile(r"(?i)\bbearer\s+((?=[A-Za-z0-9._~+/=-]*\d)"
                                r"[A-Za-z0-9._~+/=-]{8,})"), 1),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}"), 0),
    ("anthropic_key", re.compile(r"\bsk-ant-[A-Za-z0-9_-]{20,}"), 0),
    ("openai_key", re.compile(r"\bsk-(?!ant-)(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{20,}"), 0),
    ("hf_token", re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"), 0),
    ("github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,})"),
     0),
    ("slack_token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), 0),
    ("google_api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), 0),
    ("aws_access_key_id", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|"
                                     r"APKA)[A-Z0-9]{16}\b"), 0),
    ("aws_secret_key", re.compile(r"(?i)aws_?secret_?(?:access_?)?key[\"']?\s*[:=]\s*[\"']?"
                                  r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"), 1),
]
# `name = value`, `name: value`, `"name": "value"` in text; the name decides (is_secret_key).
KEY_VALUE = re.compile(r"(?i)[\"']?\b([a-z][a-z0-9_.-]*)[\"']?(\s*[:=]\s*[\"']?)"
                       r"([^\s\"',;}\]]{4,})")

SECRET_WORDS = {"token", "secret", "password", "passwd", "passphrase", "pwd", "apikey",
                "credential", "credentials", "authorization", "auth", "cookie", "privatekey"}
SECRET_PAIRS = {("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key"),
                ("session", "key"), ("account", "key"), ("signing", "key"),
                ("encryption", "key"), ("client", "secret")}
# Tokenizer vocabulary, not credentials: "pad_token": "<pad>".
TOKENIZER_WORDS = {"pad", "eos", "bos", "unk", "sep", "cls", "mask", "special", "start", "end"}
# Environment variables whose values are secrets although their names do not say so.
SECRET_ENV = {"KAGGLE_KEY"}


def key_words(name: str) -> list[str]:
    """`hfToken` / `HF_TOKEN` / `hf-token` -> ["hf", "token"]."""
    snake = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [w for w in re.split(r"[^a-z0-9]+", snake.lower()) if w]


def is_secret_key(name: str | None) -> bool:
    """Whether a value stored under this name is a secret (by the name alone)."""
    if not name:
        return False
    words = key_words(name)
    for i, word in enumerate(words):
        if word in SECRET_WORDS and not (word == "token" and i and words[i - 1] in
                                         TOKENIZER_WORDS):
            return True
        if i and (words[i - 1], word) in SECRET_PAIRS:
            return True
    return False


class Redactor:
    """Redacts and counts; keeps the secret values it has seen so they are caught anywhere."""

    def __init__(self, known: Mapping[str, str] | None = None) -> None:
        self.counts: Counter[str] = Counter()
        self.known: dict[str, str] = {}  # value -> kind
        for value, kind in (known or {}).items():
            self.learn(value, kind)

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> Redactor:
        """Known secrets: BREWSLM_API_TOKEN and every secret-named environment variable."""
        env = os.environ if env is None else env
        known = {}
        for name, value in env.items():
            if name in SECRET_ENV or is_secret_key(name):
                known[value] = kind_for_key(name, value)
        return cls(known)

    def learn(self, value: str, kind: str) -> None:
        """Remember a secret value so that it is replaced wherever it appears."""
        if not isinstance(value, str) or value.startswith("[REDACTED"):
            return
        explicit = kind == "brewslm_api_token" and len(value) >= 4  # whatever it looks like
        secretish = len(value) >= 20 or (len(value) >= MIN_KNOWN_LEN
                                         and any(c.isdigit() for c in value))
        if explicit or secretish:
            self.known.setdefault(value, kind)

    # --- structured data --------------------------------------------------------------------
    def redact_obj(self, obj: Any, key: str | None = None) -> Any:
        """A copy of a JSON-like value with secrets replaced (by key name, then by value)."""
        if isinstance(obj, Mapping):
            return {self.redact_text(str(k)): self.redact_obj(v, str(k)) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.redact_obj(v, key) for v in obj]
        if not isinstance(obj, str):
            return obj
        if is_secret_key(key) and obj and not obj.startswith("[REDACTED"):
            kind = kind_for_key(key, obj)
            self.learn(obj, kind)
            self.counts[kind] += 1
            return MARK.format(kind)
        return self.redact_text(obj)

    # --- text ----------------------------------------------------------------------------------
    def redact_text(self, text: str) -> str:
        """Text with every pattern, secret-named `key=value` and known value replaced."""
        for kind, pattern, group in PATTERNS:
            text = pattern.sub(self._replacer(kind, group), text)
        text = KEY_VALUE.sub(self._key_value, text)
        return self._known_values(text)

    def finish(self, text: str) -> str:
        """Replace known values again: values learnt from data redacted after this text."""
        return self._known_values(text)

    def _replacer(self, kind: str, group: int) -> Callable[[re.Match[str]], str]:
        def replace(m: re.Match[str]) -> str:
            if m.group(group).startswith("[REDACTED"):  # already done: redacting is idempotent
                return m.group(0)
            self.counts[kind] += 1
            if group == 0:
                return MARK.format(kind)
            start, end = m.span(group)
            whole = m.group(0)
            return whole[:start - m.start()] + MARK.format(kind) + whole[end - m.start():]
        return replace

    def _key_value(self, m: re.Match[str]) -> str:
        name, value = m.group(1), m.group(3)
        after = m.string[m.end():].lstrip()
        # "Authorization: Bearer [REDACTED:...]": the scheme word is not the secret.
        if not is_secret_key(name) or value.startswith("[REDACTED") or after.startswith(
                "[REDACTED"):
            return m.group(0)
        kind = kind_for_key(name, value)
        self.learn(value, kind)
        self.counts[kind] += 1
        return m.group(0)[:m.start(3) - m.start()] + MARK.format(kind)

    def _known_values(self, text: str) -> str:
        # Longest first, so a value that contains another is replaced whole.
        for value in sorted(self.known, key=len, reverse=True):
            if value in text:
                self.counts[self.known[value]] += text.count(value)
                text = text.replace(value, MARK.format(self.known[value]))
        return text

    def summary(self) -> dict[str, Any]:
        return {"by_kind": dict(sorted(self.counts.items())), "total": sum(self.counts.values())}


def kind_for_key(name: str, value: str) -> str:
    """What to call a secret found by its name: the value's own kind when a pattern knows it."""
    if name.upper() == "BREWSLM_API_TOKEN":
        return "brewslm_api_token"
    for kind, pattern, _ in PATTERNS:
        if pattern.search(value):
            return kind
    words = key_words(name)
    if "aws" in words and ("secret" in words or "session" in words):
        return "aws_secret_key"
    return "secret_by_key_name"
