"""The ``ams`` command: serve, migrate, token."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from alembic import command

from app.audit.listener import AuditContext
from app.config import Settings, get_settings
from app.core.auth import Role, mint_token
from app.core.errors import AppError
from app.core.health import alembic_config
from app.core.observability import configure_logging

cli = typer.Typer(
    help="Account management service.", no_args_is_help=True, pretty_exceptions_enable=False
)
migrate_cli = typer.Typer(help="Database migrations (Alembic).", no_args_is_help=True)
cli.add_typer(migrate_cli, name="migrate")
rules_cli = typer.Typer(help="The rules module.", no_args_is_help=True)
cli.add_typer(rules_cli, name="rules")
demo_cli = typer.Typer(help="Demo data: the public data sets.", no_args_is_help=True)
cli.add_typer(demo_cli, name="demo")


def _upgrade(url: str, revision: str = "head") -> None:
    config = alembic_config()
    config.attributes["url"] = url
    command.upgrade(config, revision)


def _database_url(settings: Settings) -> str:
    if not settings.database_url:
        typer.echo("DATABASE_URL is not set.", err=True)
        raise typer.Exit(2)
    return settings.database_url


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default PORT).")] = None,
    migrate: Annotated[
        bool | None,
        typer.Option(help="Migrate to head first (default: yes on embedded, MIGRATE_ON_START)."),
    ] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Fill an empty database with a demo organisation.")
    ] = False,
) -> None:
    """Serve the API. Without DATABASE_URL, start the embedded Postgres first."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    embedded = None
    url = settings.database_url
    if url is None:
        from app.core.embedded_pg import EmbeddedPostgres

        typer.echo(f"Starting embedded Postgres in {settings.embedded_data_dir} ...")
        embedded = EmbeddedPostgres(settings.embedded_data_dir)
        url = embedded.create_database("ams")
        settings = settings.model_copy(update={"database_url": url})
    if migrate is None:
        migrate = embedded is not None or os.environ.get("MIGRATE_ON_START") == "1"
    try:
        if migrate:
            _upgrade(url)
        if demo:
            from app.demo import seed_database

            seeded = asyncio.run(seed_database(settings, url))
            typer.echo(
                "Demo organisation created."
                if seeded
                else "The database already has clients: --demo added nothing."
            )
        from app.main import create_app

        bind_host, bind_port = host or settings.host, port or settings.port
        token = mint_token(settings, "admin", [Role.admin])
        typer.echo(f"\nInteractive docs: http://{bind_host}:{bind_port}/docs")
        typer.echo(f"Admin token (valid {settings.auth.dev_token_ttl_s // 3600} h):\n{token}\n")
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings),
                host=bind_host,
                port=bind_port,
                log_config=None,
                timeout_graceful_shutdown=20,
                proxy_headers=True,
            )
        )
        # uvicorn restores the previous handlers after its graceful shutdown and re-raises
        # the signal; make SIGTERM/SIGHUP unwind like Ctrl-C so the finally block runs.
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _exit_on_signal)
        asyncio.run(server.serve())
    finally:
        if embedded is not None:
            typer.echo("Stopping embedded Postgres ...")
            embedded.stop()


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


@migrate_cli.command("upgrade")
def migrate_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Upgrade the DATABASE_URL database to REVISION (default head)."""
    _upgrade(_database_url(get_settings()), revision)


@migrate_cli.command("downgrade")
def migrate_downgrade(revision: Annotated[str, typer.Argument()]) -> None:
    """Downgrade the DATABASE_URL database to REVISION (e.g. -1 or base)."""
    config = alembic_config()
    config.attributes["url"] = _database_url(get_settings())
    command.downgrade(config, revision)


@cli.command()
def token(
    role: Annotated[list[Role], typer.Option("--role", "-r", help="Role; repeat for several.")],
    subject: Annotated[
        str | None, typer.Option(help="Token subject: a manager id or a service name.")
    ] = None,
    ttl: Annotated[int | None, typer.Option(help="Lifetime in seconds.")] = None,
) -> None:
    """Print a signed development JWT (HS256 with AUTH__JWT_SECRET)."""
    typer.echo(mint_token(get_settings(), subject or str(uuid.uuid4()), role, ttl))


@contextmanager
def _database(settings: Settings) -> Iterator[str]:
    """DATABASE_URL, or the embedded Postgres (started for the command, then stopped)."""
    if settings.database_url:
        yield settings.database_url
        return
    from app.core.embedded_pg import EmbeddedPostgres

    embedded = EmbeddedPostgres(settings.embedded_data_dir)
    try:
        url = embedded.create_database("ams")
        _upgrade(url)
        yield url
    finally:
        embedded.stop()


@rules_cli.command("evaluate")
def rules_evaluate(
    as_of_text: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Instant to evaluate at, RFC 3339 with an offset, e.g. "
            "2018-01-01T00:00:00Z (default now).",
        ),
    ] = None,
) -> None:
    """Evaluate every enabled rule once (waits if another run holds the lock)."""
    from app.core.db import create_engine, create_sessionmaker
    from app.rules.engine import run_rules

    settings = get_settings()
    as_of = None if as_of_text is None else _instant_option("--as-of", as_of_text)

    async def evaluate(url: str) -> None:
        engine = create_engine(settings, url)
        try:
            async with create_sessionmaker(engine).begin() as session:
                run = await run_rules(
                    session,
                    as_of=as_of,
                    time_zone=settings.org.time_zone,
                    trigger="cli",
                    actor="cli",
                    wait=True,
                    statement_timeout_ms=settings.rules.statement_timeout_ms,
                )
            typer.echo(
                f"run {run.id} at {run.as_of.astimezone(UTC).isoformat()}: raised "
                f"{run.raised}, still open {run.still_open}, resolved {run.resolved}, "
                f"reopened {run.reopened} in {run.duration_ms} ms"
            )
            for key, counts in sorted(run.per_rule.items()):
                typer.echo(f"  {key}: {counts}")
        finally:
            await engine.dispose()

    with _database(settings) as url:
        asyncio.run(evaluate(url))


@cli.command("import")
def import_file(
    resource: Annotated[str, typer.Argument(help="managers, clients, assignments, ...")],
    path: Annotated[str, typer.Argument(help="CSV file in our format (see README).")],
    dry_run: Annotated[bool, typer.Option(help="Check and count, write nothing.")] = False,
) -> None:
    """Import a CSV file; prints the report (created, updated, unchanged, rejected rows)."""
    import json
    import uuid as uuid_module

    from app.core.db import create_engine, create_sessionmaker
    from app.imports.engine import RESOURCES, run_import

    if resource not in RESOURCES:
        typer.echo(f"Unknown resource {resource!r}; one of {', '.join(RESOURCES)}.", err=True)
        raise typer.Exit(2)
    settings = get_settings()

    async def load(url: str) -> dict[str, object]:
        engine = create_engine(settings, url)
        try:
            async with create_sessionmaker(engine).begin() as session:
                session.info["audit"] = AuditContext(actor="cli", source="import")
                with open(path, "rb") as stream:  # noqa: ASYNC230 (a CLI, nothing else waits)
                    report = await run_import(
                        session,
                        settings,
                        resource,
                        stream,
                        dry_run=dry_run,
                        actor="cli",
                        roles=[],
                        request_id=None,
                        import_id=str(uuid_module.uuid4()),
                    )
            return report.as_dict()
        finally:
            await engine.dispose()

    with _database(settings) as url:
        try:
            report = asyncio.run(load(url))
        except AppError as exc:
            typer.echo(f"Import refused: {exc.detail}", err=True)
            raise typer.Exit(1) from exc
    typer.echo(json.dumps(report, indent=2, ensure_ascii=False))


@demo_cli.command("load")
def demo_load(
    dataset: Annotated[str, typer.Argument(help="crm-sales or cfpb-complaints")],
    path: Annotated[str, typer.Argument(help="The data set's folder (or CSV file).")],
    report: Annotated[
        str | None,
        typer.Option(help="Also write the full JSON report (every rejected row) to this file."),
    ] = None,
) -> None:
    """Load a public data set through the importer; prints the warnings, each import's
    counts and its rejections grouped by reason (``--report FILE`` for every row)."""
    import json
    from pathlib import Path

    from app.core.db import create_engine, create_sessionmaker
    from app.imports.service import DATASETS, load_dataset

    if dataset not in DATASETS:
        typer.echo(f"Unknown data set {dataset!r}; one of {', '.join(DATASETS)}.", err=True)
        raise typer.Exit(2)
    _check_dataset_path(dataset, Path(path))
    settings = get_settings()

    async def load(url: str) -> dict[str, object]:
        engine = create_engine(settings, url)
        try:
            return await load_dataset(create_sessionmaker(engine), settings, dataset, Path(path))
        finally:
            await engine.dispose()

    with _database(settings) as url:
        result = asyncio.run(load(url))
    if report is not None:
        Path(report).write_text(json.dumps(result, indent=2, ensure_ascii=False), "utf-8")
    typer.echo(_summarise_load(result, report))


def _instant_option(name: str, value: str) -> datetime:
    """An option holding an instant: RFC 3339 text with an offset (``Z`` or ``+01:00``);
    anything else is a usage error (exit 2) that shows an example."""
    from pydantic import TypeAdapter, ValidationError

    from app.core.schemas import Instant

    try:
        return TypeAdapter(Instant).validate_python(value)
    except ValidationError:
        raise typer.BadParameter(
            f"{value!r} is not an instant with an offset, e.g. 2018-01-01T00:00:00Z or "
            "2018-01-01T00:00:00+01:00",
            param_hint=name,
        ) from None


# The files each public data set's folder must hold (see app/imports/datasets.py).
DATASET_FILES = {
    "crm-sales": ("accounts.csv", "products.csv", "sales_pipeline.csv", "sales_teams.csv"),
    "cfpb-complaints": ("complaints_sample.csv",),
}


def _check_dataset_path(dataset: str, path: Path) -> None:
    """Exit 2 with one line when ``path`` is not the data set's folder (cfpb-complaints
    also takes its CSV file)."""
    if not path.exists():
        problem = f"{path} does not exist."
    elif path.is_file() and not (dataset == "cfpb-complaints" and path.suffix == ".csv"):
        problem = f"{path} is a file; give the folder that holds it."
    elif path.is_dir() and (
        missing := [f for f in DATASET_FILES[dataset] if not (path / f).is_file()]
    ):
        problem = f"{path} is not the {dataset} folder: {', '.join(missing)} missing."
    else:
        return
    typer.echo(f"{problem} Expected a folder with {', '.join(DATASET_FILES[dataset])}.", err=True)
    raise typer.Exit(2)


def _summarise_load(result: dict[str, Any], report: str | None) -> str:
    """A data-set load's report for a person: warnings, then per import its counts and
    its rejections grouped by reason (how many, and the first rows)."""
    lines = [f"Loaded {result['dataset']}."]
    if result["warnings"]:
        lines.append(f"Warnings ({len(result['warnings'])}):")
        lines += [f"  {w}" for w in result["warnings"]]
    for resource, outcome in result["imports"].items():
        lines.append(
            f"{resource}: {outcome['rows']} rows, {outcome['created']} created, "
            f"{outcome['updated']} updated, {outcome['unchanged']} unchanged, "
            f"{outcome['rejected']} rejected"
        )
        by_reason: dict[str, list[int]] = {}
        for rejection in outcome["rejections"]:
            by_reason.setdefault(rejection["reason"], []).append(rejection["row"])
        for reason, rows in sorted(by_reason.items(), key=lambda item: -len(item[1])):
            shown = ", ".join(str(r) for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
            lines.append(f"  rejected {len(rows)} × {reason} (rows {shown})")
        if outcome.get("rejections_truncated"):
            lines.append(
                f"  (the first {len(outcome['rejections'])} of {outcome['rejected']} rejected "
                "rows are listed and counted above)"
            )
    if report is not None:
        lines.append(f"Full report: {report}")
    return "\n".join(lines)


@cli.command()
def openapi(
    output: Annotated[str, typer.Option(help="File to write; '-' for standard output.")] = (
        "openapi.yaml"
    ),
) -> None:
    """Write the OpenAPI document the app serves (keep openapi.yaml equal to it)."""
    from app.main import create_app
    from app.openapi import render_openapi

    document = render_openapi(create_app(Settings(database_url=None)))
    if output == "-":
        typer.echo(document, nl=False)
    else:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(document)


def main() -> None:
    """Entry point of the ``ams`` script."""
    cli()
