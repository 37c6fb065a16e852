"""builtin:tiny: builds offline, loads with transformers, is deterministic and cached."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import pytest

from brewslm.basemodels import builtin_tiny, make_corpus
from brewslm.basemodels.builtin_tiny import (
    SIDECAR,
    build_builtin_tiny,
    cache_key,
    default_builtin_dir,
)

LABEL = '{"category": "billing", "priority": "high"}'


def use_home(mp: pytest.MonkeyPatch, home: Path) -> None:
    """Point BrewSLM at home, with models under home/models (not a shared BREWSLM_MODELS_DIR)."""
    mp.setenv("BREWSLM_HOME", str(home))
    mp.delenv("BREWSLM_MODELS_DIR", raising=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One real build shared by this module: (its BREWSLM_HOME, its folder)."""
    home = tmp_path_factory.mktemp("home-a")
    with pytest.MonkeyPatch.context() as mp:
        use_home(mp, home)
        started = time.perf_counter()
        path = build_builtin_tiny()
        print(f"builtin:tiny built in {time.perf_counter() - started:.2f} s")
    return home, path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_build_writes_a_complete_folder(built, monkeypatch):
    home, path = built
    use_home(monkeypatch, home)
    assert path == default_builtin_dir() == home / "models" / f"builtin-tiny-{cache_key()}"
    for name in ("config.json", "generation_config.json", "model.safetensors",
                 "tokenizer.json", "tokenizer_config.json", SIDECAR):
        assert (path / name).is_file(), name
    sidecar = json.loads((path / SIDECAR).read_text())
    assert sidecar["key"] == cache_key()
    assert sidecar["sha256"] == {name: sha256(path / name)
                                 for name in ("tokenizer.json", "model.safetensors")}
    assert not list(path.parent.glob(".*.tmp-*"))  # the temporary folder was renamed away


def test_loads_with_transformers_and_runs_forward(built):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, path = built
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    cfg = model.config
    assert cfg.model_type == "llama"
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (128, 4, 4)
    assert cfg.intermediate_size == 344 and cfg.max_position_embeddings == 512
    assert cfg.tie_word_embeddings
    assert cfg.vocab_size == len(tokenizer) == 2048
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|pad|>"
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert (cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id) == (
        tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id

    ids = tokenizer("A billing ticket about an invoice.", return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], cfg.vocab_size)
    assert torch.isfinite(logits).all()


def test_chat_template_renders_chatml(built):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(built[1])
    messages = [
        {"role": "system", "content": "Classify the ticket."},
        {"role": "user", "content": "I was charged twice."},
        {"role": "assistant", "content": LABEL},
        {"role": "tool", "content": '{"status": "ok"}'},
        {"role": "user", "content": "And now?"},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nClassify the ticket.<|im_end|>\n")
    assert f"<|im_start|>assistant\n{LABEL}<|im_end|>\n" in text
    assert "<|im_start|>tool\n" in text
    assert text.endswith("<|im_start|>assistant\n")
    without = tokenizer.apply_chat_template(messages[:2], tokenize=False)
    assert "<|im_start|>assistant" not in without
    # The corpus renders conversations with the same function, so pretraining matches.
    pairs = [(m["role"], m["content"]) for m in messages]
    assert text == make_corpus.chatml(pairs) + "<|im_start|>assistant\n"
    with pytest.raises(Exception, match="Unknown role"):
        tokenizer.apply_chat_template([{"role": "robot", "content": "x"}], tokenize=False)


def test_tokenizer_round_trips_text(built):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(built[1])
    for text in ["Hello world", LABEL, "Ticket #4821: café crashed\n\ttwice 😀 ", "  x  "]:
        ids = tokenizer(text).input_ids
        assert tokenizer.decode(ids) == text
    for token in ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"):
        assert len(tokenizer(token).input_ids) == 1, token  # specials stay one token
    assert tokenizer("Hi").input_ids[0] != tokenizer.bos_token_id  # no BOS is prepended


def test_answer_tokens_occur_in_corpus(built):
    # Tokens missing from pretraining keep random embeddings and cannot be learned later.
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(built[1])
    corpus_ids = set(tokenizer(builtin_tiny.corpus_bytes().decode()).input_ids)
    for category in make_corpus.CATEGORIES:
        for priority in make_corpus.PRIORITIES:
            answer = json.dumps({"category": category, "priority": priority}) + "<|im_end|>"
            assert set(tokenizer(answer).input_ids) <= corpus_ids, answer


def test_build_is_deterministic_across_homes(built, tmp_path, monkeypatch):
    _, first = built
    use_home(monkeypatch, tmp_path / "home-b")
    second = build_builtin_tiny()
    assert second != first and second.name == first.name
    for name in ("tokenizer.json", "model.safetensors"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert json.loads((first / SIDECAR).read_text()) == json.loads((second / SIDECAR).read_text())


def test_complete_folder_is_reused_without_rebuilding(built, monkeypatch):
    home, path = built
    use_home(monkeypatch, home)
    mtime = (path / SIDECAR).stat().st_mtime_ns

    def must_not_build(folder):
        raise AssertionError("rebuilt a complete folder")

    monkeypatch.setattr(builtin_tiny, "_build_into", must_not_build)
    assert build_builtin_tiny() == path
    assert build_builtin_tiny(path) == path
    assert (path / SIDECAR).stat().st_mtime_ns == mtime


def fake_build(calls: list[Path], delay: float = 0.0):
    """A stand-in for _build_into: records the call, writes only a valid sidecar."""

    def build(folder: Path) -> dict:
        calls.append(folder)
        time.sleep(delay)
        (folder / SIDECAR).write_text(json.dumps({"key": cache_key()}))
        return {}

    return build


def test_lock_lets_only_one_of_two_concurrent_builds_run(tmp_path, monkeypatch):
    calls: list[Path] = []
    monkeypatch.setattr(builtin_tiny, "_build_into", fake_build(calls, delay=0.3))
    target = tmp_path / "tiny"
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(build_builtin_tiny(target)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [target, target]
    assert len(calls) == 1
    assert (tmp_path / ".tiny.lock").exists()


def test_incomplete_or_outdated_build_is_replaced(tmp_path, monkeypatch):
    use_home(monkeypatch, tmp_path)
    calls: list[Path] = []
    monkeypatch.setattr(builtin_tiny, "_build_into", fake_build(calls))
    target = default_builtin_dir()
    target.mkdir()
    (target / "config.json").write_text("{}")  # a crashed build: no sidecar
    leftover = target.parent / f".{target.name}.tmp-99999"
    leftover.mkdir()
    assert build_builtin_tiny() == target
    assert len(calls) == 1 and not leftover.exists()
    assert not (target / "config.json").exists()

    (target / SIDECAR).write_text(json.dumps({"key": "old-key"}))  # outdated build
    assert build_builtin_tiny() == target
    assert len(calls) == 2


def test_refuses_to_overwrite_a_foreign_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(builtin_tiny, "_build_into", fake_build([]))
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        build_builtin_tiny(target)
    assert (target / "notes.txt").read_text() == "keep me"


def test_corpus_is_small_reproducible_and_covers_the_chat_format():
    data = builtin_tiny.corpus_bytes()
    assert 100_000 < len(data) < 300_000
    text = data.decode("utf-8")
    assert text == make_corpus.generate()  # corpus.txt is exactly what make_corpus writes
    for needle in ("<|im_start|>system\n", "<|im_start|>assistant\n", "<|im_end|>",
                   "<|im_start|>tool\n", "<|endoftext|>", LABEL,
                   '{"category":"billing","priority":"high"}'):
        assert needle in text, needle
