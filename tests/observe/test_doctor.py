"""`brewslm doctor`: every check reports {name, status, code, detail}; each failure mode has its
exact reason code; the report fails (exit 1) only when a check fails, and the database checks
never migrate what they inspect."""

from __future__ import annotations

import importlib.metadata as md
import shutil
from collections import namedtuple

import pytest
from alembic import command
from sqlalchemy import create_engine

from brewslm.events import taxonomy
from brewslm.observe import doctor
from brewslm.store import db

pytestmark = pytest.mark.store
Usage = namedtuple("Usage", "total used free")


def by_name(report):
    return {c["name"]: c for c in report["checks"]}


def test_a_healthy_environment(brewslm_home):
    db.engine()  # migrated to head, as any command does first
    report = doctor.run_checks()
    checks = by_name(report)
    assert list(checks)[:9] == ["python", "libraries", "devices", "memory", "disk", "home",
                                "database", "migrations", "taxonomy"]
    assert sorted(n for n in checks if n.startswith("extra:")) == sorted(
        f"extra:{e}" for e in doctor.EXTRAS)
    for c in report["checks"]:
        assert set(c) == {"name", "status", "code", "detail", "data"}
        assert c["status"] in doctor.STATUSES and taxonomy.is_known(c["code"]), c
    for name in ("python", "libraries", "home", "database", "migrations", "taxonomy"):
        assert (checks[name]["status"], checks[name]["code"]) == ("ok", "doctor_ok"), checks[name]
    assert checks["devices"]["code"] in ("doctor_ok", "doctor_cpu_only")
    assert checks["migrations"]["data"]["revision"] == doctor._database_state()["head"]
    assert checks["taxonomy"]["data"]["codes"] == len(taxonomy.codes())
    assert report["counts"]["fail"] == 0 and doctor.exit_code(report) == 0
    assert report["counts"] == {s: sum(c["status"] == s for c in report["checks"])
                                for s in doctor.STATUSES}


def test_missing_and_too_old_libraries():
    def missing_torch(name):
        if name == "torch":
            raise md.PackageNotFoundError(name)
        return md.version(name)

    found = doctor.libraries_check(missing_torch)
    assert (found["status"], found["code"], found["data"]["missing"]) == (
        "fail", "doctor_library_missing", ["torch"])
    old = doctor.libraries_check(lambda name: "0.0.1" if name == "peft" else md.version(name))
    assert (old["status"], old["code"]) == ("fail", "doctor_library_too_old")
    assert old["data"]["too_old"] == ["peft 0.0.1 (needs >=0.21)"]


def test_python_outside_the_required_range(monkeypatch):
    monkeypatch.setattr(doctor.platform, "python_version", lambda: "3.9.1")
    found = doctor.python_check()
    assert (found["status"], found["code"]) == ("fail", "doctor_python_unsupported")


@pytest.mark.parametrize("free, status, code", [(100 << 30, "ok", "doctor_ok"),
                                                (2 << 30, "warn", "doctor_disk_low"),
                                                (100 << 20, "fail", "doctor_disk_full")])
def test_disk_thresholds(monkeypatch, free, status, code):
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda _: Usage(1 << 40, 0, free))
    found = doctor.disk_check()
    assert (found["status"], found["code"], found["data"]["free_bytes"]) == (status, code, free)


def test_low_memory(monkeypatch):
    import brewslm.preflight.memory as memory

    monkeypatch.setattr(memory, "free_memory_bytes", lambda device="cpu": 1 << 30)
    found = doctor.memory_check()
    assert (found["status"], found["code"]) == ("warn", "doctor_memory_low")


def test_home_not_writable(monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("BREWSLM_HOME", str(blocker / "home"))
    found = doctor.home_check()
    assert (found["status"], found["code"]) == ("fail", "doctor_home_not_writable")


def test_unreachable_database_hides_its_password(monkeypatch):
    monkeypatch.setenv("BREWSLM_DATABASE_URL",
                       "postgresql+psycopg://brew:s3cretpw@127.0.0.1:1/brewslm")
    report = doctor.run_checks()
    checks = by_name(report)
    assert (checks["database"]["status"], checks["database"]["code"]) == (
        "fail", "doctor_database_unreachable")
    assert (checks["migrations"]["status"], checks["migrations"]["code"]) == (
        "warn", "doctor_database_unreachable")
    assert "s3cretpw" not in str(report) and "***" in checks["database"]["detail"]
    assert report["status"] == "fail" and doctor.exit_code(report) == 1


def test_migrations_behind_are_reported_not_applied(brewslm_home, monkeypatch):
    monkeypatch.delenv("BREWSLM_DATABASE_URL", raising=False)  # this test is about SQLite
    brewslm_home.mkdir(parents=True, exist_ok=True)
    eng = create_engine(f"sqlite:///{brewslm_home}/brewslm.db")
    command.upgrade(db.alembic_config(eng), "0001")
    found = doctor.migrations_check()
    assert (found["status"], found["code"], found["data"]["revision"]) == (
        "warn", "doctor_migrations_behind", "0001")
    assert doctor.migrations_check()["data"]["revision"] == "0001"  # still: nothing migrated
    eng.dispose()


def test_a_database_from_a_newer_version(brewslm_home):
    db.engine()
    with db.engine().begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    found = doctor.migrations_check()
    assert (found["status"], found["code"]) == ("fail", "doctor_migrations_unknown")


def test_a_fresh_home_has_no_database_yet(brewslm_home, monkeypatch):
    monkeypatch.delenv("BREWSLM_DATABASE_URL", raising=False)  # this test is about SQLite
    assert not (brewslm_home / "brewslm.db").exists()
    found = doctor.database_check()
    assert (found["status"], found["code"]) == ("ok", "doctor_ok")
    assert "will be created" in found["detail"]
    assert not (brewslm_home / "brewslm.db").exists()


def test_broken_taxonomy(monkeypatch, tmp_path):
    broken = tmp_path / "taxonomy.yaml"
    shutil.copy(taxonomy.TAXONOMY_FILE, broken)
    broken.write_text(broken.read_text() + "\nbad_code:\n  stage: x\n  severity: loud\n")
    monkeypatch.setattr(taxonomy, "TAXONOMY_FILE", broken)
    taxonomy.codes.cache_clear()
    try:
        found = doctor.taxonomy_check()
    finally:
        monkeypatch.undo()
        taxonomy.codes.cache_clear()
    assert (found["status"], found["code"]) == ("fail", "doctor_taxonomy_invalid")
    assert "bad_code" in found["detail"]


def test_missing_extra_warns_and_a_crashing_check_fails(monkeypatch):
    found = doctor.extra_check("llama", "no_such_module_brewslm_test")
    assert (found["name"], found["status"], found["code"]) == (
        "extra:llama", "warn", "doctor_extra_missing")

    def boom():
        raise RuntimeError("driver on fire")

    monkeypatch.setattr(doctor, "CHECKS", [("devices", boom)])
    report = doctor.run_checks()
    assert report["checks"][0] == {"name": "devices", "status": "fail",
                                   "code": "doctor_check_crashed",
                                   "detail": "the check itself failed: RuntimeError: driver on "
                                             "fire", "data": {}}
    assert doctor.exit_code(report) == 1


def test_environment_report_has_versions_hardware_and_database(monkeypatch):
    monkeypatch.setenv("BREWSLM_DATABASE_URL", "postgresql+psycopg://u:pw12345@127.0.0.1:1/x")
    env = doctor.environment()
    assert env["libraries"]["torch"] and env["hardware"]["cpu_count"] >= 1
    assert env["database"]["url"] == "postgresql+psycopg://u:***@127.0.0.1:1/x"
    assert env["database"]["reachable"] is False
    assert "BREWSLM_HOME" in env["env"] and isinstance(env["devices"], list)
