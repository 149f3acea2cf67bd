"""A self-contained HTML report per validation: every schema (pandera) and distribution (Great
Expectations) rule in one table, linked from Dagster beside GX's own Data Docs."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path

from ml_platform.contracts.engine import ContractResult
from ml_platform.contracts.results import RuleResult
from ml_platform.ingest.io import write_text

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ddd;padding:4px 8px;
text-align:left;font-size:14px}th{background:#f4f4f4}.fail{color:#b00020;font-weight:600}
.quarantine{color:#b36b00;font-weight:600}.pass{color:#1b7f3b}"""


def _row(r: RuleResult) -> str:
    status = "pass" if r.passed else ("quarantine" if r.policy == "quarantine" else "fail")
    cells = [
        f'<span class="{status}">{status.upper()}</span>',
        r.kind,
        r.rule,
        r.column or "",
        f"{r.failing_rows:,}",
        f"{r.failing_fraction:.4%}",
        ", ".join(str(v) for v in r.sample),
        r.message,
    ]
    return (
        "<tr>"
        + "".join(f"<td>{html.escape(str(c)) if i else c}</td>" for i, c in enumerate(cells))
        + "</tr>"
    )


def render(pipeline: str, source: str, result: ContractResult) -> str:
    verdict = "PASSED" if result.passed else "FAILED"
    ordered = sorted(result.rules, key=lambda r: (r.passed, r.kind, r.rule, r.column or ""))
    failed = len(result.failures)
    docs = ""
    if result.data_docs is not None:
        page = result.data_docs.page or result.data_docs.index
        docs = (
            f' &middot; Great Expectations Data Docs: <a href="{html.escape(page.as_uri())}">'
            f"{html.escape(result.suite or 'suite')}</a>"
        )
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>{html.escape(pipeline)} validation {verdict}</title><style>{_STYLE}</style></head><body>
<h1>Data contract of <code>{html.escape(pipeline)}</code>: <span class="{
        "pass" if result.passed else "fail"
    }">{verdict}</span></h1>
<p>Source: <code>{html.escape(source)}</code> &middot; checked {datetime.now(UTC):%Y-%m-%d %H:%M:%S}
UTC &middot; {result.rows_in:,} rows in, {result.rows_in - result.rows_quarantined:,} valid,
{result.rows_quarantined:,} quarantined &middot; {len(result.rules)} rules, {failed} failing
{docs}</p>
<table><tr><th>status</th><th>kind</th><th>rule</th><th>column</th><th>failing rows</th>
<th>fraction</th><th>sample</th><th>message</th></tr>
{"".join(_row(r) for r in ordered)}</table></body></html>"""


def write_report(
    reports_dir: Path, pipeline: str, source: str, result: ContractResult, tag: str
) -> Path:
    """Write ``<reports>/<pipeline>/validation/<time>-<tag>.html`` atomically."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    target = reports_dir / pipeline / "validation" / f"{stamp}-{tag}.html"
    return write_text(render(pipeline, source, result), target)
