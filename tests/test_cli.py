"""The ``ams`` command as the README gives it, run as a process on the test database:
``rules evaluate --as-of`` takes RFC 3339 with an offset (and refuses the rest with a
usage error), and ``demo load`` checks its folder and prints a summary a person reads."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import asyncpg
import pytest
from httpx import AsyncClient

from tests.conftest import plain_url
from tests.factories import create_client

pytestmark = pytest.mark.slow
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CRM = DATA / "crm_sales_opportunities"


async def ams(*args: str, database_url: str | None = None) -> tuple[int, str, str]:
    """Run ``ams ARGS``; (exit code, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *["-c", "from app.cli import main; main()", *args],
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("as_of", ["2017-12-31T00:00:00Z", "2017-12-31T01:00:00+01:00"])
async def test_rules_evaluate_takes_an_instant_with_an_offset(
    database_url: str, live_client: AsyncClient, as_of: str
) -> None:
    await create_client(live_client, lifecycle_stage="active")  # unassigned: one flag
    code, out, err = await ams("rules", "evaluate", "--as-of", as_of, database_url=database_url)
    assert code == 0, err
    assert "at 2017-12-31T00:00:00+00:00: raised 1," in out
    db = await asyncpg.connect(plain_url(database_url))
    try:
        row = await db.fetchrow("SELECT as_of, trigger FROM rule_runs")
    finally:
        await db.close()
    assert row is not None
    assert row["trigger"] == "cli"
    assert row["as_of"].isoformat() == "2017-12-31T00:00:00+00:00"


@pytest.mark.parametrize("as_of", ["2017-12-31", "2017-12-31T00:00:00", "1514678400", "soon"])
async def test_rules_evaluate_refuses_anything_else_before_touching_the_database(
    as_of: str,
) -> None:
    code, out, err = await ams("rules", "evaluate", "--as-of", as_of)  # no DATABASE_URL
    assert code == 2
    assert "--as-of" in err
    assert "2018-01-01T00:00:00Z" in err
    assert "Traceback" not in err + out


@pytest.mark.parametrize(
    ("dataset", "path", "message"),
    [
        ("crm-sales", CRM / "accounts.csv", "is a file; give the folder that holds it."),
        ("crm-sales", DATA / "cfpb_complaints_sample", "sales_pipeline.csv, sales_teams.csv"),
        ("crm-sales", DATA / "nowhere", "does not exist."),
        ("cfpb-complaints", CRM, "complaints_sample.csv missing."),
    ],
    ids=["a-file", "another-data-set", "missing", "cfpb-wrong-folder"],
)
async def test_demo_load_names_a_wrong_path_in_one_line(
    dataset: str, path: Path, message: str
) -> None:
    if not DATA.is_dir():
        pytest.skip(f"public data sets not found in {DATA}")
    code, out, err = await ams("demo", "load", dataset, str(path))
    assert code == 2
    assert message in err, err
    assert "Traceback" not in err + out
    assert len(err.strip().splitlines()) == 1


async def test_demo_load_then_the_readme_rule_run(
    database_url: str, live_client: AsyncClient, tmp_path: Path
) -> None:
    """README: load the CRM set, evaluate at 2018-01-01: missed quotas of Q3 and Q4."""
    if not CRM.is_dir():
        pytest.skip(f"public data sets not found in {DATA}")
    report = tmp_path / "crm.json"
    code, out, err = await ams(
        "demo", "load", "crm-sales", str(CRM), "--report", str(report), database_url=database_url
    )
    assert code == 0, err
    assert "clients: 85 rows, 85 created" in out
    # The engagements without an account, as two lines, not 1,000 JSON objects.
    assert "interactions: 8300 rows, 7212 created, 0 updated, 0 unchanged, 1088 rejected" in out
    assert (
        "  rejected 1000 × the deal has a blank account in sales_pipeline.csv"
        " (rows 11, 44, 46, 58, 62, ...)"
    ) in out
    assert "  (the first 1000 of 1088 rejected rows are listed and counted above)" in out
    assert len(out.splitlines()) < 60, out
    assert report.read_text(encoding="utf-8").count('"reason"') >= 1000

    code, out, err = await ams(
        "rules", "evaluate", "--as-of", "2018-01-01T00:00:00Z", database_url=database_url
    )
    assert code == 0, err
    db = await asyncpg.connect(plain_url(database_url))
    try:
        periods = await db.fetch(
            "SELECT DISTINCT f.evidence ->> 'period_end' AS period_end FROM flags f"
            " WHERE f.rule_key = 'quota_missed' ORDER BY 1"
        )
    finally:
        await db.close()
    ends = [row["period_end"][:10] for row in periods]
    assert ends == ["2017-10-01", "2018-01-01"], ends
