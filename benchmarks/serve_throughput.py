"""Benchmark: the OpenAI-compatible endpoint (`brewslm serve`) against a plain transformers
generate loop on the same model, and the GGUF endpoint against llama-cpp-python called directly.

    .venv/bin/python benchmarks/serve_throughput.py                 # 32 prompts x 3 rounds
    .venv/bin/python benchmarks/serve_throughput.py --prompts 8 --rounds 1    # a smoke run

Model: builtin:tiny (pretrained, 500 steps; cached in $TMPDIR/brewslm-bench-models unless
BREWSLM_MODELS_DIR says otherwise) served as an `hf` folder.
Prompts: the first N user messages of the bundled ticket sample, rendered by the model's chat
template. Every request is greedy with max_tokens = --max-tokens, one at a time (a single
client: what latency a user sees, not batch throughput).

Arms, alternating within each round so machine drift hits both:
- endpoint: create_serving_app over the model with telemetry recorded into the store (as
  `brewslm serve` does), run by uvicorn on 127.0.0.1, called with the official openai client
  (/v1/chat/completions; non-stream for latency and tokens/s, stream for time to first token).
- bare: AutoModelForCausalLM.generate(do_sample=False, max_new_tokens, the same stop tokens)
  on the same rendered prompt in a loop, the script a user would otherwise write.
- gguf (only when llama-cpp-python is installed): the endpoint over a q8_0 GGUF export against
  llama_cpp.Llama.create_completion on the same file.

Figures: completion tokens / wall time of the requests (tokens/s) per arm and their ratio
(goal >= 0.95), latency p50 / p95 per request and the ratio bare p50 / endpoint p50, and the
endpoint's time to first token. Both arms must produce the same completion tokens
(`same_tokens`). Torch threads are set by --threads (default 1) for both arms in one process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    args = parse_args()
    home = tempfile.mkdtemp(prefix="brewslm-bench-serve-")
    os.environ["BREWSLM_HOME"] = home
    try:
        run(args)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def run(args: argparse.Namespace) -> None:
    # builtin:tiny is pretrained once (~3 min) and kept between benchmark runs.
    os.environ.setdefault("BREWSLM_MODELS_DIR", str(Path(tempfile.gettempdir())
                                                    / "brewslm-bench-models"))
    import torch

    torch.set_num_threads(args.threads)
    from brewslm import project
    from brewslm.basemodels.reference import resolve_base_model

    base = Path(resolve_base_model("builtin:tiny").path)
    info = project.create("bench-serve", base_model="builtin:tiny")
    prompts = sample_prompts(args.prompts)
    rounds = []
    for _ in range(args.rounds):
        rounds.append({"endpoint": endpoint_arm(info, base, prompts, args.max_tokens,
                                                not args.no_telemetry),
                       "bare": bare_arm(base, prompts, args.max_tokens)})
    print(json.dumps(summarise(rounds, args, gguf_arm(base, prompts, args)), indent=2))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-telemetry", action="store_true",
                        help="diagnostic: the endpoint records nothing into the store")
    return parser.parse_args()


def sample_prompts(n: int) -> list[str]:
    lines = (ROOT / "src" / "brewslm" / "samples" / "tickets.jsonl").read_text().splitlines()
    out = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        text = f"{row.get('instruction', '')}\n\n{row.get('input', '')}".strip()
        if row.get("input"):
            out.append(text[:600])
        if len(out) == n:
            break
    return out


def endpoint_arm(info: Any, base: Path, prompts: list[str], max_tokens: int,
                 telemetry_on: bool = True) -> dict[str, Any]:
    from openai import OpenAI

    from brewslm.serving import telemetry
    from brewslm.serving.backends import ActiveModel
    from brewslm.serving.openai_app import create_serving_app
    from brewslm.serving.server import background_server

    active = ActiveModel("dep-bench", 1, "bench", base, "hf")
    record = telemetry.recorder(info) if telemetry_on else (lambda _record: None)
    app = create_serving_app(lambda: active, record)
    with background_server(app) as url:
        client = OpenAI(base_url=f"{url}/v1", api_key="x")
        ask(client, prompts[0], max_tokens)  # loads the model: not timed
        latencies, tokens, started = [], [], time.perf_counter()
        for prompt in prompts:
            t0 = time.perf_counter()
            reply = ask(client, prompt, max_tokens)
            latencies.append(time.perf_counter() - t0)
            tokens.append(reply.usage.completion_tokens)
        wall = time.perf_counter() - started
        ttft = [first_token_s(client, p, max_tokens) for p in prompts[:8]]
    return {"tokens": tokens, "wall_s": wall, "latencies_s": latencies, "ttft_s": ttft}


def ask(client: Any, prompt: str, max_tokens: int) -> Any:
    return client.chat.completions.create(model="bench", max_tokens=max_tokens, temperature=0,
                                          messages=[{"role": "user", "content": prompt}])


def first_token_s(client: Any, prompt: str, max_tokens: int) -> float:
    t0 = time.perf_counter()
    for chunk in client.chat.completions.create(
            model="bench", max_tokens=max_tokens, temperature=0, stream=True,
            messages=[{"role": "user", "content": prompt}]):
        if chunk.choices and chunk.choices[0].delta.content:
            return time.perf_counter() - t0
    return time.perf_counter() - t0


def bare_arm(base: Path, prompts: list[str], max_tokens: int) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval()
    stops = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.eos_token_id]
    latencies, tokens, started = [], [], time.perf_counter()
    for prompt in prompts:
        t0 = time.perf_counter()
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                             tokenize=False, add_generation_prompt=True)
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=max_tokens, do_sample=False,
                                 eos_token_id=stops, pad_token_id=tokenizer.pad_token_id)
        new = out[0, ids["input_ids"].shape[1]:].tolist()
        tokens.append(len([t for t in new if t not in stops]))
        latencies.append(time.perf_counter() - t0)
    return {"tokens": tokens, "wall_s": time.perf_counter() - started,
            "latencies_s": latencies}


def gguf_arm(base: Path, prompts: list[str], args: argparse.Namespace) -> dict[str, Any]:
    from brewslm.export.gguf import llama_cpp_available

    if not llama_cpp_available():
        return {"skipped": "llama-cpp-python is not installed (pip install 'brewslm[llama]', "
                "a ~9 min source build here)"}
    from llama_cpp import Llama

    from brewslm.export.gguf import write_gguf
    from brewslm.serving.backends import ActiveModel
    from brewslm.serving.openai_app import create_serving_app
    from brewslm.serving.server import background_server

    folder = Path(tempfile.mkdtemp(prefix="brewslm-bench-gguf-"))
    write_gguf(base, folder / "bench.gguf", quant="q8_0")
    active = ActiveModel("dep-gguf", 1, "bench", folder, "gguf", gguf_file="bench.gguf")
    with background_server(create_serving_app(lambda: active, lambda _r: None)) as url:
        from openai import OpenAI

        client = OpenAI(base_url=f"{url}/v1", api_key="x")
        ask(client, prompts[0], args.max_tokens)
        t0, served = time.perf_counter(), 0
        for p in prompts:
            served += ask(client, p, args.max_tokens).usage.completion_tokens
        endpoint_tps = served / (time.perf_counter() - t0)
    llm = Llama(model_path=str(folder / "bench.gguf"), n_ctx=512, verbose=False,
                n_threads=args.threads)
    t0, direct = time.perf_counter(), 0
    for p in prompts:
        out = llm.create_chat_completion(messages=[{"role": "user", "content": p}],
                                         max_tokens=args.max_tokens, temperature=0)
        direct += out["usage"]["completion_tokens"]
    direct_tps = direct / (time.perf_counter() - t0)
    llm.close()
    return {"endpoint_tokens_per_s": round(endpoint_tps, 1),
            "llama_cpp_tokens_per_s": round(direct_tps, 1),
            "ratio": round(endpoint_tps / direct_tps, 3)}


def summarise(rounds: list[dict[str, Any]], args: argparse.Namespace,
              gguf: dict[str, Any]) -> dict[str, Any]:
    def tps(arm: dict[str, Any]) -> float:
        return sum(arm["tokens"]) / arm["wall_s"]

    def pct(values: list[float], q: float) -> float:
        return round(statistics.quantiles(values, n=100)[q - 1], 4) if len(values) > 1 \
            else round(values[0], 4)

    endpoint = [tps(r["endpoint"]) for r in rounds]
    bare = [tps(r["bare"]) for r in rounds]
    lat_e = [x for r in rounds for x in r["endpoint"]["latencies_s"]]
    lat_b = [x for r in rounds for x in r["bare"]["latencies_s"]]
    return {"benchmark": "serve_throughput", "prompts": args.prompts, "rounds": args.rounds,
            "max_tokens": args.max_tokens, "threads": args.threads,
            "cpu": _cpu(), "same_tokens": all(r["endpoint"]["tokens"] == r["bare"]["tokens"]
                                              for r in rounds),
            "completion_tokens_per_round": sum(rounds[0]["bare"]["tokens"]),
            "endpoint_tokens_per_s": [round(x, 1) for x in endpoint],
            "bare_tokens_per_s": [round(x, 1) for x in bare],
            "tokens_per_s_ratio": round(statistics.median(endpoint) / statistics.median(bare),
                                        3),
            "latency_p50_s": {"endpoint": pct(lat_e, 50), "bare": pct(lat_b, 50)},
            "latency_p95_s": {"endpoint": pct(lat_e, 95), "bare": pct(lat_b, 95)},
            "latency_ratio_bare_over_endpoint": round(pct(lat_b, 50) / pct(lat_e, 50), 3),
            "endpoint_ttft_p50_s": pct([x for r in rounds for x in r["endpoint"]["ttft_s"]],
                                       50),
            "gguf": gguf}


def _cpu() -> str:
    sys.path.insert(0, str(ROOT / "src"))
    from brewslm.train.hardware import cpu_model

    return cpu_model()


if __name__ == "__main__":
    main()
