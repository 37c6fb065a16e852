"""The support bundle: its members and manifest, --since, refused output paths, the
bundle_created event, and the planted-secrets test — one secret of every kind in every place a
secret can reach (project config, event payloads and summaries, stage-run parameters, a log the
bundle collects, environment variables); none may survive anywhere in the zip, and the manifest
counts each kind."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile

import pytest

from brewslm import project
from brewslm.errors import InputError
from brewslm.events import emit_event, query
from brewslm.observe import bundle
from brewslm.observe.redact import is_secret_key
from brewslm.stages import data

pytestmark = pytest.mark.store

MEMBERS = {"manifest.json", "project.json", "runs.json", "events.jsonl", "clusters.json",
           "ledger_stats.json", "artifacts.json", "environment.json"}

HF = "hf_PLANTEDaBcDeFgHiJkLmNoPqRsTuVwXyZ0123"
OPENAI = "sk-proj-PLANTED0penAIkey1234567890abcdefXYZ"
ANTHROPIC = "sk-ant-api03-PLANTEDanthropic1234567890abcdefghijkl"
AWS_ID = "AKIAPLANTED123456789"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYPLANTEDKEY"
BEARER = "PLANTEDbearer0token0value123"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwbGFudGVkIn0.PLANTEDsig0123"
URL_USER, URL_PASS = "planted_user", "PLANTEDpassw0rd"
PEM_BODY = ["MIIEowIBAAKCAQEAplanted0123456789abcdefABCDEF+/==",
            "PLANTEDsecondLINE0123456789abcdefghijklmnopqrstuv"]
PEM = "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(PEM_BODY) + "\n-----END RSA PRIVATE KEY-----"
API_TOKEN = "PLANTED-brewslm-api-token-42"
BY_NAME = "PLANTEDhunter2pw"
GITHUB = "ghp_PLANTEDgithub0123456789abcdefghijklmn"
# What must not appear in any member (the private key's body lines, not its header).
PLANTED = [HF, OPENAI, ANTHROPIC, AWS_ID, AWS_SECRET, BEARER, JWT, URL_USER, URL_PASS,
           *PEM_BODY, API_TOKEN, BY_NAME, GITHUB]
KINDS = {"hf_token", "openai_key", "anthropic_key", "aws_access_key_id", "aws_secret_key",
         "bearer_token", "jwt", "url_credentials", "private_key", "brewslm_api_token",
         "secret_by_key_name", "github_token"}


def unzip(blob: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        return {name: zf.read(name).decode() for name in zf.namelist()}


def plant(info, monkeypatch, tmp_path) -> None:
    """One secret of each kind in config, events, runs, a log and the environment."""
    # config: description and settings
    from brewslm.store import session
    from brewslm.store.models import Project

    with session() as s:
        s.get(Project, info.id).description = f"tickets; hub token {HF}, openai {OPENAI}"
    project.set_setting(info.name, "clean", {
        "webhook": f"https://{URL_USER}:{URL_PASS}@hooks.example.com/x",
        "webhook_password": BY_NAME})
    # event payloads and summaries (an error one, so that clusters hold it too)
    emit_event("project_updated", f"key {AWS_ID} rotated", project_id=info.id,
               payload={"headers": {"Authorization": f"Bearer {BEARER}"}, "session": JWT})
    emit_event("stage_failed", f"ingest failed: upstream refused {ANTHROPIC}", stage="ingest",
               project_id=info.id, payload={"cause": "ingest_source_not_found",
                                            "key_file": PEM})
    # a stage run whose parameters hold the API token (and its error event repeats it)
    assert data.ingest(info, str(tmp_path / API_TOKEN / "data.jsonl")).status == "failed"
    # a log the bundle collects
    log = info.dir / "train" / "run-0123456789abcdef" / "launch.log"
    log.parent.mkdir(parents=True)
    log.write_text(f"starting\nAWS_SECRET_ACCESS_KEY={AWS_SECRET}\n{PEM}\ntoken {API_TOKEN}\n"
                   f"pushing with {GITHUB}\ndone\n")
    # the environment
    monkeypatch.setenv("BREWSLM_API_TOKEN", API_TOKEN)
    monkeypatch.setenv("HF_TOKEN", HF)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("BREWSLM_PLANTED_WEBHOOK", f"https://{URL_USER}:{URL_PASS}@x.example")
    monkeypatch.setenv("BREWSLM_PLANTED_HEADER", f"Bearer {BEARER}")


def test_no_planted_secret_survives_anywhere(prepare_small, monkeypatch, tmp_path,
                                            no_secret_env):
    info = prepare_small("leaky")
    plant(info, monkeypatch, tmp_path)
    out = tmp_path / "support.zip"
    done = bundle.write(info, out, since=None)
    members = unzip(out.read_bytes())
    assert set(members) == MEMBERS | {"logs/train/run-0123456789abcdef/launch.log"}
    leaks = [(secret, name) for name, text in members.items() for secret in PLANTED
             if secret in text]
    assert leaks == []
    # the secrets were there to be found: each place holds its redaction mark
    assert "[REDACTED:hf_token]" in members["project.json"]
    assert "[REDACTED:url_credentials]" in members["project.json"]
    assert "[REDACTED:bearer_token]" in members["events.jsonl"]
    assert "[REDACTED:anthropic_key]" in members["clusters.json"]
    assert "[REDACTED:brewslm_api_token]" in members["runs.json"]
    assert "[REDACTED:private_key]" in members["logs/train/run-0123456789abcdef/launch.log"]
    assert "[REDACTED:aws_secret_key]" in members["environment.json"]
    env = json.loads(members["environment.json"])["environment"]["env"]
    assert env["BREWSLM_API_TOKEN"] == "[REDACTED:brewslm_api_token]"
    assert env["HF_TOKEN"] == "[REDACTED:hf_token]"

    red = json.loads(members["manifest.json"])["redactions"]
    assert set(red["by_kind"]) == KINDS
    assert red == done["manifest"]["redactions"]
    assert red["total"] == sum(red["by_kind"].values())
    # Per kind, where each was planted (env = environment.json; events = events.jsonl):
    assert {k: v for k, v in red["by_kind"].items() if k != "brewslm_api_token"} == {
        "hf_token": 2,            # description, env
        "openai_key": 2,          # description, env
        "anthropic_key": 4,       # error summary: event, cluster exemplar, cluster signature; env
        "aws_access_key_id": 2,   # event summary, env
        "aws_secret_key": 2,      # log, env
        "bearer_token": 2,        # event payload, env
        "jwt": 1,                 # event payload
        "url_credentials": 3,     # settings, the project_updated event of that setting, env
        "private_key": 2,         # event payload, log
        "secret_by_key_name": 2,  # settings (webhook_password), its project_updated event
        "github_token": 1,        # log
    }
    # The API token: the failed run's parameters and error, its events, the log, env (how
    # often ingest repeats a path in its error is ingest's business, hence at least).
    assert red["by_kind"]["brewslm_api_token"] >= 5
    created = query.events(info, query.make_filter(code="bundle_created"))
    assert [e["payload"]["redactions"] for e in created] == [red]


def test_a_clean_project_redacts_nothing(prepare_small, monkeypatch, tmp_path):
    for name in [n for n in os.environ if is_secret_key(n)]:  # the runner's own, if any
        monkeypatch.delenv(name)
    info = prepare_small("clean")
    blob, manifest = bundle.build(info)
    assert manifest["redactions"] == {"by_kind": {}, "total": 0}
    members = unzip(blob)
    assert set(members) == MEMBERS
    assert "[REDACTED" not in "".join(members.values())
    listed = {m["name"]: m for m in manifest["members"]}
    assert set(listed) == MEMBERS - {"manifest.json"}
    for name, entry in listed.items():
        raw = members[name].encode()
        assert (entry["bytes"], entry["sha256"]) == (len(raw), hashlib.sha256(raw).hexdigest())
    runs = json.loads(members["runs.json"])["runs"]
    assert [r["stage"] for r in runs] == ["ingest", "introspect", "map", "prepare"]
    arts = json.loads(members["artifacts.json"])["artifacts"]
    assert {a["kind"] for a in arts} == {"snapshot", "introspection", "mapping", "dataset",
                                         "manifest"}
    assert all(a["sha256"] == a["id"] and a["complete"] for a in arts)
    events = [json.loads(line) for line in members["events.jsonl"].splitlines()]
    assert len(events) == len(query.events(info))
    stats = json.loads(members["ledger_stats.json"])
    assert [s["stage"] for s in stats["stages"]] == ["ingest", "map", "prepare"]
    env = json.loads(members["environment.json"])
    assert env["environment"]["libraries"]["torch"]
    assert {c["name"] for c in env["doctor"]["checks"]} >= {"python", "database", "taxonomy"}


def test_since_keeps_only_what_happened_after(prepare_small, tmp_path):
    info = prepare_small("later")
    old_log = info.dir / "old.log"
    old_log.write_text("old\n")
    os.utime(old_log, (1_000_000_000, 1_000_000_000))  # 2001
    cut = query.events(info)[-1]["created_at"]
    emit_event("stage_failed", "after the cut", project_id=info.id, stage="train",
               payload={"cause": "stage_crashed"})
    blob, manifest = bundle.build(info, since=cut)
    members = unzip(blob)
    events = [json.loads(line) for line in members["events.jsonl"].splitlines()]
    assert [e["summary"] for e in events] == [query.events(info)[-2]["summary"],
                                              "after the cut"]
    assert json.loads(members["runs.json"])["runs"] == []
    assert json.loads(members["clusters.json"])["events"] == 1
    assert "logs/old.log" not in members
    assert manifest["since"] == cut
    assert "logs/old.log" in unzip(bundle.build(info)[0])


@pytest.mark.parametrize("where, message", [("dir", "is a directory"),
                                            ("missing/out.zip", "does not exist"),
                                            ("out.tar", "does not end in .zip")])
def test_refused_output_paths(prepare_small, tmp_path, where, message):
    info = project.create("refused")
    (tmp_path / "dir").mkdir()
    with pytest.raises(InputError) as caught:
        bundle.write(info, tmp_path / where)
    assert caught.value.code == "bundle_output_invalid" and message in caught.value.message
    assert query.events(info, query.make_filter(code="bundle_created")) == []


def test_bad_since_is_refused():
    info = project.create("when")
    with pytest.raises(InputError) as caught:
        bundle.build(info, since="yesterday")
    assert caught.value.code == "filter_invalid"
