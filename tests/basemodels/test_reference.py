"""Base-model references: builtin, local folder and hub ids, and every refusal's reason code.

No test touches the network: HF_HUB_OFFLINE=1, HF_HOME is a temporary folder, and a socket
guard fails any attempt to connect.
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest

from brewslm.basemodels import builtin_tiny, pretrain, reference
from brewslm.basemodels.reference import (
    ResolvedModel,
    resolve_base_model,
    validate_base_model_ref,
)
from brewslm.errors import InputError


def use_home(mp: pytest.MonkeyPatch, home: Path) -> None:
    """Point BrewSLM at home, with models under home/models (not a shared BREWSLM_MODELS_DIR)."""
    mp.setenv("BREWSLM_HOME", str(home))
    mp.delenv("BREWSLM_MODELS_DIR", raising=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One real builtin:tiny build for this module: (its BREWSLM_HOME, its folder)."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        use_home(mp, home)
        return home, pretrain.pretrain_builtin_tiny()


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """Each test gets its own home and HF cache, and any network connect fails loudly."""
    use_home(monkeypatch, tmp_path / "home")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)

    def no_network(*args, **kwargs):
        raise AssertionError(f"a test tried to open a network connection: {args}")

    monkeypatch.setattr(socket, "create_connection", no_network)


@pytest.fixture
def model_copy(built, tmp_path) -> Path:
    """A plain local copy of the builtin model, as a user's own folder would be."""
    folder = tmp_path / "my-model"
    shutil.copytree(built[1], folder)
    (folder / builtin_tiny.SIDECAR).unlink()
    return folder


def refused(ref: str, code: str, *, validate: bool = True) -> InputError:
    """Assert both entry points refuse ref with code; return the resolve error."""
    if validate:
        with pytest.raises(InputError) as checked:
            validate_base_model_ref(ref)
        assert checked.value.code == code
    with pytest.raises(InputError) as caught:
        resolve_base_model(ref)
    assert caught.value.code == code
    assert caught.value.exit_code == 2
    return caught.value


def test_builtin_tiny_resolves_and_describes(built, monkeypatch):
    home, path = built
    use_home(monkeypatch, home)
    resolved = resolve_base_model("builtin:tiny")
    assert resolved == ResolvedModel("builtin:tiny", "builtin", path)
    info = resolved.describe()
    sidecar = json.loads((path / builtin_tiny.SIDECAR).read_text())
    assert info == {
        "ref": "builtin:tiny",
        "kind": "builtin",
        "path": str(path),
        "architecture": "LlamaForCausalLM",
        "model_type": "llama",
        "parameters": sidecar["parameters"],
        "tokenizer": True,
        "chat_template": True,
    }
    with pytest.raises(AttributeError):  # frozen
        resolved.kind = "local"  # type: ignore[misc]


def test_build_false_neither_builds_nor_validates_files(tmp_path):
    resolved = resolve_base_model("builtin:tiny", build=False)
    assert resolved.kind == "builtin"
    assert resolved.path == pretrain.default_pretrained_dir()
    assert not resolved.path.exists()
    info = resolved.describe()
    assert info["architecture"] is None and info["parameters"] is None
    assert info["tokenizer"] is False and info["chat_template"] is False


def test_validate_is_cheap(tmp_path):
    validate_base_model_ref("builtin:tiny")
    validate_base_model_ref("owner/name")
    validate_base_model_ref("Org-1/model_v2.5@refs/pr/3")
    models = tmp_path / "home" / "models"
    assert not models.exists() or not any(models.iterdir())


def test_unknown_builtin_names_the_known_ones():
    error = refused("builtin:huge", "base_model_unknown_builtin")
    assert "builtin:tiny" in error.message
    assert error.details["known"] == ["builtin:tiny", "builtin:tiny-random"]
    refused("builtin:", "base_model_unknown_builtin")


def test_local_folder_resolves_in_every_spelling(model_copy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    for ref in (str(model_copy), "my-model", "./my-model", "~/my-model", "../" + tmp_path.name
                + "/my-model"):
        validate_base_model_ref(ref)
        resolved = resolve_base_model(ref)
        assert (resolved.kind, resolved.path, resolved.ref) == ("local", model_copy, ref)
    info = resolve_base_model("./my-model").describe()
    assert info["kind"] == "local" and info["architecture"] == "LlamaForCausalLM"
    assert info["tokenizer"] and info["chat_template"] and info["parameters"] > 900_000


def test_local_folder_loads_with_transformers(model_copy):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_base_model(str(model_copy)).path
    assert len(AutoTokenizer.from_pretrained(path)) == AutoModelForCausalLM.from_pretrained(
        path).config.vocab_size


def test_existing_folder_wins_over_a_hub_id_of_the_same_spelling(model_copy, tmp_path,
                                                                  monkeypatch):
    (tmp_path / "owner").mkdir()
    shutil.copytree(model_copy, tmp_path / "owner" / "name")
    monkeypatch.chdir(tmp_path)
    assert resolve_base_model("owner/name").kind == "local"


def test_folder_without_tokenizer_is_invalid(model_copy):
    (model_copy / "tokenizer.json").unlink()
    error = refused(str(model_copy), "base_model_invalid_folder")
    assert "tokenizer.json" in error.message and str(model_copy) in error.message
    assert "config.json" not in error.message
    assert error.details["folder"] == str(model_copy)


def test_folder_without_config_is_invalid(model_copy):
    (model_copy / "config.json").unlink()
    error = refused(str(model_copy), "base_model_invalid_folder")
    assert error.details["missing"] == ["config.json"]
    assert "config.json" in error.message and "tokenizer" not in error.message


def test_vocab_json_needs_merges_txt(tmp_path):
    folder = tmp_path / "gpt2-like"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "vocab.json").write_text("{}")
    error = refused(str(folder), "base_model_invalid_folder")
    assert error.details["missing"] == ["merges.txt"]
    (folder / "merges.txt").write_text("")
    assert resolve_base_model(str(folder)).kind == "local"


def test_empty_folder_names_both_missing_files(tmp_path):
    error = refused(str(tmp_path), "base_model_invalid_folder")
    assert error.details["missing"][0] == "config.json"
    assert "tokenizer.json" in error.details["missing"][1]


def test_a_file_is_not_a_model_folder(tmp_path):
    file = tmp_path / "model.safetensors"
    file.write_bytes(b"")
    error = refused(str(file), "base_model_invalid_folder")
    assert "not a model folder" in error.message


@pytest.mark.parametrize("ref", ["./missing", "../missing-too", "/nonexistent/model",
                                 "~/no-such-model", "models/team/missing", "missing/"])
def test_path_that_does_not_exist_is_not_found(ref):
    error = refused(ref, "base_model_not_found")
    assert ref in error.message


@pytest.mark.parametrize("ref", ["", "   ", " builtin:tiny", "builtin:tiny\n", "has space",
                                 "bad!/name", "owner/na me", "x--y/z", "noslash",
                                 "owner/name@", "-owner/name", "tab\there"])
def test_malformed_reference_is_invalid(ref):
    refused(ref, "base_model_invalid_ref")


def test_non_string_reference_is_invalid():
    refused(None, "base_model_invalid_ref")  # type: ignore[arg-type]


@pytest.mark.parametrize("ref", ["owner/name", "owner/name@v1.0"])
def test_hub_id_not_cached_and_offline_is_unavailable(ref, tmp_path):
    validate_base_model_ref(ref)  # the syntax is fine
    error = refused(ref, "base_model_unavailable", validate=False)
    cache = tmp_path / "hf" / "hub"
    assert str(cache) in error.message
    assert "unreachable" in error.message and "HF_HUB_OFFLINE" in error.message
    assert "local model folder" in error.message and "network" in error.message
    assert error.details["cache_dir"] == str(cache)


def test_hub_unreachable_without_the_offline_flag(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    tried: list[tuple] = []

    def refuse_connect(address, timeout=None):
        tried.append((address, timeout))
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse_connect)
    error = refused("owner/name", "base_model_unavailable", validate=False)
    assert "cannot connect" in error.message
    assert tried and tried[0][1] == reference.HUB_TIMEOUT_S


def fake_hf_cache(cache: Path, repo_id: str, source: Path, commit: str = "a" * 40) -> Path:
    """Lay out a model the way huggingface_hub caches it: refs/main -> snapshots/<commit>."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    shutil.copytree(source, snapshot)
    return snapshot


def test_hub_id_in_the_local_cache_resolves_offline(model_copy, tmp_path):
    snapshot = fake_hf_cache(tmp_path / "hf" / "hub", "acme/tiny", model_copy)
    for ref in ("acme/tiny", "acme/tiny@main", "acme/tiny@" + "a" * 40):
        resolved = resolve_base_model(ref)
        assert (resolved.kind, resolved.path) == ("hub", snapshot)
    assert resolved.describe()["architecture"] == "LlamaForCausalLM"


def test_hub_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    assert reference.hf_cache_dir() == tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    assert reference.hf_cache_dir() == tmp_path / "elsewhere"


def test_cached_hub_snapshot_without_tokenizer_is_invalid(model_copy, tmp_path):
    (model_copy / "tokenizer.json").unlink()
    fake_hf_cache(tmp_path / "hf" / "hub", "acme/broken", model_copy)
    refused("acme/broken", "base_model_invalid_folder", validate=False)


def test_parameters_are_counted_from_sharded_safetensors_headers(model_copy):
    import torch
    from safetensors.torch import save_file

    (model_copy / "model.safetensors").unlink()
    save_file({"a": torch.zeros(3, 4)}, str(model_copy / "model-00001-of-00002.safetensors"))
    save_file({"b": torch.zeros(5), "c": torch.zeros(2, 2, 2)},
              str(model_copy / "model-00002-of-00002.safetensors"))
    index = {"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors",
                                            "b": "model-00002-of-00002.safetensors",
                                            "c": "model-00002-of-00002.safetensors"}}
    (model_copy / "model.safetensors.index.json").write_text(json.dumps(index))
    assert resolve_base_model(str(model_copy)).describe()["parameters"] == 12 + 5 + 8
