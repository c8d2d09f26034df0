"""``POST /v1/imports`` (multipart upload → 202 and a job) and ``GET /v1/imports/{id}``."""

from __future__ import annotations

import os
import tempfile
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import structlog
from asgi_correlation_id import correlation_id
from fastapi import APIRouter, BackgroundTasks, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import Field

from app.audit.listener import AuditContext
from app.config import Settings
from app.core.auth import Principal, Role, require_roles
from app.core.errors import AppError, NotFound, error_responses
from app.core.schemas import AuditedRead, FormBoolean
from app.core.session import SessionDep
from app.imports.engine import run_import
from app.imports.models import ImportJob


class ImportResource(StrEnum):
    """The resources ``POST /v1/imports`` takes, one CSV format each (README)."""

    managers = "managers"
    clients = "clients"
    assignments = "assignments"
    interactions = "interactions"
    complaints = "complaints"
    sales = "sales"
    quotas = "quotas"


router = APIRouter(tags=["imports"])
Importer = Annotated[Principal, require_roles(Role.admin)]
log = structlog.get_logger("app.imports")
CHUNK = 1 << 20


class ImportJobRead(AuditedRead):
    resource: str
    filename: str | None
    dry_run: bool
    status: str = Field(description="queued, running, succeeded or failed")
    report: dict[str, Any] | None = Field(
        description="rows, created, updated, unchanged, rejected and the rejected rows "
        "(row number, external_ref, reason; the first 1,000)."
    )
    error: str | None
    finished_at: datetime | None


async def _process(
    sessionmaker: Any, settings: Settings, job_id: uuid.UUID, path: str, context: AuditContext
) -> None:
    """Run one import job in its own transaction and record the outcome."""
    status, report, error = "failed", None, None
    try:
        async with sessionmaker.begin() as session:
            job = await session.get(ImportJob, job_id)
            job.status = "running"
        async with sessionmaker.begin() as session:
            session.info["audit"] = context
            job = await session.get(ImportJob, job_id)
            with open(path, "rb") as stream:  # noqa: ASYNC230 (read in record-sized steps)
                result = await run_import(
                    session,
                    settings,
                    job.resource,
                    stream,
                    dry_run=job.dry_run,
                    actor=context.actor,
                    roles=context.roles,
                    request_id=context.request_id,
                    import_id=str(job_id),
                )
            status, report = "succeeded", result.as_dict()
    except AppError as exc:
        error = exc.detail
    except Exception:  # recorded on the job; details in the log only
        log.exception("import_failed", import_id=str(job_id))
        error = "The import failed unexpectedly; nothing was written."
    finally:
        os.unlink(path)
    async with sessionmaker.begin() as session:
        job = await session.get(ImportJob, job_id)
        job.status, job.report, job.error = status, report, error
        job.finished_at = datetime.now(UTC)


@router.post(
    "/v1/imports",
    status_code=202,
    response_model=ImportJobRead,
    responses=error_responses(401, 403, 422),
)
async def create_import(
    request: Request,
    session: SessionDep,
    principal: Importer,
    background: BackgroundTasks,
    resource: Annotated[ImportResource, Form(description="What the file holds.")],
    file: Annotated[UploadFile, File(description="CSV in our format for the resource")],
    dry_run: Annotated[FormBoolean, Form()] = False,
) -> JSONResponse:
    """Upload a CSV file to import (admin); answers 202 with the job to poll. Re-importing
    a file changes nothing (rows are keyed on `external_ref`)."""
    handle, path = tempfile.mkstemp(prefix="ams-import-", suffix=".csv")
    with os.fdopen(handle, "wb") as out:
        while chunk := await file.read(CHUNK):
            out.write(chunk)
    job = ImportJob(
        resource=resource.value,
        filename=(file.filename or "")[:300] or None,
        dry_run=dry_run,
        status="queued",
        created_by=principal.subject,
        updated_by=principal.subject,
    )
    session.add(job)
    await session.flush()
    await session.refresh(job)
    context = AuditContext(
        actor=principal.subject,
        roles=sorted(r.value for r in principal.roles),
        source="import",
        request_id=correlation_id.get(),
    )
    background.add_task(
        _process,
        request.app.state.sessionmaker,
        request.app.state.settings,
        job.id,
        path,
        context,
    )
    body = ImportJobRead.model_validate(job).model_dump(mode="json")
    return JSONResponse(body, status_code=202, headers={"Location": f"/v1/imports/{job.id}"})


@router.get(
    "/v1/imports/{import_id}",
    response_model=ImportJobRead,
    responses=error_responses(401, 403, 404),
)
async def get_import(
    import_id: uuid.UUID, session: SessionDep, principal: Importer
) -> ImportJobRead:
    """An import job: its status and, when finished, its report."""
    job = await session.get(ImportJob, import_id)
    if job is None:
        raise NotFound(f"Import {import_id} was not found.")
    return ImportJobRead.model_validate(job)
