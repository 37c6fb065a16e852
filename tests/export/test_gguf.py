"""GGUF export (brewslm.export.gguf): files written from builtin:tiny in f32, f16 and q8_0 are
read back by independent readers (transformers' GGUF loader; llama.cpp when installed) with the
same next-token logits within PARITY_TOLERANCE, the same argmax, the same token ids (the GGUF's
own tokenizer, ChatML special tokens included) and the same chat template. Unsupported
architectures and quants are refused before any file exists, and a converter that skips
llama.cpp's Q/K permutation is caught."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
)

from brewslm.basemodels.reference import resolve_base_model
from brewslm.errors import InputError
from brewslm.export import gguf as gguf_export

PLAIN = ("Classify the support ticket. Answer with JSON.\n\nMy invoice is wrong.",
         "Hello, my parcel never arrived.", "Reset my password please  ...  42!")


@pytest.fixture
def tiny():
    """builtin:tiny's HF folder, its fp32 model and tokenizer, and the prompts: plain text and
    the same text rendered as ChatML turns (so <|im_start|>/<|im_end|> are in the ids)."""
    path = resolve_base_model("builtin:tiny").path
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    chats = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                           add_generation_prompt=True) for p in PLAIN]
    return path, model, tokenizer, list(PLAIN) + chats


def _ids(tokenizer, text, **kwargs):
    return list(tokenizer(text, **kwargs)["input_ids"])


def _compare(reference, exported, tokenizer, texts):
    """(max |next-token logit diff|, share of prompts whose argmax agrees)."""
    diff, agree = 0.0, 0
    with torch.no_grad():
        for text in texts:
            ids = torch.tensor([_ids(tokenizer, text, add_special_tokens=False)])
            want = reference(input_ids=ids).logits[0, -1]
            got = exported(input_ids=ids).logits[0, -1]
            diff = max(diff, float((want - got).abs().max()))
            agree += int(want.argmax() == got.argmax())
    return diff, agree / len(texts)


@pytest.mark.parametrize("quant", gguf_export.QUANTS)
def test_each_quant_reads_back_with_parity(tiny, tmp_path, quant):
    path, model, tokenizer, texts = tiny
    out = tmp_path / "gguf" / f"tiny-{quant}.gguf"
    result = gguf_export.write_gguf(path, out, quant=quant, name="tiny")
    assert result["path"] == str(out) and result["bytes"] == out.stat().st_size
    assert result["quant"] == quant and result["architecture"] == "llama"
    assert result["tensors"] == 2 + 9 * model.config.num_hidden_layers  # tied: no output.weight
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temp file left

    info = gguf_export.read_gguf_info(out)
    assert info["architecture"] == "llama" and info["quant"] == quant
    assert info["chat_template"] == tokenizer.chat_template
    assert info["vocab_size"] == model.config.vocab_size
    assert (info["bos_token_id"], info["eos_token_id"]) == (tokenizer.bos_token_id,
                                                            tokenizer.eos_token_id)
    assert info["context_length"] == model.config.max_position_embeddings

    exported, gguf_tokenizer = gguf_export.load_with_transformers(out)
    assert not (out.parent / "tokenizer.json").exists()  # so the tokenizer came from the GGUF
    for text in texts:
        assert _ids(gguf_tokenizer, text) == _ids(tokenizer, text)
        assert _ids(gguf_tokenizer, text, add_special_tokens=False) == _ids(
            tokenizer, text, add_special_tokens=False)
    assert tokenizer.convert_tokens_to_ids("<|im_start|>") in _ids(tokenizer, texts[-1])
    diff, agreement = _compare(model, exported, tokenizer, texts)
    assert diff <= gguf_export.PARITY_TOLERANCE[quant], diff
    assert agreement == 1.0


def test_q8_0_falls_back_to_f16_for_rows_that_do_not_split_into_blocks(tiny, tmp_path):
    from gguf import GGMLQuantizationType, GGUFReader

    out = tmp_path / "tiny.gguf"
    gguf_export.write_gguf(tiny[0], out, quant="q8_0")
    types = {t.name: t.tensor_type for t in GGUFReader(str(out)).tensors}
    assert types["blk.0.attn_q.weight"] == GGMLQuantizationType.Q8_0
    assert types["blk.0.ffn_down.weight"] == GGMLQuantizationType.F16  # rows of 344 = 10.75 blocks
    assert types["blk.0.attn_norm.weight"] == GGMLQuantizationType.F32


def test_non_llama_is_refused_before_anything_is_written(tmp_path):
    hf_dir = tmp_path / "gpt2"
    config = GPT2Config(n_layer=1, n_embd=32, n_head=2, n_positions=64, vocab_size=64)
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(hf_dir)
    out_dir = tmp_path / "out"
    with pytest.raises(InputError) as caught:
        gguf_export.write_gguf(hf_dir, out_dir / "gpt2.gguf")
    assert caught.value.code == "export_architecture_unsupported"
    assert caught.value.details["architecture"] == "gpt2"
    assert "gpt2" in caught.value.message and "llama" in caught.value.message
    assert not out_dir.exists()


@pytest.mark.parametrize(("file", "change", "code"), [
    ("config.json", {"rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0}},
     "export_architecture_unsupported"),
    ("config.json", {"attention_bias": True}, "export_architecture_unsupported"),
    ("tokenizer.json", {"pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581"}},
     "export_tokenizer_unsupported"),
])
def test_llama_variants_it_cannot_write_faithfully_are_refused(tiny, tmp_path, file, change,
                                                               code):
    hf_dir = tmp_path / "variant"
    shutil.copytree(tiny[0], hf_dir)
    data = json.loads((hf_dir / file).read_text()) | change
    (hf_dir / file).write_text(json.dumps(data))
    with pytest.raises(InputError) as caught:
        gguf_export.write_gguf(hf_dir, tmp_path / "out" / "x.gguf")
    assert caught.value.code == code
    assert not (tmp_path / "out").exists()


def test_unknown_quant_is_refused(tmp_path):
    with pytest.raises(InputError) as caught:
        gguf_export.write_gguf(tmp_path, tmp_path / "out" / "x.gguf", quant="q4_k_m")
    assert caught.value.code == "export_quant_unsupported"
    assert not (tmp_path / "out").exists()


def test_export_without_the_qk_permutation_is_caught(tiny, tmp_path, monkeypatch):
    # After 10 steps builtin:tiny barely uses attention, so a rotary bug moves its logits by
    # only ~3e-3; the same config with random weights (std 0.1) depends on positions as a
    # trained model does.
    path, _, tokenizer, texts = tiny
    hf_dir = tmp_path / "random"
    shutil.copytree(path, hf_dir)
    config = AutoConfig.from_pretrained(hf_dir)
    config.initializer_range = 0.1
    torch.manual_seed(0)
    reference = AutoModelForCausalLM.from_config(config).eval()
    reference.save_pretrained(hf_dir)

    good = gguf_export.write_gguf(hf_dir, tmp_path / "good.gguf", quant="f32")
    diff, agreement = _compare(reference, gguf_export.load_with_transformers(
        tmp_path / "good.gguf")[0], tokenizer, texts)
    assert diff <= gguf_export.PARITY_TOLERANCE["f32"] and agreement == 1.0

    monkeypatch.setattr(gguf_export, "_permute_qk", lambda weights, heads: weights)
    bad = gguf_export.write_gguf(hf_dir, tmp_path / "bad.gguf", quant="f32")
    assert bad["sha256"] != good["sha256"]
    diff, agreement = _compare(reference, gguf_export.load_with_transformers(
        tmp_path / "bad.gguf")[0], tokenizer, texts)
    assert diff > 5 * gguf_export.PARITY_TOLERANCE["q8_0"], diff
    assert agreement < 1.0


def test_untied_model_writes_an_output_tensor(tiny, tmp_path):
    path, model, tokenizer, texts = tiny
    untied = tmp_path / "untied"
    shutil.copytree(path, untied)
    config = json.loads((untied / "config.json").read_text())
    config["tie_word_embeddings"] = False
    (untied / "config.json").write_text(json.dumps(config))
    weights = load_file(untied / "model.safetensors")
    torch.manual_seed(0)
    weights["lm_head.weight"] = torch.randn_like(weights["model.embed_tokens.weight"]) * 0.05
    save_file(weights, untied / "model.safetensors", metadata={"format": "pt"})
    reference = AutoModelForCausalLM.from_pretrained(untied, dtype=torch.float32).eval()

    result = gguf_export.write_gguf(untied, tmp_path / "untied.gguf", quant="f32")
    assert result["tensors"] == 3 + 9 * model.config.num_hidden_layers
    diff, agreement = _compare(reference, gguf_export.load_with_transformers(
        tmp_path / "untied.gguf")[0], tokenizer, texts)
    assert diff <= gguf_export.PARITY_TOLERANCE["f32"] and agreement == 1.0


def test_llama_cpp_reads_the_file_with_parity(tiny, tmp_path):
    pytest.importorskip("llama_cpp")
    path, model, tokenizer, texts = tiny
    out = tmp_path / "tiny-f16.gguf"
    gguf_export.write_gguf(path, out, quant="f16")
    prompts = [_ids(tokenizer, text, add_special_tokens=False) for text in texts]
    logits = gguf_export.llama_cpp_last_logits(out, prompts)
    with torch.no_grad():
        for ids, got in zip(prompts, logits, strict=True):
            want = model(input_ids=torch.tensor([ids])).logits[0, -1]
            assert float((want - torch.tensor(got)).abs().max()) <= \
                gguf_export.PARITY_TOLERANCE["f16"]
            assert int(want.argmax()) == max(range(len(got)), key=got.__getitem__)
