"""Commands for data contracts: infer a draft from reference data, validate any file, export
the compiled pandera schema."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ml_platform.cli.app import _spec, app, console

contract_app = typer.Typer(
    help="Data contracts compiled for pandera and Great Expectations.", no_args_is_help=True
)
app.add_typer(contract_app, name="contract")


class SchemaFormat(StrEnum):
    yaml = "yaml"
    python = "python"


def _load(spec, data: Path | None):  # noqa: ANN001, ANN202 - PipelineSpec -> (DataFrame, str)
    """Rows from ``--data`` or, without it, from the pipeline's landed files."""
    from ml_platform.home import activate_home
    from ml_platform.ingest import raw

    try:
        if data is not None:
            return raw.read_path(data), str(data)
        snap = raw.snapshot(spec, activate_home())
        return raw.read(spec, snap), f"{len(snap.files)} landed files ({spec.source.path})"
    except raw.RawDataError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


@app.command("infer-contract")
def infer_contract(
    pipeline: str,
    data: Annotated[
        Path | None,
        typer.Option(help="Reference CSV or Parquet file; default: the pipeline's landed files."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            help="Where to write; default: the spec's 'contract' file (or contract.yaml beside it)."
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing contract file.")] = False,
) -> None:
    """Derive a draft data contract from reference data and write it for review."""
    from ml_platform.contracts import dump_contract
    from ml_platform.contracts.infer import infer_contract as infer
    from ml_platform.ingest.io import write_text

    spec = _spec(pipeline)
    target = output or spec.contract_path() or Path(spec.spec_dir or ".") / "contract.yaml"
    if target.exists() and not force:
        console.print(
            f"[red]error:[/red] {target} exists; review changes with --output "
            f"<other file>, or replace it with --force"
        )
        raise typer.Exit(1)
    frame, source = _load(spec, data)
    contract = infer(spec, frame, source=source)
    header = (
        f"# Data contract of '{spec.name}', drafted by `ml-platform infer-contract` from "
        f"{source} ({len(frame):,} rows)\n# on {datetime.now(UTC):%Y-%m-%d}. Review every "
        f"rule before committing: the gates use this file as is.\n"
    )
    write_text(dump_contract(contract, header), target)
    console.print(f"wrote a draft contract with {len(contract.columns)} columns to {target}")
    if spec.contract is None and output is None:
        console.print(f"add [bold]contract: {target.name}[/bold] to the spec to gate on it")


@app.command()
def validate(
    pipeline: str,
    data: Annotated[Path, typer.Option(help="CSV or Parquet file to check.")],
) -> None:
    """Check a file against the pipeline's committed contract (exit 0 only if it passes)."""
    from rich.markup import escape
    from rich.table import Table

    from ml_platform.contracts import ContractError
    from ml_platform.contracts.validate import check_only
    from ml_platform.home import activate_home

    spec = _spec(pipeline)
    frame, source = _load(spec, data)
    try:
        result, report = check_only(spec, activate_home(), frame, source)
    except ContractError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    table = Table("rule", "column", "failing rows", "message", title="broken rules")
    for r in [*result.failures, *result.quarantined_rules]:
        policy = "" if r.policy == "fail" else " (quarantine)"
        table.add_row(
            escape(r.rule + policy),
            escape(r.column or ""),
            f"{r.failing_rows:,}",
            escape(r.message[:300]),
        )
    if table.rows:
        console.print(table)
    verdict = "[green]PASSED[/green]" if result.passed else "[red]FAILED[/red]"
    console.print(
        f"{verdict} {len(result.rules)} rules, {len(result.failures)} failing; "
        f"{result.rows_in:,} rows, {result.rows_quarantined:,} would be quarantined"
    )
    console.print(f"report: {escape(str(report))}")
    if result.data_docs is not None:
        console.print(f"Great Expectations Data Docs: {escape(str(result.data_docs.index))}")
        if result.data_docs.page is not None:
            console.print(f"  this validation: {escape(str(result.data_docs.page))}")
    raise typer.Exit(0 if result.passed else 1)


@contract_app.command("export")
def export(
    pipeline: str,
    format: Annotated[
        SchemaFormat,
        typer.Option(
            "--format",
            help="yaml: pandera's to_yaml (load with DataFrameSchema.from_yaml); "
            "python: pandera's to_script (import `schema` from it).",
        ),
    ] = SchemaFormat.yaml,
    output: Annotated[Path | None, typer.Option(help="File to write; default: print it.")] = None,
) -> None:
    """Write the pipeline's schema rules as a pandera schema to reuse in a notebook."""
    from ml_platform.contracts import ContractError, load_for_spec
    from ml_platform.contracts.pandera_schema import export as export_schema
    from ml_platform.ingest.io import write_text

    spec = _spec(pipeline)
    try:
        text = export_schema(load_for_spec(spec), format.value)
    except ContractError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    except ImportError as exc:  # pandera's to_script formats the script with black
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    if output is None:
        typer.echo(text, nl=False)
        return
    write_text(text, output)
    console.print(f"wrote the pandera schema of '{pipeline}' ({format.value}) to {output}")
