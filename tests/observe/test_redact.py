"""Secret redaction: each value pattern, secret key names (and the tokenizer words that are not
secrets), known values learnt from the environment and from data, and the count per kind."""

from __future__ import annotations

import pytest

from brewslm.observe.redact import Redactor, is_secret_key

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYPLANTEDKEY"
PEM = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAplanted0123456789abcdefABCDEF+/==\n"
       "PLANTEDsecondLINE0123456789abcdefghijklmnopqrstuv\n-----END RSA PRIVATE KEY-----")

# (text with a secret, the secret, the kind it is counted as)
CASES = [
    ("token hf_PLANTEDaBcDeFgHiJkLmNoPqRsTuVwXyZ0123 used", "hf_PLANTEDaBcDeFgHiJkLmNoPqRsTuVwXyZ",
     "hf_token"),
    ("key sk-proj-PLANTED0penAIkey1234567890abcdef here", "sk-proj-PLANTED0penAIkey1234567890",
     "openai_key"),
    ("key sk-ant-api03-PLANTEDanthropic1234567890abcdefghijkl", "PLANTEDanthropic1234567890",
     "anthropic_key"),
    ("id AKIAPLANTED123456789 in use", "AKIAPLANTED123456789", "aws_access_key_id"),
    (f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET, "aws_secret_key"),
    ("Authorization: Bearer PLANTEDbearer0token0value123", "PLANTEDbearer0token0value123",
     "bearer_token"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwbGFudGVkIn0.PLANTEDsig123 ok",
     "eyJzdWIiOiJwbGFudGVkIn0", "jwt"),
    ("db postgresql://planted_user:PLANTEDpassw0rd@db.example.com:5432/brew",
     "PLANTEDpassw0rd", "url_credentials"),
    (f"key:\n{PEM}\ndone", "PLANTEDsecondLINE0123456789", "private_key"),
    ("gh ghp_PLANTEDgithub0123456789abcdefghijklmn", "ghp_PLANTEDgithub0123456789",
     "github_token"),
    ("password = PLANTEDhunter2pw", "PLANTEDhunter2pw", "secret_by_key_name"),
]


@pytest.mark.parametrize("text, secret, kind", CASES, ids=[c[2] for c in CASES])
def test_each_kind_is_redacted_and_counted(text, secret, kind):
    r = Redactor()
    out = r.redact_text(text)
    assert secret not in out
    assert f"[REDACTED:{kind}]" in out
    assert dict(r.counts) == {kind: 1}


def test_url_credentials_need_a_password_or_a_token_as_the_user():
    r = Redactor()
    assert r.redact_text("postgresql://brewslm@127.0.0.1/db") == (
        "postgresql://brewslm@127.0.0.1/db")  # a user name alone is not a secret
    assert r.redact_text("redis://:PLANTEDsecret@host:6379/0") == (
        "redis://[REDACTED:url_credentials]@host:6379/0")
    assert "PLANTEDtoken" not in r.redact_text("https://PLANTEDtoken0123456789abcd@git.example")
    assert dict(r.counts) == {"url_credentials": 2}


def test_url_keeps_scheme_and_host_and_pem_without_end_is_cut_too():
    r = Redactor()
    out = r.redact_text("to https://user:pw1234@example.com/path ok")
    assert out == "to https://[REDACTED:url_credentials]@example.com/path ok"
    cut = PEM.rsplit("\n", 1)[0] + "\n(log truncated)"
    assert "PLANTEDsecondLINE" not in r.redact_text(cut)
    assert "(log truncated)" in r.redact_text(cut)


@pytest.mark.parametrize("name", ["hf_token", "HF_TOKEN", "apiKey", "api_key", "OPENAI_API_KEY",
                                  "AWS_SECRET_ACCESS_KEY", "password", "db_passwd",
                                  "Authorization", "client_secret", "private_key",
                                  "BREWSLM_API_TOKEN", "session_key", "x-auth-token"])
def test_secret_key_names(name):
    assert is_secret_key(name)


@pytest.mark.parametrize("name", ["max_tokens", "max_new_tokens", "tokens_per_second",
                                  "pad_token", "eos_token", "tokenizer", "truncated_tokens",
                                  "author", "keys", "monkey", "primary_key_column", None, ""])
def test_names_that_are_not_secrets(name):
    assert not is_secret_key(name)


def test_structured_data_by_key_name_and_by_value():
    r = Redactor()
    data = {"recipe": {"max_new_tokens": 32, "pad_token": "<pad>", "learning_rate": 1e-3},
            "hf_token": "short1", "nested": [{"Authorization": "Basic dXNlcjpwYXNz"}],
            "note": "used hf_PLANTEDaBcDeFgHiJkLmNoPqRsTuVwXyZ0123"}
    out = r.redact_obj(data)
    assert out["recipe"] == data["recipe"]
    assert out["hf_token"] == "[REDACTED:secret_by_key_name]"
    assert out["nested"][0]["Authorization"] == "[REDACTED:secret_by_key_name]"
    assert out["note"] == "used [REDACTED:hf_token]"
    assert dict(r.counts) == {"secret_by_key_name": 2, "hf_token": 1}


def test_known_values_from_the_environment_and_from_data_are_cut_everywhere():
    r = Redactor.from_environment({"BREWSLM_API_TOKEN": "plain-api-token-42", "HOME": "/root",
                                   "KAGGLE_KEY": "kagglekey123456"})
    assert r.redact_text("echo plain-api-token-42 and kagglekey123456 from /root") == (
        "echo [REDACTED:brewslm_api_token] and [REDACTED:secret_by_key_name] from /root")
    r.redact_obj({"webhook_secret": "Sup3rSecretValue"})
    assert r.finish("later the log said Sup3rSecretValue") == (
        "later the log said [REDACTED:secret_by_key_name]")
    # A value that does not look like a secret is cut where its key names it, not everywhere.
    r.redact_obj({"auth": "enabled"})
    assert r.finish("feature enabled") == "feature enabled"


def test_redacting_twice_changes_and_counts_nothing_more():
    r = Redactor()
    once = r.redact_text(" ".join(c[0] for c in CASES))
    counted = dict(r.counts)
    assert r.redact_text(once) == once
    assert dict(r.counts) == counted
    assert r.summary() == {"by_kind": dict(sorted(counted.items())), "total": len(CASES)}
