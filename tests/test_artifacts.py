"""Artifacts: content-addressed, complete only with their sidecar, verified by sha256."""

from __future__ import annotations

import hashlib

import pytest

from brewslm import artifacts, project
from brewslm.artifacts import ArtifactBuilder
from brewslm.errors import BrewError, NotFoundError

pytestmark = pytest.mark.store


def _build(proj, files: dict[str, str], kind: str = "dataset") -> ArtifactBuilder:
    builder = ArtifactBuilder(proj.dir, kind)
    for name, text in files.items():
        (builder.dir / name).parent.mkdir(parents=True, exist_ok=True)
        (builder.dir / name).write_text(text)
    return builder


def test_publish_is_content_addressed_and_writes_the_sidecar():
    proj = project.create("a1")
    art = artifacts.publish(_build(proj, {"a.txt": "hello", "sub/b.txt": "world"}), {"n": 2})
    digest = lambda s: hashlib.sha256(s.encode()).hexdigest()  # noqa: E731
    expected = hashlib.sha256(f"a.txt\0{digest('hello')}\nsub/b.txt\0{digest('world')}\n"
                              .encode()).hexdigest()
    assert art.id == expected and (art.size_bytes, art.file_count) == (10, 2)
    assert (art.path / "sub" / "b.txt").read_text() == "world"
    assert (art.path.parent / "artifact.json").exists()
    assert not list((proj.dir / "artifacts" / ".staging").iterdir())


def test_same_content_is_stored_once():
    proj = project.create("a2")
    first = artifacts.publish(_build(proj, {"x": "same"}))
    second = artifacts.publish(_build(proj, {"x": "same"}))
    assert first.id == second.id and first.created_new and not second.created_new
    assert len([p for p in (proj.dir / "artifacts").iterdir() if p.name != ".staging"]) == 1


def test_folder_without_sidecar_is_crash_debris_and_is_replaced():
    proj = project.create("a3")
    art = artifacts.publish(_build(proj, {"x": "data"}))
    (art.path.parent / "artifact.json").unlink()
    again = artifacts.publish(_build(proj, {"x": "data"}))
    assert again.created_new and (again.path.parent / "artifact.json").exists()


def test_get_by_prefix_and_refusals():
    proj = project.create("a4")
    art = artifacts.publish(_build(proj, {"x": "data"}))
    artifacts.register(proj, art, "run-1")
    assert artifacts.get(proj, art.id[:10]).id == art.id
    assert artifacts.list_artifacts(proj)[0].run_id == "run-1"
    for bad in ("ffff" * 16, ""):
        with pytest.raises(NotFoundError) as exc:
            artifacts.get(proj, bad)
        assert exc.value.code == "artifact_not_found"


def test_verify_detects_a_changed_file():
    proj = project.create("a5")
    art = artifacts.publish(_build(proj, {"x": "data"}))
    artifacts.verify(art)
    (art.path / "x").write_text("tampered")
    with pytest.raises(BrewError) as exc:
        artifacts.verify(art)
    assert exc.value.code == "artifact_corrupt"
