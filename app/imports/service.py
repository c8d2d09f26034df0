"""Running several imports in order (the data-set loaders)."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Any

from app.audit.listener import AuditContext
from app.config import Settings
from app.imports.datasets import cfpb_files, crm_sales_files
from app.imports.engine import run_import

DATASETS = ("crm-sales", "cfpb-complaints")


async def import_files(
    sessionmaker: Any, settings: Settings, files: dict[str, Path], actor: str
) -> dict[str, dict[str, Any]]:
    """Import each file, in the given order, each in its own transaction."""
    reports: dict[str, dict[str, Any]] = {}
    for resource, path in files.items():
        async with sessionmaker.begin() as session:
            session.info["audit"] = AuditContext(actor=actor, source="import")
            with path.open("rb") as stream:  # noqa: ASYNC230 (read record by record)
                report = await run_import(
                    session,
                    settings,
                    resource,
                    stream,
                    dry_run=False,
                    actor=actor,
                    roles=[],
                    request_id=None,
                    import_id=str(uuid.uuid4()),
                )
        reports[resource] = report.as_dict()
    return reports


async def load_dataset(
    sessionmaker: Any, settings: Settings, name: str, source: Path
) -> dict[str, Any]:
    """Load a public data set (``crm-sales``: the folder; ``cfpb-complaints``: the CSV
    file or its folder). Returns the warnings and each import's report."""
    with tempfile.TemporaryDirectory(prefix="ams-dataset-") as tmp:
        if name == "crm-sales":
            files, warnings = crm_sales_files(source, Path(tmp))
        elif name == "cfpb-complaints":
            csv_file = source if source.suffix == ".csv" else source / "complaints_sample.csv"
            files, warnings = cfpb_files(csv_file, Path(tmp))
        else:
            raise ValueError(f"unknown data set {name!r}; one of {', '.join(DATASETS)}")
        reports = await import_files(sessionmaker, settings, files, f"loader:{name}")
    return {"dataset": name, "warnings": warnings, "imports": reports}
