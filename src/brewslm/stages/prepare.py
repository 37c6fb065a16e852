"""Stage 06, prepare: chat template, tokens, loss mask, leak-free splits, and the manifest.

    brewslm prepare -p NAME [--eval-fraction F] [--seed N] [--max-tokens N]
                    [--truncation drop|truncate] [--stratify-by FIELD] [--json]

Two passes over the dataset version. The first groups near-duplicates (so a cluster stays on
one side of the split) and assigns splits, seeded and stratified by a label when asked. The
second renders each row with the base model's chat template (or the project's override),
tokenizes it, masks every non-assistant token from the loss, and writes train/eval Parquet;
the ledger records each row's split, truncation or drop reason. The manifest (JSON, hashed
byte for byte) names the dataset version, row ids per split, the template and tokenizer
hashes, the policies and token-length statistics; training and everything after cite it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from brewslm.clean import row_text
from brewslm.errors import InputError
from brewslm.prepare import (
    assign_splits,
    encode_row,
    histogram,
    length_stats,
    near_duplicate_groups,
    render_terminal,
    template_hash,
    tokenizer_hash,
    write_histogram_html,
    write_histogram_png,
)
from brewslm.project import ProjectInfo
from brewslm.stages.base import StageContext
from brewslm.stages.mapping import read_dataset

DEFAULTS: dict[str, Any] = {"eval_fraction": 0.1, "seed": 0, "max_tokens": 512,
                            "truncation": "drop", "stratify_by": None, "chat_template": None,
                            "near_dup_threshold": 0.7}
SPLITS = ("train", "eval")
EVAL_P95_RATIO = 1.3
BATCH = 5_000
TOKENS = pa.list_(pa.int32())
SCHEMA = pa.schema([("row_id", pa.string()), ("input_ids", TOKENS), ("labels", TOKENS),
                    ("n_tokens", pa.int32()), ("n_trainable", pa.int32()),
                    ("rejected_input_ids", TOKENS), ("rejected_labels", TOKENS)])


def load_tokenizer(project: ProjectInfo):
    """The project's base model tokenizer (builtin:tiny is built on first use)."""
    from transformers import AutoTokenizer

    from brewslm.basemodels.reference import resolve_base_model

    if not project.base_model:
        raise InputError("tokenizer_unavailable", f"project {project.name!r} has no base model: "
                         "set one with --base-model at create time")
    path = resolve_base_model(project.base_model).path
    try:
        return AutoTokenizer.from_pretrained(str(path))
    except Exception as exc:  # noqa: BLE001 — any loader failure means no usable tokenizer
        raise InputError("tokenizer_unavailable", f"cannot load the tokenizer of "
                         f"{project.base_model}: {exc}") from None


class PrepareStage:
    name, number, version = "prepare", 6, "1"
    inputs = ("dataset",)
    outputs = ("manifest",)

    def cache_key(self, ctx: StageContext) -> dict[str, Any]:
        # Reuse needs the same effective policy (flags and project settings) and the same
        # tokenizer bytes, not only the same flags: so both are resolved here, before reuse.
        given = {k: v for k, v in ctx.params.items() if v is not None}
        policy = {**DEFAULTS, **ctx.project.settings.get("prepare", {}), **given}
        unknown = sorted(set(policy) - set(DEFAULTS))
        if unknown:
            raise InputError("project_setting_invalid", f"unknown prepare settings {unknown}; "
                             f"known: {sorted(DEFAULTS)}")
        _check_policy(policy)
        tokenizer = load_tokenizer(ctx.project)
        ctx.scratch.update(policy=policy, tokenizer=tokenizer)
        return {"policy": policy, "tokenizer": tokenizer_hash(tokenizer),
                "template": template_hash(tokenizer, policy["chat_template"])}

    def validate(self, ctx: StageContext) -> None:
        pass  # cache_key has resolved and checked the policy and the tokenizer

    def run(self, ctx: StageContext) -> dict[str, Any]:
        policy, tokenizer = ctx.scratch["policy"], ctx.scratch["tokenizer"]
        dataset = ctx.inputs["dataset"]
        splits = self._assign(dataset.path, policy)
        builder = ctx.new_artifact("manifest")
        lengths = self._encode(ctx, dataset.path, splits, builder.dir)
        hist = histogram(lengths, bins=20)
        write_histogram_png(hist, builder.dir / "token_lengths.png")
        write_histogram_html(hist, builder.dir / "token_lengths.html")
        manifest = self._manifest(ctx, dataset.id, policy, tokenizer, lengths)
        text = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        (builder.dir / "manifest.json").write_text(text, encoding="utf-8")
        manifest_hash = hashlib.sha256(text.encode("utf-8")).hexdigest()
        art = ctx.publish("manifest", builder, {"manifest_hash": manifest_hash,
                                                "dataset_id": dataset.id})
        self._warn_if_eval_longer(ctx, manifest)
        ctx.emit("manifest_created", f"manifest {manifest_hash[:12]}: "
                 f"{manifest['splits']['train']['rows']} train / "
                 f"{manifest['splits']['eval']['rows']} eval rows", manifest_hash=manifest_hash)
        return {"manifest_hash": manifest_hash, "manifest_id": art.id,
                "splits": {s: manifest["splits"][s]["rows"] for s in SPLITS},
                "token_lengths": {s: manifest["splits"][s]["tokens"] for s in SPLITS},
                "histogram": render_terminal(hist),
                "histogram_files": [str(art.path / "token_lengths.png"),
                                    str(art.path / "token_lengths.html")]}

    def check_contract(self, ctx: StageContext, result: dict[str, Any]) -> None:
        pass  # in = out + dropped is the runner's ledger check

    def _assign(self, dataset_dir: Path, policy: dict[str, Any]) -> dict[str, str]:
        groups = near_duplicate_groups(
            ((rid, row_text(row)) for rid, row in read_dataset(dataset_dir)),
            threshold=policy["near_dup_threshold"], seed=policy["seed"])
        field = policy["stratify_by"]
        items = ((rid, groups.get(rid, rid),
                  (row.get("meta") or {}).get(field) if field else None)
                 for rid, row in read_dataset(dataset_dir))
        return assign_splits(items, eval_fraction=policy["eval_fraction"], seed=policy["seed"],
                             stratify=bool(field))

    def _encode(self, ctx: StageContext, dataset_dir: Path, splits: dict[str, str],
                folder: Path) -> dict[str, list[int]]:
        policy, tokenizer, ledger = ctx.scratch["policy"], ctx.scratch["tokenizer"], ctx.ledger
        lengths: dict[str, list[int]] = {s: [] for s in SPLITS}
        ctx.scratch["row_ids"] = {s: [] for s in SPLITS}
        writers = {s: SplitWriter(folder / f"{s}.parquet") for s in SPLITS}
        for n, (row_id, row) in enumerate(read_dataset(dataset_dir), start=1):
            ledger.count_in()
            split = splits[row_id]
            encoded = encode_row(row, tokenizer, chat_template=policy["chat_template"],
                                 max_tokens=policy["max_tokens"], policy=policy["truncation"])
            if isinstance(encoded, tuple):
                ledger.dropped(row_id, encoded[1], split=split)
                continue
            if encoded.truncated_tokens:
                ledger.changed(row_id, "truncated", split=split,
                               truncated_tokens=encoded.truncated_tokens)
            else:
                ledger.kept(row_id, split=split)
            writers[split].add(row_id, encoded)
            lengths[split].append(encoded.n_tokens)
            ctx.scratch["row_ids"][split].append(row_id)
            if n % 10_000 == 0:
                ctx.progress(n)
        for writer in writers.values():
            writer.close()
        return lengths

    def _manifest(self, ctx: StageContext, dataset_id: str, policy: dict[str, Any], tokenizer,
                  lengths: dict[str, list[int]]) -> dict[str, Any]:
        row_ids = ctx.scratch["row_ids"]
        splits = {s: {"rows": len(row_ids[s]), "row_ids": row_ids[s],
                      "tokens": length_stats(lengths[s]), "file": f"{s}.parquet"}
                  for s in SPLITS}
        return {"format": "brewslm.manifest/1", "dataset_id": dataset_id,
                "base_model": ctx.project.base_model,
                "tokenizer_hash": tokenizer_hash(tokenizer),
                "template_hash": template_hash(tokenizer, policy["chat_template"]),
                "policies": policy, "splits": splits,
                "dropped": ctx.ledger.reasons()}

    def _warn_if_eval_longer(self, ctx: StageContext, manifest: dict[str, Any]) -> None:
        train = manifest["splits"]["train"]["tokens"].get("p95") or 0
        evals = manifest["splits"]["eval"]["tokens"].get("p95") or 0
        if train and evals > EVAL_P95_RATIO * train:
            ctx.emit("eval_longer_than_train", f"eval p95 {evals} tokens > 1.3 x train p95 "
                     f"{train}", train_p95=train, eval_p95=evals)


class SplitWriter:
    """Tokenized rows of one split, written to Parquet in batches."""

    def __init__(self, path: Path) -> None:
        self.writer = pq.ParquetWriter(path, SCHEMA, compression="zstd")
        self.cols: dict[str, list[Any]] = {n: [] for n in SCHEMA.names}

    def add(self, row_id: str, enc) -> None:
        rejected = getattr(enc, "rejected", None)
        values = (row_id, enc.input_ids, enc.labels, enc.n_tokens, enc.n_trainable,
                  rejected.input_ids if rejected else None, rejected.labels if rejected else None)
        for name, value in zip(SCHEMA.names, values, strict=True):
            self.cols[name].append(value)
        if len(self.cols["row_id"]) >= BATCH:
            self._flush()

    def close(self) -> None:
        self._flush()
        self.writer.close()

    def _flush(self) -> None:
        if self.cols["row_id"]:
            self.writer.write_batch(pa.RecordBatch.from_pydict(self.cols, schema=SCHEMA))
            self.cols = {n: [] for n in SCHEMA.names}


def _check_policy(policy: dict[str, Any]) -> None:
    checks = [
        ("eval_fraction", isinstance(policy["eval_fraction"], int | float)
         and 0 <= policy["eval_fraction"] < 1, "a number in [0, 1)"),
        ("seed", isinstance(policy["seed"], int), "an integer"),
        ("max_tokens", isinstance(policy["max_tokens"], int) and policy["max_tokens"] > 0,
         "a positive integer"),
        ("truncation", policy["truncation"] in ("drop", "truncate"), "drop or truncate"),
    ]
    for key, ok, what in checks:
        if not ok:
            raise InputError("stage_params_invalid", f"prepare: {key} must be {what}, got "
                             f"{policy[key]!r}", field=key)


def read_split(manifest_dir: Path, split: str):
    """Yield tokenized rows (dicts) of one split of a manifest artifact."""
    for batch in pq.ParquetFile(manifest_dir / f"{split}.parquet").iter_batches(batch_size=BATCH):
        yield from batch.to_pylist()


def token_lengths(manifest_dir: Path) -> dict[str, list[int]]:
    """Each split's per-row token counts (the n_tokens column of its Parquet file)."""
    return {split: pq.read_table(manifest_dir / f"{split}.parquet", columns=["n_tokens"])
            .column("n_tokens").to_pylist() for split in SPLITS}
