"""Eval packs: the three shipped packs load, a user's file inherits the default, --set works,
and every malformed pack is refused with eval_pack_invalid naming the key."""

from __future__ import annotations

import pytest

from brewslm.errors import InputError
from brewslm.evaluate.pack import PACKAGED, load_pack


def refused(*args) -> InputError:
    with pytest.raises(InputError) as caught:
        load_pack(*args)
    assert caught.value.code == "eval_pack_invalid"
    return caught.value


def test_shipped_packs_load_with_required_gates():
    for name in PACKAGED:
        pack = load_pack(name)
        assert pack["name"] == name and pack["version"] == 1
        assert any(g.get("required") for g in pack["gates"])
    assert load_pack("fast")["limit"] == 32
    assert all(g["required"] for g in load_pack("strict")["gates"])


def test_user_pack_and_overrides(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("name: mine\nmetrics: [exact_match]\nloss: false\ngates:\n"
                    "  - {id: floor, metric: exact_match, gte: 0.9, required: true}\n"
                    "generation: {max_new_tokens: 8}\n")
    pack = load_pack(str(mine), ["limit=5", "generation.batch_size=4"])
    assert pack["name"] == "mine" and pack["limit"] == 5
    assert pack["generation"]["max_new_tokens"] == 8 and pack["generation"]["batch_size"] == 4
    assert pack["generation"]["greedy"] is True  # inherited from default


@pytest.mark.parametrize("text, needle", [
    ("colour: red\n", "'colour'"),
    ("metrics: []\n", "'metrics'"),
    ("gates:\n  - {id: g, metric: exact_match}\n", "exactly one"),
    ("gates:\n  - {id: g, metric: exact_match, gte: 1, lte: 2}\n", "exactly one"),
    ("gates:\n  - {id: g, metric: bleu_9000, gte: 1}\n", "not computed"),
    ("loss: false\ngates:\n  - {id: g, metric: eval_loss, relative: 0}\n", "not computed"),
    ("slice_by: category\n", "slice_by"),
    ("generation: {max_new_tokens: 0}\n", "generation.max_new_tokens"),
    ("generation: {beams: 4}\n", "generation.beams"),
    ("gold_sha256: 0000\n", "gold_sha256"),
    ("gates:\n  - {id: g, metric: exact_match, gte: 1, split: train}\n", "split"),
])
def test_malformed_packs_are_refused(tmp_path, text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert needle in refused(str(path)).message


def test_unknown_pack_and_bad_override():
    assert "default, strict, fast" in refused("nightly").message
    assert "KEY=VALUE" in refused("default", ["limit"]).message
    assert "limit" in refused("default", ["limit=0"]).message
