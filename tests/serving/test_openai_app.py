"""The OpenAI-compatible serving app, over real HTTP (uvicorn on a free loopback port).

The official `openai` client talks to the pretrained builtin:tiny model: greedy chat output
equals a plain transformers `generate` of the same rendered prompt, a stream concatenates to
the same text, /v1/completions agrees with chat, stop strings cut the text, usage counts the
tokens. Everything else runs on fake backends (passed as `load=`), so it needs no model: bad
JSON, oversized bodies, wrong model names, bearer tokens, a failing backend (503, unhealthy
/health), promote/rollback swapping the served model without a restart, serialised
generation, and the telemetry records.

    OMP_NUM_THREADS=1 .venv/bin/pytest -q tests/serving/test_openai_app.py
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from pathlib import Path

import httpx
import openai
import pytest
import uvicorn

from brewslm.basemodels.reference import resolve_base_model
from brewslm.errors import InputError
from brewslm.serving.backends import (
    ActiveModel,
    StopFilter,
    TransformersBackend,
    load_backend,
    model_folder,
)
from brewslm.serving.openai_app import RequestRecord, create_serving_app

NAME = "tickets"
HELLO = [{"role": "user", "content": "hello there"}]


# --- running an app ----------------------------------------------------------------------


@contextlib.contextmanager
def running(app) -> Iterator[str]:
    """The app under uvicorn in a thread, on a socket bound here (no port race)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.fixture
def serve():
    """serve(app) -> base URL; every server started is stopped at teardown."""
    with contextlib.ExitStack() as stack:
        yield lambda app: stack.enter_context(running(app))


def client(url: str, api_key: str = "x") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0)


# --- fake backends -----------------------------------------------------------------------


class FakeBackend:
    """Answers with fixed words, one piece per word; counts tokens as words."""

    def __init__(self, text: str = "hello from the fake", *, fail_after: int | None = None,
                 delay: float = 0.0) -> None:
        self.text, self.fail_after, self.delay = text, fail_after, delay
        self.closed = False
        self.running = 0
        self.most_running = 0
        self.pieces = 0
        self.calls: list[dict] = []

    def render_chat(self, messages: list[dict]) -> str:
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def stream(self, prompt, *, max_tokens, temperature, top_p, stop, seed):
        self.calls.append({"prompt": prompt, "max_tokens": max_tokens, "stop": stop,
                           "temperature": temperature, "top_p": top_p, "seed": seed})
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            for i, word in enumerate(self.text.split(" ")[:max_tokens]):
                if self.fail_after is not None and i >= self.fail_after:
                    raise RuntimeError("boom: the fake backend broke")
                time.sleep(self.delay)
                self.pieces += 1
                yield word if i == 0 else " " + word
        finally:
            self.running -= 1

    def close(self) -> None:
        self.closed = True


class Deployments:
    """A stand-in for the deployment store: which version is active, what each loads as,
    and the records the app sent."""

    def __init__(self, *versions: FakeBackend | Exception) -> None:
        self.versions = {i + 1: b for i, b in enumerate(versions)}
        self.version: int | None = 1
        self.records: list[RequestRecord] = []
        self.loads: list[int] = []

    def active(self) -> ActiveModel | None:
        if self.version is None:
            return None
        return ActiveModel("dep-1", self.version, NAME, Path("/nowhere"), "hf")

    def load(self, active: ActiveModel):
        self.loads.append(active.version)
        backend = self.versions[active.version]
        if isinstance(backend, Exception):
            raise backend
        return backend

    def app(self, **options):
        return create_serving_app(self.active, self.records.append, load=self.load, **options)


def chat_body(**extra) -> dict:
    return {"model": NAME, "messages": HELLO, **extra}


# --- the real tiny model -----------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, models_dir) -> Path:
    """The pretrained builtin:tiny folder (built once per session in models_dir)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BREWSLM_HOME", str(tmp_path_factory.mktemp("serving-home")))
        mp.setenv("BREWSLM_MODELS_DIR", str(models_dir))
        mp.setenv("HF_HUB_OFFLINE", "1")
        return resolve_base_model("builtin:tiny").path


@pytest.fixture(scope="module")
def tiny_server(tiny) -> Iterator[tuple[str, list[RequestRecord]]]:
    records: list[RequestRecord] = []
    active = ActiveModel("dep-tiny", 1, NAME, tiny, "hf")
    with running(create_serving_app(lambda: active, records.append)) as url:
        yield url, records


def greedy_reference(path: Path, prompt: str, max_new_tokens: int) -> tuple[str, str, int]:
    """(text, finish_reason, prompt tokens) from plain transformers generate, greedy."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from brewslm.evaluate.generate import stop_ids

    device = "cuda" if torch.cuda.is_available() else "cpu"  # where the backend runs too
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval().to(device)
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids.to(device)
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                         max_new_tokens=max_new_tokens, do_sample=False,
                         eos_token_id=stop_ids(tokenizer), pad_token_id=tokenizer.pad_token_id)
    new = out[0, ids.shape[1]:].tolist()
    stops = [i for i, token in enumerate(new) if token in stop_ids(tokenizer)]
    finish = "stop" if stops else "length"
    new = new[:stops[0]] if stops else new
    return tokenizer.decode(new, skip_special_tokens=True), finish, ids.shape[1]


def rendered(path: Path, messages: list[dict]) -> str:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path).apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True)


def test_models_lists_the_active_model(tiny_server):
    url, _ = tiny_server
    models = client(url).models.list().data
    assert [m.id for m in models] == [NAME]
    assert models[0].owned_by == "brewslm" and models[0].model_extra["version"] == 1


def test_greedy_chat_matches_transformers_generate(tiny_server, tiny):
    url, records = tiny_server
    records.clear()
    reply = client(url).chat.completions.create(model=NAME, messages=HELLO, max_tokens=8,
                                                temperature=0)
    prompt = rendered(tiny, HELLO)
    text, finish, prompt_tokens = greedy_reference(tiny, prompt, 8)
    choice = reply.choices[0]
    assert choice.message.content == text and choice.message.role == "assistant"
    assert choice.finish_reason == finish
    backend = TransformersBackend.load(tiny)
    assert reply.usage.prompt_tokens == prompt_tokens == backend.count_tokens(prompt)
    assert reply.usage.completion_tokens == backend.count_tokens(text)
    assert reply.usage.total_tokens == prompt_tokens + reply.usage.completion_tokens
    assert reply.object == "chat.completion" and reply.model == NAME
    [rec] = records
    assert rec.ok and rec.prompt_text == prompt and rec.endpoint == "/v1/chat/completions"
    assert rec.deployment_id == "dep-tiny" and rec.version == 1 and not rec.stream


def test_stream_concatenates_to_the_non_stream_answer(tiny_server):
    url, records = tiny_server
    api = client(url)
    whole = api.chat.completions.create(model=NAME, messages=HELLO, max_tokens=8, temperature=0)
    records.clear()
    chunks = list(api.chat.completions.create(model=NAME, messages=HELLO, max_tokens=8,
                                              temperature=0, stream=True,
                                              stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == whole.choices[0].finish_reason and set(finishes[:-1]) == {None}
    assert chunks[-1].usage.model_dump() == whole.usage.model_dump()
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    [rec] = records
    assert rec.stream and rec.ok and rec.ttft_s is not None and rec.ttft_s <= rec.latency_s


def test_completions_agree_with_chat_on_the_same_prompt(tiny_server, tiny):
    url, _ = tiny_server
    api = client(url)
    chat = api.chat.completions.create(model=NAME, messages=HELLO, max_tokens=8, temperature=0)
    prompt = rendered(tiny, HELLO)
    done = api.completions.create(model=NAME, prompt=prompt, max_tokens=8, temperature=0)
    assert done.object == "text_completion"
    assert done.choices[0].text == chat.choices[0].message.content
    assert done.usage.model_dump() == chat.usage.model_dump()
    pieces = list(api.completions.create(model=NAME, prompt=prompt, max_tokens=8,
                                         temperature=0, stream=True))
    assert "".join(p.choices[0].text for p in pieces) == done.choices[0].text


def test_stop_strings_cut_the_text(tiny_server):
    """A seeded sample, then the same sample with a stop string from its middle."""
    url, _ = tiny_server
    api = client(url)
    settings = {"model": NAME, "max_tokens": 16, "temperature": 1.0, "seed": 11}
    text = api.chat.completions.create(messages=HELLO, **settings).choices[0].message.content
    # Two printable characters from the middle, said there for the first time.
    at = next(i for i in range(len(text) // 2, len(text) - 1)
              if text[i:i + 2].isascii() and text[i:i + 2].strip()
              and text.index(text[i:i + 2]) == i)
    stop, expected = text[at:at + 2], text[:at]
    cut = api.chat.completions.create(messages=HELLO, stop=[stop, "never said"], **settings)
    assert cut.choices[0].message.content == expected
    assert cut.choices[0].finish_reason == "stop"
    streamed = list(api.chat.completions.create(messages=HELLO, stop=stop, stream=True,
                                                **settings))
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == expected
    assert streamed[-1].choices[0].finish_reason == "stop"


def test_a_seed_repeats_a_sampled_answer(tiny_server):
    url, _ = tiny_server
    api = client(url)

    def sample(seed: int) -> str:
        return api.completions.create(model=NAME, prompt="The printer", max_tokens=12,
                                      temperature=1.0, top_p=0.9, seed=seed).choices[0].text

    assert sample(7) == sample(7)


def test_an_adapter_deployment_serves_base_plus_adapter(tiny, tmp_path):
    """A fresh LoRA adapter (B = 0) changes nothing: it must answer as the base does."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny),
                           LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    model.save_pretrained(tmp_path / "adapter")
    AutoTokenizer.from_pretrained(tiny).save_pretrained(tmp_path / "adapter")
    active = ActiveModel("d", 1, NAME, tmp_path / "adapter", "adapter", base_path=tiny)
    backend = load_backend(active)
    prompt = backend.render_chat(HELLO)
    got = "".join(backend.stream(prompt, max_tokens=6, temperature=0, top_p=1, stop=[],
                                 seed=None))
    assert got == greedy_reference(tiny, prompt, 6)[0]
    backend.close()


# --- backends without a model ------------------------------------------------------------


def test_stop_filter_never_shows_part_of_a_stop_string():
    cut = StopFilter(["abc", "bd"])
    assert [cut.feed(p) for p in ["xa", "b", "b", "d", "zz"]] == ["x", "", "ab", "", ""]
    assert cut.hit and cut.flush() == ""
    held = StopFilter(["abc"])
    assert [held.feed(p) for p in ["xa", "b", "x", "ab"]] == ["x", "", "abx", ""]
    assert not held.hit and held.flush() == "ab"


def test_a_vllm_bundle_serves_its_model_subfolder(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    assert model_folder(tmp_path) == tmp_path / "model"
    (tmp_path / "config.json").write_text("{}")
    assert model_folder(tmp_path) == tmp_path


def test_gguf_without_llama_cpp_says_what_to_install(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if not installed
    with pytest.raises(InputError) as err:
        load_backend(ActiveModel("d", 1, NAME, tmp_path, "gguf", gguf_file="m.gguf"))
    assert err.value.code == "serve_backend_unavailable"
    assert "brewslm[llama]" in err.value.message


# --- the HTTP surface, on fake backends --------------------------------------------------


def test_health_and_models_follow_the_deployment(serve):
    deployments = Deployments(FakeBackend())
    url = serve(deployments.app())
    health = httpx.get(f"{url}/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "version": 1, "deployment_id": "dep-1",
                             "error": None}
    assert deployments.loads == [1]  # /health warmed the model
    deployments.version = None
    assert httpx.get(f"{url}/health").json()["status"] == "no_model"
    assert httpx.get(f"{url}/health").status_code == 503
    assert httpx.get(f"{url}/v1/models").json() == {"object": "list", "data": []}
    refused = httpx.post(f"{url}/v1/chat/completions", json=chat_body())
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "no_model_deployed"


@pytest.mark.parametrize(("body", "code", "param"), ids=[
    "not-json", "not-an-object", "no-messages", "temperature", "role", "max-tokens", "stops",
    "n"], argvalues=[
    (b"{not json", "invalid_json", None),
    (b"[1, 2]", "invalid_request_body", None),
    (json.dumps({"model": NAME}).encode(), "invalid_request_body", "messages"),
    (json.dumps(chat_body(temperature=5)).encode(), "invalid_request_body", "temperature"),
    (json.dumps(chat_body(messages=[{"role": "wizard", "content": "hi"}])).encode(),
     "invalid_request_body", "messages.0.role"),
    (json.dumps(chat_body(max_tokens=10_000)).encode(), "max_tokens_too_large", "max_tokens"),
    (json.dumps(chat_body(stop=["a", "b", "c", "d", "e"])).encode(), "invalid_request_body",
     "stop"),
    (json.dumps(chat_body(n=2)).encode(), "invalid_request_body", "n"),
])
def test_bad_requests_get_400_with_an_openai_error_body(serve, body, code, param):
    deployments = Deployments(FakeBackend())
    url = serve(deployments.app())
    reply = httpx.post(f"{url}/v1/chat/completions", content=body,
                       headers={"content-type": "application/json"})
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == code
    assert error["message"] and error["param"] == param
    [rec] = deployments.records
    assert rec.http_status == 400 and rec.error_code == code and not rec.ok


def test_bad_completion_prompts_get_400(serve):
    url = serve(Deployments(FakeBackend()).app())
    for prompt in ["", ["a", "b"], [1, 2, 3]]:
        reply = httpx.post(f"{url}/v1/completions", json={"prompt": prompt})
        assert reply.status_code == 400, prompt
        assert reply.json()["error"]["param"].startswith("prompt")


def test_bodies_over_the_limit_get_413(serve):
    deployments = Deployments(FakeBackend())
    url = serve(deployments.app(max_body_bytes=2000))
    big = json.dumps(chat_body(messages=[{"role": "user", "content": "x" * 5000}])).encode()
    declared = httpx.post(f"{url}/v1/chat/completions", content=big,
                          headers={"content-type": "application/json"})
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "request_too_large"

    def chunks():  # no Content-Length: the bytes read must be counted
        for start in range(0, len(big), 1000):
            yield big[start:start + 1000]

    chunked = httpx.post(f"{url}/v1/chat/completions", content=chunks(),
                         headers={"content-type": "application/json"})
    assert chunked.status_code == 413
    assert [r.http_status for r in deployments.records] == [413, 413]
    assert httpx.post(f"{url}/v1/chat/completions", json=chat_body()).status_code == 200


def test_another_models_name_gets_404(serve):
    url = serve(Deployments(FakeBackend()).app())
    reply = httpx.post(f"{url}/v1/chat/completions", json=chat_body(model="gpt-4o"))
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "model_not_found"
    assert httpx.get(f"{url}/v1/models/gpt-4o").status_code == 404
    assert httpx.get(f"{url}/v1/models/{NAME}").json()["id"] == NAME
    missing = httpx.post(f"{url}/v1/chat/completions", json={"messages": HELLO})
    assert missing.status_code == 200  # no model named: the active one


def test_a_required_token_guards_everything_but_health(serve, monkeypatch):
    monkeypatch.setenv("BREWSLM_API_TOKEN", "s3cret")
    deployments = Deployments(FakeBackend())
    url = serve(deployments.app(require_token=True))
    assert httpx.get(f"{url}/health").status_code == 200
    assert httpx.get(f"{url}/openapi.json").status_code == 404
    for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}]:
        reply = httpx.get(f"{url}/v1/models", headers=headers)
        assert reply.status_code == 401, headers
        assert reply.json()["error"]["code"] == "invalid_api_key"
    refused = httpx.post(f"{url}/v1/chat/completions", json=chat_body())
    assert refused.status_code == 401
    assert deployments.records[-1].http_status == 401
    good = {"Authorization": "Bearer s3cret"}
    assert httpx.get(f"{url}/v1/models", headers=good).status_code == 200
    answer = client(url, api_key="s3cret").chat.completions.create(model=NAME, messages=HELLO)
    assert answer.choices[0].message.content == "hello from the fake"
    with pytest.raises(openai.AuthenticationError):
        client(url, api_key="nope").models.list()


def test_a_failing_backend_gets_503_and_an_unhealthy_health(serve):
    broken = FakeBackend(fail_after=0)
    deployments = Deployments(broken, RuntimeError("weights are missing"))
    url = serve(deployments.app())
    for stream in (False, True):
        reply = httpx.post(f"{url}/v1/chat/completions", json=chat_body(stream=stream))
        assert reply.status_code == 503, stream
        assert reply.json()["error"]["code"] == "backend_error"
        assert "boom" in reply.json()["error"]["message"]
    health = httpx.get(f"{url}/health")
    assert health.status_code == 503 and health.json()["status"] == "unhealthy"
    assert "boom" in health.json()["error"]
    with pytest.raises(openai.InternalServerError):
        client(url).chat.completions.create(model=NAME, messages=HELLO)

    deployments.version = 2  # a version that does not even load
    reply = httpx.post(f"{url}/v1/completions", json={"prompt": "hi"})
    assert reply.status_code == 503 and reply.json()["error"]["code"] == "backend_error"
    health = httpx.get(f"{url}/health").json()
    assert health["status"] == "unhealthy" and "weights are missing" in health["error"]
    assert health["version"] == 2
    assert broken.closed
    assert [r.error_code for r in deployments.records] == ["backend_error"] * 4
    assert all(r.http_status == 503 and not r.ok for r in deployments.records)


def test_a_failure_mid_stream_ends_the_stream_with_an_error_event(serve):
    deployments = Deployments(FakeBackend(fail_after=2))
    url = serve(deployments.app())
    with httpx.stream("POST", f"{url}/v1/chat/completions",
                      json=chat_body(stream=True)) as reply:
        assert reply.status_code == 200
        events = [line[len("data: "):] for line in reply.iter_lines() if line]
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["error"]["code"] == "backend_error"
    content = "".join(json.loads(e)["choices"][0]["delta"].get("content", "")
                      for e in events[:-2])
    assert content == "hello from"
    [rec] = deployments.records
    assert rec.stream and not rec.ok and rec.error_code == "backend_error"
    assert httpx.get(f"{url}/health").json()["status"] == "unhealthy"
    with pytest.raises(openai.APIError):
        list(client(url).chat.completions.create(model=NAME, messages=HELLO, stream=True))


def test_recovery_clears_unhealthy(serve):
    backend = FakeBackend(fail_after=0)
    url = serve(Deployments(backend).app())
    assert httpx.post(f"{url}/v1/completions", json={"prompt": "hi"}).status_code == 503
    assert httpx.get(f"{url}/health").status_code == 503
    backend.fail_after = None
    assert httpx.post(f"{url}/v1/completions", json={"prompt": "hi"}).status_code == 200
    assert httpx.get(f"{url}/health").json()["status"] == "ok"


def test_promote_and_rollback_swap_the_model_without_a_restart(serve):
    one, two = FakeBackend("answer one"), FakeBackend("answer two")
    deployments = Deployments(one, two)
    api = client(serve(deployments.app()))

    def ask() -> tuple[str, str]:
        raw = api.chat.completions.with_raw_response.create(model=NAME, messages=HELLO)
        return raw.parse().choices[0].message.content, raw.headers["x-brewslm-version"]

    assert ask() == ("answer one", "1")
    deployments.version = 2
    assert ask() == ("answer two", "2") and one.closed and not two.closed
    deployments.version = 1
    assert ask() == ("answer one", "1") and two.closed
    assert deployments.loads == [1, 2, 1]
    assert [r.version for r in deployments.records] == [1, 2, 1]
    assert api.models.list().data[0].model_extra["version"] == 1


def test_records_carry_timings_tokens_and_the_prompt(serve):
    backend = FakeBackend("one two three four", delay=0.01)
    deployments = Deployments(backend)
    api = client(serve(deployments.app(max_tokens_limit=64)))
    api.chat.completions.create(model=NAME, messages=HELLO, max_tokens=3, seed=5, stop="x",
                                temperature=0.5, top_p=0.8)
    list(api.completions.create(model=NAME, prompt="a b", stream=True))
    chat, done = deployments.records
    assert chat.endpoint == "/v1/chat/completions" and done.endpoint == "/v1/completions"
    assert chat.prompt_text == "<user>hello there<assistant>" and done.prompt_text == "a b"
    assert (chat.prompt_tokens, chat.completion_tokens) == (2, 3)
    assert (done.prompt_tokens, done.completion_tokens) == (2, 4)
    for rec in (chat, done):
        assert rec.ok and rec.http_status == 200 and rec.error_code is None
        assert rec.deployment_id == "dep-1" and rec.version == 1
        assert 0 < rec.ttft_s <= rec.latency_s
        assert rec.started_at.tzinfo == UTC
    assert (chat.stream, done.stream) == (False, True)
    assert backend.calls[0] == {"prompt": "<user>hello there<assistant>", "max_tokens": 3,
                                "stop": ["x"], "temperature": 0.5, "top_p": 0.8, "seed": 5}
    assert backend.calls[1]["max_tokens"] == 64  # the server's limit when none is asked


def test_a_long_prompt_is_truncated_in_the_record(serve):
    deployments = Deployments(FakeBackend())
    url = serve(deployments.app())
    httpx.post(f"{url}/v1/completions", json={"prompt": "y" * 9000})
    assert len(deployments.records[0].prompt_text) == 4000


def test_a_failing_record_does_not_break_the_response(serve):
    def record(_: RequestRecord) -> None:
        raise RuntimeError("the database is down")

    deployments = Deployments(FakeBackend())
    app = create_serving_app(deployments.active, record, load=deployments.load)
    reply = client(serve(app)).chat.completions.create(model=NAME, messages=HELLO)
    assert reply.choices[0].message.content == "hello from the fake"


def test_generation_is_one_request_at_a_time(serve):
    backend = FakeBackend("a b c d", delay=0.02)
    deployments = Deployments(backend)
    url = serve(deployments.app())

    def ask(_: int) -> int:
        return httpx.post(f"{url}/v1/completions", json={"prompt": "go"}, timeout=30).status_code

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(ask, range(4))) == [200] * 4
    assert backend.most_running == 1 and len(backend.calls) == 4
    assert deployments.loads == [1]


def test_a_client_leaving_mid_stream_stops_generation_and_is_recorded(serve):
    backend = FakeBackend(" ".join(["word"] * 200), delay=0.01)
    deployments = Deployments(backend)
    url = serve(deployments.app())
    with httpx.stream("POST", f"{url}/v1/completions",
                      json={"prompt": "go", "stream": True}) as reply:
        next(reply.iter_lines())  # one chunk, then hang up
    deadline = time.monotonic() + 10
    while (not deployments.records or backend.running) and time.monotonic() < deadline:
        time.sleep(0.02)
    [rec] = deployments.records
    assert rec.error_code == "client_disconnected" and rec.stream and not rec.ok
    assert backend.pieces < 100  # the worker stopped soon after the client left
    after = httpx.post(f"{url}/v1/completions", json={"prompt": "go", "max_tokens": 2})
    assert after.status_code == 200 and after.json()["choices"][0]["text"] == "word word"
