"""Model backends for the serving app: load a deployed export and stream text from it.

    from brewslm.serving.backends import ActiveModel, load_backend
    backend = load_backend(ActiveModel("dep-1", 1, "tickets", Path("exports/merged"), "hf"))
    prompt = backend.render_chat([{"role": "user", "content": "hi"}])
    for piece in backend.stream(prompt, max_tokens=64, temperature=0.0, top_p=1.0,
                                stop=["\\n\\n"], seed=None):
        print(piece, end="")
    backend.close()

TransformersBackend serves Hugging Face folders (hf, safetensors, the merged folder of a vllm
bundle) and LoRA adapters on their base; LlamaCppBackend serves GGUF files when
llama-cpp-python is installed (`pip install 'brewslm[llama]'`). Both stop at end of sequence
(or end of turn) and at any stop string, never emitting the stop string itself, and set
`finish_reason` ("stop" or "length") once a stream ends.
"""

from __future__ import annotations

import gc
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from brewslm.errors import InputError

HF_FORMATS = ("hf", "safetensors", "vllm")


@dataclass(frozen=True)
class ActiveModel:
    """The deployment a server should be serving now."""

    deployment_id: str
    version: int
    model_name: str  # the id clients see in /v1/models and pass as `model`
    export_dir: Path
    format: str  # "hf" | "safetensors" | "vllm" | "adapter" | "gguf"
    base_path: Path | None = None  # "adapter": the base model folder
    gguf_file: str | None = None  # "gguf": the file name inside export_dir

    @property
    def key(self) -> tuple[str, int]:
        return (self.deployment_id, self.version)


class Backend(Protocol):
    def render_chat(self, messages: list[dict]) -> str: ...

    def count_tokens(self, text: str) -> int: ...

    def stream(self, prompt: str, *, max_tokens: int, temperature: float, top_p: float,
               stop: list[str], seed: int | None) -> Iterator[str]: ...

    def close(self) -> None: ...


class PromptRejected(ValueError):
    """A prompt the model cannot take (the client's fault, not the backend's): empty once
    tokenized, or leaving no room in the context for one new token. `code` names which."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def load_backend(active: ActiveModel) -> Backend:
    """The backend for an export's format; raises if its files or runtime are missing."""
    if active.format == "gguf":
        return LlamaCppBackend.load(active)
    if active.format == "adapter":
        if active.base_path is None:
            raise ValueError("an adapter deployment needs base_path (its base model folder)")
        return TransformersBackend.load(active.base_path, adapter=active.export_dir)
    if active.format in HF_FORMATS:
        return TransformersBackend.load(model_folder(active.export_dir))
    raise ValueError(f"cannot serve export format {active.format!r}")


def model_folder(export_dir: Path) -> Path:
    """The folder holding config.json: a vllm bundle keeps its merged model in model/."""
    export_dir = Path(export_dir)
    nested = export_dir / "model"
    if not (export_dir / "config.json").exists() and (nested / "config.json").exists():
        return nested
    return export_dir


class StopFilter:
    """Cuts streamed text at the first stop string, holding back any tail that could still
    become one, so a client never sees part of a stop string."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.text = ""
        self.sent = 0
        self.hit = False

    def feed(self, piece: str) -> str:
        """Add generated text; return what is now safe to send (maybe "")."""
        self.text += piece
        cuts = [i for i in (self.text.find(s, self.sent) for s in self.stops) if i >= 0]
        if cuts:
            self.hit = True
            return self._send_to(min(cuts))
        return self._send_to(len(self.text) - self._held())

    def flush(self) -> str:
        """At the end of generation: the held tail, unless a stop string was hit."""
        return "" if self.hit else self._send_to(len(self.text))

    def _held(self) -> int:
        # The longest suffix of the text that is a proper prefix of some stop string.
        longest = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(self.text)), longest, -1):
                if self.text.endswith(stop[:size]):
                    longest = size
                    break
        return longest

    def _send_to(self, end: int) -> str:
        out = self.text[self.sent:end] if end > self.sent else ""
        self.sent = max(self.sent, end)
        return out


class TransformersBackend:
    """A causal LM with its tokenizer; a token loop with a KV cache, one request at a time."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        from brewslm.evaluate.generate import stop_ids

        self.model = model
        self.tokenizer = tokenizer
        self.stop_ids = set(stop_ids(tokenizer))
        self.context = int(getattr(model.config, "max_position_embeddings", 0) or 0)
        self.cache_arg = _cache_argument(model)
        self.finish_reason: str | None = None

    @classmethod
    def load(cls, path: Path, *, adapter: Path | None = None) -> TransformersBackend:
        import torch

        from brewslm.evaluate.generate import load_model

        model, tokenizer = load_model(path, adapter=adapter)
        if torch.cuda.is_available():
            model = model.to("cuda")
        return cls(model, tokenizer)

    def render_chat(self, messages: list[dict]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                  add_generation_prompt=True)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_prompt(self, prompt: str) -> list[int]:
        # Chat templates that write the BOS token themselves must not get a second one.
        bos = self.tokenizer.bos_token
        add = not (bos and prompt.startswith(bos))
        return list(self.tokenizer(prompt, add_special_tokens=add)["input_ids"])

    def stream(self, prompt: str, *, max_tokens: int, temperature: float, top_p: float,
               stop: list[str], seed: int | None) -> Iterator[str]:
        import torch

        ids = self.encode_prompt(prompt)
        budget = self._budget(len(ids), max_tokens)
        pick = _picker(temperature, top_p, seed)
        stops, new_ids, sent_text = StopFilter(stop), [], ""
        self.finish_reason = "length"
        cache, step_input = None, torch.tensor([ids], device=self.model.device)
        with torch.inference_mode():
            for _ in range(budget):
                out = self.model(input_ids=step_input, use_cache=True,
                                 **{self.cache_arg: cache})
                cache, token = out[self.cache_arg], pick(out.logits[0, -1])
                if token in self.stop_ids:
                    self.finish_reason = "stop"
                    break
                new_ids.append(token)
                text = self._decode(new_ids)
                # Hold back a half-decoded character (an incomplete UTF-8 byte sequence).
                if not text.endswith("\ufffd") and text.startswith(sent_text):
                    piece, sent_text = text[len(sent_text):], text
                    if out_text := stops.feed(piece):
                        yield out_text
                    if stops.hit:
                        self.finish_reason = "stop"
                        return
                step_input = torch.tensor([[token]], device=self.model.device)
        if tail := self._tail(new_ids, sent_text, stops):
            yield tail

    def _tail(self, new_ids: list[int], sent_text: str, stops: StopFilter) -> str:
        text = self._decode(new_ids)
        rest = stops.feed(text[len(sent_text):]) if text.startswith(sent_text) else ""
        if stops.hit:
            self.finish_reason = "stop"
        return rest + stops.flush()

    def _budget(self, prompt_len: int, max_tokens: int) -> int:
        if not prompt_len:
            raise PromptRejected("empty_prompt", "the prompt has no tokens")
        if not self.context:
            return max_tokens
        if prompt_len >= self.context:
            raise PromptRejected("context_length_exceeded", f"the prompt is {prompt_len} "
                                 f"tokens; the model's context is {self.context}")
        return min(max_tokens, self.context - prompt_len)

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True,
                                     clean_up_tokenization_spaces=False)

    def close(self) -> None:
        import torch

        self.model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _cache_argument(model: Any) -> str:
    """The KV cache's name in forward() and its output: "cache" in newer transformers,
    "past_key_values" before (still accepted there, with a deprecation warning)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    params = inspect.signature(base.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _picker(temperature: float, top_p: float, seed: int | None) -> Any:
    """next-token logits -> token id: argmax at temperature 0, else nucleus sampling drawn
    from a generator of its own (seeded when a seed is given)."""
    import torch

    if temperature <= 0:
        return lambda logits: int(torch.argmax(logits))
    generator = torch.Generator(device="cpu")
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)

    def pick(logits: Any) -> int:
        probs = torch.softmax(logits.float().cpu() / temperature, dim=-1)
        if top_p < 1.0:
            ordered, order = torch.sort(probs, descending=True)
            # Keep the smallest set of tokens whose mass reaches top_p (always the first).
            keep = torch.cumsum(ordered, dim=-1) - ordered < top_p
            probs = torch.zeros_like(probs).scatter(0, order[keep], ordered[keep])
        return int(torch.multinomial(probs, 1, generator=generator))

    return pick


class LlamaCppBackend:
    """A GGUF file run by llama.cpp (llama-cpp-python); the chat template comes from the
    file's own metadata."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm
        self.finish_reason: str | None = None

    @classmethod
    def load(cls, active: ActiveModel) -> LlamaCppBackend:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise InputError("serve_backend_unavailable",
                             "serving GGUF needs llama-cpp-python: pip install 'brewslm[llama]'",
                             format="gguf") from exc
        path = gguf_path(Path(active.export_dir), active.gguf_file)
        return cls(Llama(model_path=str(path), n_ctx=0, verbose=False))

    def render_chat(self, messages: list[dict]) -> str:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ValueError("the GGUF file has no tokenizer.chat_template")
        formatter = Jinja2ChatFormatter(template, eos_token=self._token_text(
            self.llm.token_eos()), bos_token=self._token_text(self.llm.token_bos()),
            add_generation_prompt=True)
        return formatter(messages=messages).prompt

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self.llm.detokenize([token], special=True).decode("utf-8", errors="replace")

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def stream(self, prompt: str, *, max_tokens: int, temperature: float, top_p: float,
               stop: list[str], seed: int | None) -> Iterator[str]:
        self.finish_reason = "length"
        bos = self._token_text(self.llm.token_bos())
        tokens = self.llm.tokenize(prompt.encode("utf-8"),
                                   add_bos=not (bos and prompt.startswith(bos)), special=True)
        chunks = self.llm.create_completion(tokens, max_tokens=max_tokens,
                                            temperature=temperature, top_p=top_p,
                                            stop=stop or None, seed=seed, stream=True)
        for chunk in chunks:
            choice = chunk["choices"][0]
            if choice.get("text"):
                yield choice["text"]
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]

    def close(self) -> None:
        close = getattr(self.llm, "close", None)
        if close is not None:
            close()
        self.llm = None


def gguf_path(export_dir: Path, name: str | None) -> Path:
    """The named file, or the folder's only .gguf file."""
    if name:
        return export_dir / name
    found = sorted(export_dir.glob("*.gguf"))
    if len(found) != 1:
        raise ValueError(f"expected one .gguf file in {export_dir}, found {len(found)}")
    return found[0]
