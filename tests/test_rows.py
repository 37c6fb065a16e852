"""rows stats and rows trace over real ledger files, including a tampered one."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from brewslm import project, rows
from brewslm.errors import NotFoundError
from brewslm.ledger import ledger_path, make_row_id
from brewslm.stages.runner import run_stage
from brewslm.stages.synthetic import SyntheticStage

pytestmark = pytest.mark.store


@pytest.fixture
def ran():
    info = project.create("rows")
    result = run_stage(SyntheticStage(), info,
                       params={"rows": 100, "reject_every": 7, "change_every": 5})
    return info, result


def test_stats_balance(ran):
    info, result = ran
    (entry,) = rows.stats(info)["stages"]
    assert (entry["in"], entry["out"], entry["dropped"]) == (100, 85, 15)
    assert entry["by_reason"] == {"synthetic_row_rejected": 15}
    assert entry["flagged"] is False and rows.stats(info)["flagged"] == []


def test_stats_flags_a_ledger_that_lost_rows(ran):
    info, result = ran
    path = ledger_path(info.dir, "synthetic", result.run_id)
    table = pq.read_table(path)
    pq.write_table(table.slice(0, 90), path)
    stats = rows.stats(info)
    assert stats["flagged"] == [result.run_id]
    assert stats["stages"][0]["balanced"] is False


def test_trace_tells_a_rejected_rows_story(ran):
    info, _ = ran
    trace = rows.trace(info, make_row_id("synthetic:0", 14))
    (step,) = trace["steps"]
    assert (step["outcome"], step["reason_code"], step["source"], step["position"]) == (
        "dropped", "synthetic_row_rejected", "synthetic", "row 14")
    assert step["hint"] and trace["final"] == "dropped at synthetic (synthetic_row_rejected)"
    changed = rows.trace(info, make_row_id("synthetic:0", 5))
    assert changed["steps"][0]["detail"] == "upper-cased"


def test_trace_of_an_unknown_row(ran):
    with pytest.raises(NotFoundError) as exc:
        rows.trace(ran[0], "r-not-a-row")
    assert exc.value.code == "row_not_found"
