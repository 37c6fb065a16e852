"""Stage 10, export: the evaluated candidate written in a format other tools load, and proven
to reproduce that candidate (parity) before the export is published.

    from brewslm.stages.export import export
    result = export(project, fmt="gguf", quant="q8_0")      # a StageResult
    result.result["artifacts"], result.result["parity"]

Formats (FORMATS): `adapter` (the LoRA adapter, peft safetensors), `safetensors` (the merged
model as one unsharded model.safetensors), `hf` (the merged model as a Hugging Face folder,
sharded above 2 GB), `gguf` (llama.cpp's format, f32 / f16 / q8_0, tokenizer and chat template
embedded; llama architecture only) and `vllm` (the merged folder under model/, the adapter under
adapter/ for LoRA serving, and serve.sh with the `vllm serve` command). Every export carries the
tokenizer, the chat template, a generation config, a model card (README.md) naming the manifest
hash and the eval results, and SHA256SUMS.

validate() refuses what cannot or must not be exported before any compute: an unknown format
or quant, an adapter export of a full fine-tune, a GGUF of an architecture the writer does not
support, a simulated model, and — unless --force, which is recorded — a candidate that evaluate
did not find promotable (exit 3). run() writes the export, loads it back with an independent
reader (PARITY_READERS) and compares next-token logits, tokenization and chat template with the
candidate as evaluate loaded it; a mismatch fails the run (export_parity_failed) and nothing is
published.
"""

from __future__ import annotations

import gc
import json
import shlex
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import select

from brewslm import artifacts
from brewslm.errors import BlockedError, BrewError, InputError
from brewslm.project import ProjectInfo
from brewslm.stages.base import StageContext
from brewslm.stages.runner import StageResult, run_stage
from brewslm.store import session
from brewslm.store.models import StageRun

FORMATS = ("adapter", "safetensors", "hf", "gguf", "vllm")
QUANTS = {"adapter": ("f32",), "safetensors": ("f32", "f16", "bf16"),
          "hf": ("f32", "f16", "bf16"), "vllm": ("f32", "f16", "bf16"),
          "gguf": ("f32", "f16", "q8_0")}
DEFAULT_QUANT = {"adapter": "f32", "safetensors": "f32", "hf": "f32", "vllm": "f32",
                 "gguf": "f16"}


def export(project: ProjectInfo, *, fmt: str, quant: str | None = None,
           candidate: str | None = None, force: bool = False,
           parent_run_id: str | None = None) -> StageResult:
    """Run stage 10 on the latest trained model (or `candidate`: a train run or model id)."""
    from brewslm.stages.evaluate import candidate_model

    model_id = candidate_model(project, candidate)
    evaluation = evaluation_of(project, model_id)
    inputs = {"model": model_id}
    if evaluation and evaluation.get("report_id"):
        inputs["eval_report"] = evaluation["report_id"]
    params = {"format": fmt, "quant": quant or DEFAULT_QUANT.get(fmt), "force": force,
              "evaluation_run": evaluation["run_id"] if evaluation else None}
    return run_stage(ExportStage(), project, params=params, inputs=inputs,
                     parent_run_id=parent_run_id)


def evaluation_of(project: ProjectInfo, model_id: str) -> dict[str, Any] | None:
    """The latest evaluate run of this candidate (promotable or not), with its pack settings."""
    with session() as s:
        runs = s.scalars(select(StageRun).where(
            StageRun.project_id == project.id, StageRun.stage == "evaluate",
            StageRun.status.in_(("succeeded", "blocked", "reused")))
            .order_by(StageRun.started_at.desc())).all()
        for run in runs:
            result = run.result or {}
            if result.get("candidate_id") == model_id and "promotable" in result:
                pack = (run.parameters or {}).get("pack") or {}
                # A reused run points at the run that decided: the same evidence, one id.
                return {"run_id": run.reused_from or run.run_id,
                        "promotable": bool(result["promotable"]),
                        "gates": result.get("gates") or [],
                        "required_failed": result.get("required_failed") or [],
                        "comparison": result.get("comparison") or {},
                        "rows": result.get("rows"), "pack": (result.get("pack") or {}).get(
                            "name"), "generation": pack.get("generation") or {},
                        "report_id": (run.outputs or {}).get("eval_report")}
    return None


class ExportStage:
    name, number, version = "export", 10, "1"
    inputs = ("model",)
    outputs = ("export",)

    def validate(self, ctx: StageContext) -> None:
        p, model = ctx.params, ctx.inputs["model"]
        if p["format"] not in FORMATS:
            raise InputError("export_format_unknown", f"unknown export format {p['format']!r}; "
                             f"choose one of {', '.join(FORMATS)}", format=p["format"])
        if p["quant"] not in QUANTS[p["format"]]:
            raise InputError("export_quant_unsupported", f"--quant {p['quant']} is not "
                             f"available for {p['format']}; choose one of "
                             f"{', '.join(QUANTS[p['format']])}", format=p["format"],
                             quant=p["quant"])
        if model.kind != "model" or model.meta.get("simulated"):
            raise InputError("export_candidate_invalid", f"artifact {model.id[:16]} is a "
                             f"{model.kind}{' (simulated)' if model.meta.get('simulated') else ''}"
                             ": only a really trained model can be exported", model_id=model.id)
        self._load_facts(ctx)
        lora = (model.path / "adapter_config.json").exists()
        if p["format"] == "adapter" and not lora:
            raise InputError("export_format_unsupported", "this candidate is a full fine-tune: "
                             "it has no adapter to export; use --format hf, safetensors, gguf "
                             "or vllm", format="adapter", model_id=model.id)
        if p["format"] == "gguf":
            self._check_gguf_architecture(ctx)
        self._check_promotable(ctx)

    def run(self, ctx: StageContext) -> dict[str, Any]:
        from brewslm.export import card
        from brewslm.export.hf import load_candidate, write_checksums

        p, facts = ctx.params, ctx.scratch
        builder = ctx.new_artifact("export")
        ctx.progress(0, 3, step="write")
        written = {**self._write(ctx, builder.dir), "root": builder.dir}
        ctx.progress(1, 3, step="parity")
        reference = load_candidate(facts["base"].path, ctx.inputs["model"].path)
        parity = self._parity(ctx, reference, written)
        del reference
        gc.collect()
        self._judge(ctx, parity)
        ctx.progress(2, 3, step="card")
        card.write_generation_config(written["config_dir"], facts["tokenizer"],
                                     facts["evaluation"])
        card.write_card(builder.dir, self._card_facts(ctx, parity, written))
        write_checksums(builder.dir)
        art = ctx.publish("export", builder, {"format": p["format"], "quant": p["quant"],
                                              "candidate_id": ctx.inputs["model"].id,
                                              "parity_passed": True, "forced": p["force"]})
        ctx.progress(3, 3, step="done")
        return self._result(ctx, art, written, parity)

    def check_contract(self, ctx: StageContext, result: dict[str, Any]) -> None:
        folder = ctx.outputs["export"].path
        for name in ("README.md", "SHA256SUMS"):
            if not (folder / name).is_file():
                raise BrewError("contract_violated", f"the export has no {name}")
        if not all(p["passed"] for p in result["parity"]["readers"]):
            raise BrewError("contract_violated", "an export without parity was published")

    # --- validate ------------------------------------------------------------------------

    def _load_facts(self, ctx: StageContext) -> None:
        from transformers import AutoTokenizer

        from brewslm.basemodels.reference import resolve_base_model

        model = ctx.inputs["model"]
        doc = json.loads((model.path / "run_manifest.json").read_text(encoding="utf-8"))
        ctx.scratch.update(run_manifest=doc,
                           base=resolve_base_model(doc["base_model"]["ref"] or "builtin:tiny"),
                           tokenizer=AutoTokenizer.from_pretrained(model.path),
                           evaluation=evaluation_of(ctx.project, model.id))

    def _check_gguf_architecture(self, ctx: StageContext) -> None:
        from brewslm.export.gguf import SUPPORTED_ARCHITECTURES

        model = ctx.inputs["model"]
        folder = ctx.scratch["base"].path if (model.path / "adapter_config.json").exists() \
            else model.path
        arch = json.loads((Path(folder) / "config.json").read_text()).get("model_type")
        if arch not in SUPPORTED_ARCHITECTURES:
            raise InputError("export_architecture_unsupported", f"GGUF export supports "
                             f"{', '.join(SUPPORTED_ARCHITECTURES)}, not {arch!r}; export "
                             "--format hf or safetensors instead", architecture=arch)

    def _check_promotable(self, ctx: StageContext) -> None:
        evaluation, force = ctx.scratch["evaluation"], ctx.params["force"]
        if evaluation is None:
            code, why = "export_not_evaluated", "this candidate was never evaluated"
        elif not evaluation["promotable"]:
            code = "export_not_promotable"
            why = (f"evaluate run {evaluation['run_id']} found it not promotable (failed "
                   f"gates: {', '.join(evaluation['required_failed'])})")
        else:
            return
        if not force:
            raise BlockedError(code, f"{why}: only promotable candidates are exported. Run "
                               "`brewslm evaluate`, or pass --force to export anyway (recorded).",
                               evaluation_run=evaluation and evaluation["run_id"])
        ctx.emit("export_forced", f"--force: exporting although {why}", severity="warning",
                 overridden=code, by=_who(), evaluation_run=evaluation and evaluation["run_id"])

    # --- write -----------------------------------------------------------------------------

    def _write(self, ctx: StageContext, out: Path) -> dict[str, Any]:
        """Write the format into `out`; returns where the weights and configs are."""
        from brewslm.export.hf import export_adapter, export_merged

        fmt, quant = ctx.params["format"], ctx.params["quant"]
        base, model = ctx.scratch["base"].path, ctx.inputs["model"].path
        if fmt == "adapter":
            export_adapter(model, out, checksums=False)
            return {"files": [out / "adapter_model.safetensors"], "config_dir": out}
        if fmt in ("hf", "safetensors"):
            shard = "2GB" if fmt == "hf" else "1000GB"  # safetensors: one file, never sharded
            export_merged(base, model, out, dtype=quant, max_shard_size=shard, checksums=False)
            return {"files": sorted(out.glob("*.safetensors")), "config_dir": out}
        if fmt == "vllm":
            return self._write_vllm(ctx, out)
        return self._write_gguf(ctx, out)

    def _write_gguf(self, ctx: StageContext, out: Path) -> dict[str, Any]:
        from brewslm.export.gguf import write_gguf
        from brewslm.export.hf import _copy_tokenizer, export_merged

        quant = ctx.params["quant"]
        target = out / f"{ctx.project.name}-{quant}.gguf"
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            merged = export_merged(ctx.scratch["base"].path, ctx.inputs["model"].path,
                                   Path(tmp) / "merged", checksums=False)
            info = write_gguf(merged, target, quant=quant, name=ctx.project.name)
        # The tokenizer files travel too: a GGUF reader needs none, other tools do.
        _copy_tokenizer(ctx.inputs["model"].path, out)
        return {"files": [target], "config_dir": out, "gguf": info}

    def _write_vllm(self, ctx: StageContext, out: Path) -> dict[str, Any]:
        from brewslm.export.hf import export_adapter, export_merged

        model = ctx.inputs["model"].path
        export_merged(ctx.scratch["base"].path, model, out / "model", dtype=ctx.params["quant"],
                      checksums=False)
        lora = (model / "adapter_config.json").exists()
        if lora:
            export_adapter(model, out / "adapter", checksums=False)
        name = shlex.quote(ctx.project.name)
        script = ["#!/bin/sh", "# Serve this export with vLLM (needs a GPU host with vllm).",
                  'cd "$(dirname "$0")"', f"exec vllm serve ./model --served-model-name {name} "
                  '--generation-config ./model "$@"']
        (out / "serve.sh").write_text("\n".join(script) + "\n", encoding="utf-8")
        (out / "serve.sh").chmod(0o755)
        return {"files": sorted((out / "model").glob("*.safetensors")),
                "config_dir": out / "model", "model_dir": out / "model", "lora": lora}

    # --- parity ----------------------------------------------------------------------------

    def _parity(self, ctx: StageContext, reference: Any,
                written: dict[str, Any]) -> list[dict[str, Any]]:
        from brewslm.export import parity

        fmt, quant = ctx.params["format"], ctx.params["quant"]
        tokenizer, tolerance = ctx.scratch["tokenizer"], self._tolerance(fmt, quant)
        readers = PARITY_READERS[fmt](ctx, written)
        return [parity.check_parity(reference, tokenizer, reader, tolerance=tolerance, name=name)
                for name, reader in readers]

    @staticmethod
    def _tolerance(fmt: str, quant: str) -> float:
        from brewslm.export.parity import TOLERANCE

        if fmt == "gguf":
            from brewslm.export.gguf import PARITY_TOLERANCE

            return PARITY_TOLERANCE[quant]
        return TOLERANCE[quant]

    def _judge(self, ctx: StageContext, parity: list[dict[str, Any]]) -> None:
        for report in parity:
            what = (f"{report['reader']}: max |logit diff| {report['max_abs_diff']:.3g} "
                    f"(tolerance {report['tolerance']}), argmax agreement "
                    f"{report['argmax_agreement']:.0%}, tokenization "
                    f"{'equal' if report['tokenization_equal'] else 'DIFFERENT'}, chat template "
                    f"{'equal' if report['chat_template_equal'] else 'DIFFERENT'}")
            if report["passed"]:
                ctx.emit("export_parity_passed", f"parity passed, {what}", **report)
            else:
                raise BrewError("export_parity_failed", f"the {ctx.params['format']} export "
                                f"does not reproduce the candidate: {what}", parity=parity)

    # --- result ----------------------------------------------------------------------------

    def _card_facts(self, ctx: StageContext, parity: list[dict[str, Any]],
                    written: dict[str, Any]) -> dict[str, Any]:
        doc, p = ctx.scratch["run_manifest"], ctx.params
        return {"project": ctx.project.name, "format": p["format"], "quant": p["quant"],
                "base_model": doc["base_model"]["ref"], "manifest_hash": doc["manifest_hash"],
                "candidate_id": ctx.inputs["model"].id, "training_run": doc["run_id"],
                "evaluation": ctx.scratch["evaluation"], "forced": p["force"], "parity": parity,
                "usage": USAGE[p["format"]](ctx, written)}

    def _result(self, ctx: StageContext, art: artifacts.ArtifactInfo, written: dict[str, Any],
                parity: list[dict[str, Any]]) -> dict[str, Any]:
        evaluation = ctx.scratch["evaluation"]
        files = [_file_entry(ctx.params["format"], art.path / path.relative_to(written["root"]))
                 for path in written["files"]]
        return {"export_id": art.id, "format": ctx.params["format"],
                "quant": ctx.params["quant"], "path": str(art.path), "artifacts": files,
                "parity": {"passed": all(p["passed"] for p in parity),
                           "max_abs_diff": max(p["max_abs_diff"] for p in parity),
                           "readers": parity},
                "candidate_id": ctx.inputs["model"].id,
                "evaluation_run": evaluation["run_id"] if evaluation else None,
                "promotable": evaluation["promotable"] if evaluation else None,
                "forced": ctx.params["force"],
                "manifest_hash": ctx.scratch["run_manifest"]["manifest_hash"]}


def _file_entry(fmt: str, path: Path) -> dict[str, Any]:
    """A weights file of the published export, with its sha256 (as SHA256SUMS has it)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return {"format": fmt, "path": str(path), "sha256": digest.hexdigest(),
            "bytes": path.stat().st_size}


def _who() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _readers_adapter(ctx: StageContext, written: dict[str, Any]) -> list[tuple[str, Any]]:
    from brewslm.export.parity import adapter_reader

    return [("peft", adapter_reader(ctx.scratch["base"].path, written["config_dir"]))]


def _readers_folder(ctx: StageContext, written: dict[str, Any]) -> list[tuple[str, Any]]:
    from brewslm.export.parity import hf_reader

    return [("transformers", hf_reader(written.get("model_dir") or written["config_dir"]))]


def _readers_gguf(ctx: StageContext, written: dict[str, Any]) -> list[tuple[str, Any]]:
    from brewslm.export import gguf
    from brewslm.export.parity import gguf_reader, llama_cpp_reader

    readers = [("transformers-gguf", gguf_reader(written["files"][0]))]
    if gguf.llama_cpp_available():
        readers.append(("llama-cpp", llama_cpp_reader(written["files"][0])))
    return readers


PARITY_READERS = {"adapter": _readers_adapter, "safetensors": _readers_folder,
                  "hf": _readers_folder, "vllm": _readers_folder, "gguf": _readers_gguf}

USAGE = {
    "adapter": lambda ctx, w: (
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        "from peft import PeftModel\n"
        f"base = AutoModelForCausalLM.from_pretrained({str(ctx.scratch['base'].path)!r})\n"
        "model = PeftModel.from_pretrained(base, 'THIS_FOLDER')\n"
        "tokenizer = AutoTokenizer.from_pretrained('THIS_FOLDER')"),
    "safetensors": lambda ctx, w: (
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        "model = AutoModelForCausalLM.from_pretrained('THIS_FOLDER')\n"
        "tokenizer = AutoTokenizer.from_pretrained('THIS_FOLDER')"),
    "hf": lambda ctx, w: (
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        "model = AutoModelForCausalLM.from_pretrained('THIS_FOLDER')\n"
        "tokenizer = AutoTokenizer.from_pretrained('THIS_FOLDER')"),
    "vllm": lambda ctx, w: (
        f"./serve.sh      # = vllm serve ./model --served-model-name {ctx.project.name} "
        "--generation-config ./model"
        + (f"\n# LoRA serving instead: vllm serve BASE_MODEL --enable-lora --lora-modules "
           f"{ctx.project.name}=./adapter" if w.get("lora") else "")),
    "gguf": lambda ctx, w: (
        f"llama-cli -m {Path(w['files'][0]).name} -cnv      # llama.cpp\n"
        f"llama-server -m {Path(w['files'][0]).name}         # OpenAI-compatible server\n"
        f"AutoModelForCausalLM.from_pretrained('THIS_FOLDER', gguf_file="
        f"'{Path(w['files'][0]).name}')   # transformers"),
}
