"""The http source against a real http.server on 127.0.0.1 serving a fixture folder."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
from pathlib import Path

import pytest

from brewslm.errors import InputError
from brewslm.sources import open_source
from brewslm.sources.base import Record
from brewslm.sources.http import public_url, url_file_name


class _Handler(http.server.SimpleHTTPRequestHandler):
    # Paths without an extension get the media type a JSON Lines export API would send.
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      "": "application/x-ndjson; charset=utf-8"}

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    """Base URL of a server for tmp_path/site; proxies are cleared so 127.0.0.1 is direct."""
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    site = tmp_path / "site"
    site.mkdir()
    (site / "train.jsonl").write_text('{"q": "a"}\nnot json\n{"q": "b"}\n')
    (site / "tickets.csv").write_text('id,text\n1,"hello, world"\n2\n')
    (site / "export").write_text('{"q": "x"}\n{"q": "y"}\n')
    handler = functools.partial(_Handler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def summary(opened):
    return [(i.position, None if isinstance(i, Record) else i.code) for i in opened.items]


def test_jsonl_over_http_records_carry_the_url(server, tmp_path):
    url = f"{server}/train.jsonl"
    opened = open_source(url, workdir=tmp_path / "work")
    assert opened.kind == "http"
    assert [(f.name, f.format, f.size_bytes) for f in opened.files] == [(url, "jsonl", 31)]
    items = list(opened.items)
    assert [(i.file, i.position) for i in items] == [(url, "line 1"), (url, "line 2"),
                                                     (url, "line 3")]
    assert items[1].code == "malformed_json"
    assert (tmp_path / "work" / "http" / "train.jsonl").is_file()


def test_csv_with_a_query_string_uses_the_path_extension(server, tmp_path):
    opened = open_source(f"{server}/tickets.csv?download=1", workdir=tmp_path)
    assert opened.files[0].format == "csv"
    assert summary(opened) == [("line 2", None), ("line 3", "csv_field_count")]


def test_content_type_decides_when_the_url_has_no_extension(server, tmp_path):
    opened = open_source(f"{server}/export", workdir=tmp_path)
    assert opened.options["content_type"] == "application/x-ndjson"
    assert opened.files[0].format == "jsonl"
    assert summary(opened) == [("line 1", None), ("line 2", None)]


def test_404_is_a_fetch_failure_with_the_status(server, tmp_path):
    with pytest.raises(InputError) as info:
        open_source(f"{server}/missing.jsonl", workdir=tmp_path)
    assert info.value.code == "ingest_fetch_failed"
    assert "HTTP 404" in info.value.message and info.value.details["status"] == 404


def test_connection_refused_is_a_fetch_failure(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(InputError) as info:
        open_source(f"http://127.0.0.1:{port}/x.jsonl", workdir=tmp_path)
    assert info.value.code == "ingest_fetch_failed"
    assert "refused" in info.value.message.lower()


def test_credentials_never_reach_records_or_messages():
    assert public_url("https://me:s3cret@host.example/d/x.csv") == "https://host.example/d/x.csv"
    assert public_url("https://host.example/x.csv") == "https://host.example/x.csv"
    assert url_file_name("https://h/a/b/train%20set.jsonl?x=1") == "train_set.jsonl"
    assert url_file_name("https://h/") == "download"
    escaped = url_file_name("https://h/..%2F..%2Fetc%2Fpasswd")
    assert "/" not in escaped and not escaped.startswith(".")
    assert Path(url_file_name("https://h/.env")).name == "env"


def test_public_url_drops_credentials_and_signed_query():
    assert public_url("https://u:p@host/d/x.jsonl?X-Amz-Signature=abc#frag") == (
        "https://host/d/x.jsonl")
    assert public_url("http://host:8080/a.csv") == "http://host:8080/a.csv"
