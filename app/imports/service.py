"""Running several imports in order (the data-set loaders)."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.audit.listener import AuditContext
from app.config import Settings
from app.imports.datasets import CRM_BLANK_REASONS, cfpb_files, crm_sales_files
from app.imports.engine import run_import

DATASETS = ("crm-sales", "cfpb-complaints")


async def import_files(
    sessionmaker: Any,
    settings: Settings,
    files: dict[str, Path],
    actor: str,
    blank_reasons: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Import each file, in the given order, each in its own transaction.
    ``blank_reasons``: per resource, what ``run_import`` reports for a blank required
    column instead of "<column> is required"."""
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
                    blank_reasons=(blank_reasons or {}).get(resource),
                )
        reports[resource] = report.as_dict()
    return reports


async def load_dataset(
    sessionmaker: Any, settings: Settings, name: str, source: Path
) -> dict[str, Any]:
    """Load a public data set (``crm-sales``: the folder; ``cfpb-complaints``: the CSV
    file or its folder). Returns the warnings and each import's report."""
    with tempfile.TemporaryDirectory(prefix="ams-dataset-") as tmp:
        blank_reasons: Mapping[str, Mapping[str, str]] = {}
        if name == "crm-sales":
            files, warnings = crm_sales_files(source, Path(tmp))
            blank_reasons = CRM_BLANK_REASONS
        elif name == "cfpb-complaints":
            csv_file = source if source.suffix == ".csv" else source / "complaints_sample.csv"
            files, warnings = cfpb_files(csv_file, Path(tmp))
        else:
            raise ValueError(f"unknown data set {name!r}; one of {', '.join(DATASETS)}")
        reports = await import_files(sessionmaker, settings, files, f"loader:{name}", blank_reasons)
    return {"dataset": name, "warnings": warnings, "imports": reports}
