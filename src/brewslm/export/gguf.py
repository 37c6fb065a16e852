"""GGUF export: a small Hugging Face -> GGUF converter for llama-architecture models, and the
readers that prove a written file is right.

    from brewslm.export.gguf import write_gguf, read_gguf_info, load_with_transformers
    info = write_gguf(merged_dir, out / "model-q8_0.gguf", quant="q8_0")
    read_gguf_info(info["path"])["chat_template"]
    model, tokenizer = load_with_transformers(Path(info["path"]))  # independent reader

The `gguf` package (llama.cpp's gguf-py) writes the file but has no converter, so this module
maps the names and metadata itself, following llama.cpp's convert_hf_to_gguf.py: llama.*
hyperparameters, llama.cpp tensor names, the Q/K row permutation llama.cpp's rotary embedding
expects, a gpt2-style (byte-level BPE) tokenizer and the chat template. Only what it can write
faithfully is accepted; anything else is refused before a byte is written:
export_architecture_unsupported (not llama, or a llama variant such as rope scaling or biases),
export_quant_unsupported, export_tokenizer_unsupported (not a plain byte-level BPE tokenizer).
The file appears under its final name only once complete (written to a temp name, then renamed).

Second reader: llama-cpp-python, when installed (`llama_cpp_last_logits`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from brewslm.errors import InputError

SUPPORTED_ARCHITECTURES = ("llama",)
QUANTS = ("f32", "f16", "q8_0")

# Max |next-token logit diff| versus the fp32 HF model, read back with transformers' GGUF loader,
# over 6 prompts (3 plain, 3 ChatML turns). Measured (argmax agreed on every prompt each time):
#   builtin:tiny, 10 pretraining steps (logit std 0.4):   f32 0.0  f16 2.5e-4  q8_0 5.9e-3
#   builtin:tiny, 500 pretraining steps (logit std 1.8):  f32 0.0  f16 4.7e-3  q8_0 8.3e-2
#   tiny config, random init std 0.1 (logit std 1.2):     f32 0.0  f16 5.7e-3  q8_0 2.1e-1
# The error grows with the size of the logits, so the margins are set over the worst case; a
# file written without the Q/K permutation is off by 4-13 on the last two models.
PARITY_TOLERANCE = {"f32": 1e-4, "f16": 2e-2, "q8_0": 0.3}

_FILE_TYPES = {"f32": 0, "f16": 1, "q8_0": 7}  # gguf.LlamaFileType values
_TOKEN_NORMAL, _TOKEN_CONTROL, _TOKEN_USER_DEFINED, _TOKEN_UNUSED = 1, 3, 4, 5
_LAYER_NAMES = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}
_TOP_NAMES = {"model.embed_tokens.weight": "token_embd.weight",
              "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}


def write_gguf(hf_dir: Path, out_file: Path, *, quant: str = "f16",
               name: str | None = None) -> dict[str, Any]:
    """Convert a merged HF llama folder (fp32 safetensors) into one GGUF file."""
    hf_dir, out_file = Path(hf_dir), Path(out_file)
    if quant not in QUANTS:
        raise InputError("export_quant_unsupported",
                         f"GGUF quant {quant!r} is not supported; use one of {', '.join(QUANTS)}",
                         quant=quant, supported=list(QUANTS))
    config = json.loads((hf_dir / "config.json").read_text(encoding="utf-8"))
    _check_architecture(config)
    vocab = _read_vocab(hf_dir, config)
    tensor_names = _map_tensor_names(hf_dir, config)

    out_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=out_file.parent, prefix=f".{out_file.name}.",
                                    suffix=".partial")
    os.close(fd)
    try:
        count = _write(Path(tmp_name), hf_dir, config, vocab, tensor_names, quant,
                       name or hf_dir.name)
        os.replace(tmp_name, out_file)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return {"architecture": "llama", "quant": quant, "tensors": count,
            "bytes": out_file.stat().st_size, "sha256": _sha256(out_file), "path": str(out_file)}


def read_gguf_info(path: Path) -> dict[str, Any]:
    """The metadata a consumer checks, read back with gguf.GGUFReader."""
    from gguf import GGUFReader, LlamaFileType

    reader = GGUFReader(str(path))

    def field(key: str) -> Any:
        item = reader.get_field(key)
        return None if item is None else item.contents()

    arch = field("general.architecture")
    file_type = field("general.file_type")
    short = {v: k for k, v in _FILE_TYPES.items()}
    tokens = reader.get_field("tokenizer.ggml.tokens")
    return {
        "architecture": arch,
        "quant": short.get(file_type, LlamaFileType(file_type).name.lower()
                           if file_type is not None else None),
        "file_type": LlamaFileType(file_type).name if file_type is not None else None,
        "chat_template": field("tokenizer.chat_template"),
        "vocab_size": field(f"{arch}.vocab_size") or (len(tokens.data) if tokens else None),
        "bos_token_id": field("tokenizer.ggml.bos_token_id"),
        "eos_token_id": field("tokenizer.ggml.eos_token_id"),
        "tensors": len(reader.tensors),
        "context_length": field(f"{arch}.context_length"),
    }


def load_with_transformers(path: Path) -> tuple[Any, Any]:
    """The independent reader: transformers' own GGUF loader, model and tokenizer both from the
    file (the tokenizer is rebuilt from GGUF metadata, never from a tokenizer.json)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                 dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    return model.eval(), tokenizer


def llama_cpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def llama_cpp_last_logits(path: Path, prompts_ids: list[list[int]]) -> list[list[float]]:
    """Next-token logits after each prompt (given as token ids), computed by llama.cpp."""
    from llama_cpp import Llama

    n_ctx = max(64, max(len(ids) for ids in prompts_ids) + 1)
    llm = Llama(model_path=str(path), n_ctx=n_ctx, logits_all=True, verbose=False)
    try:
        out = []
        for ids in prompts_ids:
            llm.reset()
            llm.eval(ids)
            out.append([float(x) for x in llm.scores[len(ids) - 1]])
        return out
    finally:
        llm.close()  # without it llama-cpp-python errors at interpreter exit


# --- validation (all before the output file exists) ------------------------------------------

def _unsupported(config: dict[str, Any], why: str) -> InputError:
    arch = config.get("model_type")
    return InputError("export_architecture_unsupported",
                      f"GGUF export supports {', '.join(SUPPORTED_ARCHITECTURES)} only; "
                      f"this model {why}", architecture=arch,
                      supported=list(SUPPORTED_ARCHITECTURES))


def _check_architecture(config: dict[str, Any]) -> None:
    if config.get("model_type") not in SUPPORTED_ARCHITECTURES:
        raise _unsupported(config, f"is {config.get('model_type')!r}")
    # A llama variant transformers' GGUF loader would read back differently is refused too:
    # it would load without error and silently compute something else.
    rope_type = (_rope(config).get("rope_type") or "default")
    if rope_type != "default":
        raise _unsupported(config, f"uses rope scaling {rope_type!r}")
    if config.get("attention_bias") or config.get("mlp_bias"):
        raise _unsupported(config, "has attention or MLP biases")


def _rope(config: dict[str, Any]) -> dict[str, Any]:
    # transformers 5 nests rope settings in rope_parameters; older configs keep them top level.
    rope = dict(config.get("rope_scaling") or {})
    rope.update(config.get("rope_parameters") or {})
    rope.setdefault("rope_theta", config.get("rope_theta", 10000.0))
    rope.setdefault("rope_type", rope.get("type"))
    return rope


def _tokenizer_refused(why: str) -> InputError:
    return InputError("export_tokenizer_unsupported",
                      f"GGUF export writes byte-level BPE (gpt2-style) tokenizers only; {why}")


def _read_vocab(hf_dir: Path, config: dict[str, Any]) -> dict[str, Any]:
    """tokens, token types, merges, special ids and chat template, in llama.cpp's terms."""
    from tokenizers import Tokenizer

    raw = json.loads((hf_dir / "tokenizer.json").read_text(encoding="utf-8"))
    tok_config = _json_or_empty(hf_dir / "tokenizer_config.json")
    _check_byte_level(raw)
    by_id = {i: t for t, i in raw["model"]["vocab"].items()}
    added = {a["id"]: a for a in raw.get("added_tokens", [])}
    by_id.update({i: a["content"] for i, a in added.items()})
    n_vocab = int(config.get("vocab_size") or len(by_id))
    if max(by_id) >= n_vocab:
        raise _tokenizer_refused(f"it has ids up to {max(by_id)} but the model has only "
                                 f"{n_vocab} embedding rows")
    # Ids the tokenizer never produces get llama.cpp's [PADn] filler, typed unused.
    tokens = [by_id.get(i, f"[PAD{i}]") for i in range(n_vocab)]
    types = [_token_type(i, by_id, added) for i in range(n_vocab)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in raw["model"].get("merges", [])]

    def token_id(key: str) -> int | None:
        value = tok_config.get(key)
        value = value.get("content") if isinstance(value, dict) else value
        found = raw["model"]["vocab"].get(value, next(
            (i for i, a in added.items() if a["content"] == value), None))
        return found if found is not None else _first_id(config.get(f"{key}_id"))

    # Whether the tokenizer itself adds BOS/EOS decides what llama.cpp must add: ask it.
    probe = Tokenizer.from_str(json.dumps(raw)).encode("a").ids
    bos, eos = token_id("bos_token"), token_id("eos_token")
    return {"tokens": tokens, "types": types, "merges": merges, "bos": bos, "eos": eos,
            "pad": token_id("pad_token"), "add_bos": bool(probe) and probe[0] == bos,
            "add_eos": bool(probe) and probe[-1] == eos and len(probe) > 1,
            "chat_template": _chat_template(hf_dir, tok_config)}


def _token_type(i: int, by_id: dict[int, str], added: dict[int, dict[str, Any]]) -> int:
    # Special added tokens (<|im_start|>) are control: matched whole, never split by BPE.
    if i not in by_id:
        return _TOKEN_UNUSED
    if i not in added:
        return _TOKEN_NORMAL
    return _TOKEN_CONTROL if added[i].get("special") else _TOKEN_USER_DEFINED


def _check_byte_level(raw: dict[str, Any]) -> None:
    # Only the plain GPT-2 split (ByteLevel with its own regex) maps to llama.cpp's pre="gpt-2";
    # other pre-tokenizers split text differently and would tokenize differently once exported.
    model, pre = raw.get("model") or {}, raw.get("pre_tokenizer") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise _tokenizer_refused(f"this one is {model.get('type')!r}"
                                 + (" with byte fallback" if model.get("byte_fallback") else ""))
    if pre.get("type") == "Sequence" and len(pre.get("pretokenizers", [])) == 1:
        pre = pre["pretokenizers"][0]
    if (pre.get("type") != "ByteLevel" or not pre.get("use_regex", True)
            or pre.get("add_prefix_space") or raw.get("normalizer")):
        raise _tokenizer_refused("its pre-tokenizer or normalizer is not GPT-2's byte-level one")


def _chat_template(hf_dir: Path, tok_config: dict[str, Any]) -> str | None:
    template = tok_config.get("chat_template")
    if isinstance(template, list):  # named templates: llama.cpp takes the default one
        template = next((t["template"] for t in template if t.get("name") == "default"), None)
    if template is None and (hf_dir / "chat_template.jinja").exists():
        template = (hf_dir / "chat_template.jinja").read_text(encoding="utf-8")
    return template


def _map_tensor_names(hf_dir: Path, config: dict[str, Any]) -> dict[str, tuple[Path, str]]:
    """GGUF name -> (safetensors file, HF name), every HF tensor accounted for."""
    tied = bool(config.get("tie_word_embeddings", False))
    out: dict[str, tuple[Path, str]] = {}
    for file, hf_name in _safetensor_keys(hf_dir):
        if hf_name.endswith("rotary_emb.inv_freq") or (tied and hf_name == "lm_head.weight"):
            continue  # recomputed at load time / the same matrix as token_embd
        gguf_name = _gguf_name(hf_name)
        if gguf_name is None:
            raise _unsupported(config, f"has a tensor llama does not: {hf_name}")
        out[gguf_name] = (file, hf_name)
    needed = {"token_embd.weight", "output_norm.weight"} | (set() if tied else {"output.weight"})
    if needed - out.keys():
        raise _unsupported(config, f"lacks {sorted(needed - out.keys())}")
    return out


def _gguf_name(hf_name: str) -> str | None:
    if hf_name in _TOP_NAMES:
        return _TOP_NAMES[hf_name]
    parts = hf_name.split(".")  # model.layers.N.<module path>.weight
    if len(parts) < 5 or parts[:2] != ["model", "layers"] or parts[-1] != "weight":
        return None
    short = _LAYER_NAMES.get(".".join(parts[3:-1]))
    return f"blk.{parts[2]}.{short}.weight" if short else None


def _safetensor_keys(hf_dir: Path) -> list[tuple[Path, str]]:
    from safetensors import safe_open

    index = hf_dir / "model.safetensors.index.json"
    files = (sorted({hf_dir / f for f in json.loads(index.read_text())["weight_map"].values()})
             if index.exists() else [hf_dir / "model.safetensors"])
    keys = []
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            keys += [(file, k) for k in handle.keys()]  # noqa: SIM118 (not a dict)
    return keys


# --- writing ----------------------------------------------------------------------------------

def _write(path: Path, hf_dir: Path, config: dict[str, Any], vocab: dict[str, Any],
           tensor_names: dict[str, tuple[Path, str]], quant: str, name: str) -> int:
    import gguf

    writer = gguf.GGUFWriter(str(path), arch="llama")
    _add_metadata(writer, config, vocab, quant, name)
    for gguf_name, (data, qtype) in _tensors(config, tensor_names, quant):
        writer.add_tensor(gguf_name, data, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return len(tensor_names)


def _add_metadata(writer: Any, config: dict[str, Any], vocab: dict[str, Any], quant: str,
                  name: str) -> None:
    import gguf

    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    writer.add_type("model")
    writer.add_name(name)
    writer.add_file_type(_FILE_TYPES[quant])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(config.get("num_key_value_heads") or heads)
    writer.add_rope_freq_base(float(_rope(config)["rope_theta"]))
    writer.add_rope_dimension_count(head_dim)
    if head_dim != config["hidden_size"] // heads:  # llama.cpp assumes hidden/heads otherwise
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_vocab_size(len(vocab["tokens"]))

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")  # llama.cpp's name for the GPT-2 split ("gpt2" is unknown)
    writer.add_token_list(vocab["tokens"])
    writer.add_token_types(vocab["types"])
    writer.add_token_merges(vocab["merges"])
    for key, add in (("bos", writer.add_bos_token_id), ("eos", writer.add_eos_token_id),
                     ("pad", writer.add_pad_token_id)):
        if vocab[key] is not None:
            add(vocab[key])
    writer.add_add_bos_token(vocab["add_bos"])
    writer.add_add_eos_token(vocab["add_eos"])
    if vocab["chat_template"]:
        writer.add_chat_template(vocab["chat_template"])


def _tensors(config: dict[str, Any], tensor_names: dict[str, tuple[Path, str]], quant: str):
    """(GGUF name, (data, raw dtype)) per tensor, converted one at a time."""
    from safetensors import safe_open

    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    for gguf_name, (file, hf_name) in tensor_names.items():
        with safe_open(str(file), framework="pt") as handle:
            weights = handle.get_tensor(hf_name).float().numpy()
        if gguf_name.endswith("attn_q.weight"):
            weights = _permute_qk(weights, heads)
        elif gguf_name.endswith("attn_k.weight"):
            weights = _permute_qk(weights, kv_heads)
        yield gguf_name, _encode(weights, quant)


def _permute_qk(weights: np.ndarray, heads: int) -> np.ndarray:
    """Reorder each head's Q/K rows from HF's rotate-half layout (first half of the head's
    dims paired with the second) to llama.cpp's interleaved pairs (0,1), (2,3), ...; without
    it llama.cpp, and transformers' GGUF loader that undoes it, rotate the wrong dimensions."""
    half = weights.shape[0] // heads // 2
    return (weights.reshape(heads, 2, half, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _encode(weights: np.ndarray, quant: str) -> tuple[np.ndarray, Any]:
    """The tensor in the file's precision; norms (1-D) stay f32 as llama.cpp expects."""
    import gguf

    weights = np.ascontiguousarray(weights, dtype=np.float32)
    if quant == "f32" or weights.ndim < 2:
        return weights, None
    block = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_0][0]
    if quant == "q8_0" and weights.shape[-1] % block == 0:
        q8 = gguf.GGMLQuantizationType.Q8_0
        return gguf.quants.quantize(weights, q8), q8
    return weights.astype(np.float16), None  # f16, or q8_0 rows that do not split into blocks


def _first_id(value: Any) -> int | None:
    return value[0] if isinstance(value, list) and value else value


def _json_or_empty(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
