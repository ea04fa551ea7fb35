"""`catalog check`: what in a synced catalog deserves a person's attention.

A sync already refuses broken sources; these findings are about a catalog that loaded but may
not run as intended (a model HELM only knows as a placeholder, a pin that now points at another
model's deployment). Each finding has a stable `code` for scripts, and the file:line to fix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from catalog.errors import Finding, Severity

if TYPE_CHECKING:
    from catalog.db.connection import CatalogConnection


@dataclass(frozen=True)
class CheckReport:
    """Findings, errors first; `has_errors` decides the exit code of `catalog check`."""

    findings: list[Finding] = field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        return any(f.severity is Severity.ERROR for f in self.findings)

    def counts(self) -> dict[str, int]:
        counts = {str(severity): 0 for severity in Severity}
        for finding in self.findings:
            counts[finding.severity] += 1
        return counts

    def by_code(self, code: str) -> list[Finding]:
        return [f for f in self.findings if f.code == code]

    def to_json(self) -> dict[str, Any]:
        return {
            "has_errors": self.has_errors,
            "counts": self.counts(),
            "findings": [f.to_json() for f in self.findings],
        }


def _models_without_deployments(connection: CatalogConnection) -> list[Finding]:
    """No run can use such a model, unless HELM generates a deployment for it at run time."""
    findings = []
    for name, file, line in connection.execute(
        "SELECT m.name, m.source_file, m.source_line FROM models AS m "
        "WHERE NOT EXISTS (SELECT 1 FROM deployments AS d WHERE d.model_name = m.name) "
        "ORDER BY m.position"
    ).fetchall():
        # HELM's own generators when crfm-helm is importable, else its known prefixes.
        from catalog.helm.generators import helm_generated_deployment

        generated = helm_generated_deployment(name)
        if generated is not None:
            severity = Severity.INFO
            message = f"model {name!r} has no deployment in the catalog; {generated.note}"
        else:
            severity = Severity.WARNING
            message = f"model {name!r} has no deployment, so no run can use it"
        findings.append(
            Finding(severity, "model-without-deployments", message, name, file=file, line=line)
        )
    return findings


def check_catalog(connection: CatalogConnection) -> CheckReport:
    findings: list[Finding] = []
    with connection.read():
        checks = (
            _foreign_key_violations,
            _broken_pins,
            *_ROW_CHECKS[:2],  # placeholders
            _models_without_deployments,
            *_ROW_CHECKS[2:],
        )
        for check in checks:
            findings.extend(check(connection))
    findings.sort(key=lambda f: f.severity.rank)
    return CheckReport(findings)


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _foreign_key_violations(connection: CatalogConnection) -> list[Finding]:
    """Rows whose reference points at nothing; possible only if someone wrote around a sync."""
    findings = []
    for table, rowid, parent, fk_id in connection.foreign_key_violations():
        # Table and column names come from the database's own schema, never from the user.
        columns = connection.foreign_key_columns(table, fk_id)
        key = None
        if columns and rowid is not None:
            found = connection.execute(
                f"SELECT {_quoted(columns[0])} FROM {_quoted(table)} WHERE rowid = ?", (rowid,)
            ).fetchone()
            key = None if found is None else found[0]
        what = f"{table}.{columns[0]} = {key!r}" if columns else f"a row of {table}"
        findings.append(
            Finding(
                Severity.ERROR,
                "foreign-key-violation",
                f"{what} (row {rowid}) refers to a missing row of {parent}; "
                "run `catalog sync` to rebuild the catalog from its sources",
                subject=str(key) if key is not None else table,
            )
        )
    return findings


def _broken_pins(connection: CatalogConnection) -> list[Finding]:
    rows = connection.execute(
        "SELECT p.model_name, p.deployment_name, d.model_name FROM pins AS p "
        "LEFT JOIN deployments AS d ON d.name = p.deployment_name "
        "WHERE d.name IS NULL OR d.model_name != p.model_name ORDER BY p.model_name"
    ).fetchall()
    findings = []
    for model, deployment, served in rows:
        reason = (
            f"deployment {deployment!r} no longer exists"
            if served is None
            else f"deployment {deployment!r} serves {served!r}, not this model"
        )
        findings.append(
            Finding(
                Severity.ERROR,
                "broken-pin",
                f"model {model!r} is pinned to {deployment!r}, but {reason}; "
                f"unpin it or pin another deployment of {model!r}",
                subject=model,
            )
        )
    return findings


@dataclass(frozen=True)
class _RowCheck:
    """A check that is one query: a finding per row (name, file, line, then `message`'s
    extras)."""

    severity: Severity
    code: str
    query: str
    message: Callable[..., str]

    def __call__(self, connection: CatalogConnection) -> list[Finding]:
        return [
            Finding(
                self.severity, self.code, self.message(name, *extra), name, file=file, line=line
            )
            for name, file, line, *extra in connection.execute(self.query).fetchall()
        ]


_ROW_CHECKS = (
    _RowCheck(
        Severity.WARNING,
        "placeholder-model",
        "SELECT m.name, m.source_file, m.source_line, "
        "(SELECT d.name FROM deployments AS d WHERE d.model_name = m.name "
        " ORDER BY d.position LIMIT 1) "
        "FROM models AS m WHERE m.is_placeholder ORDER BY m.position",
        lambda name, deployment: (
            f"model {name!r} has no metadata (deployment {deployment!r} serves it); it stands "
            "as a placeholder with creator Unknown and generic text tags: add it to "
            "model_metadata.yaml"
        ),
    ),
    _RowCheck(
        Severity.WARNING,
        "placeholder-tokenizer",
        "SELECT t.name, t.source_file, t.source_line, "
        "(SELECT d.name FROM deployments AS d WHERE d.tokenizer_name = t.name "
        " ORDER BY d.position LIMIT 1) "
        "FROM tokenizers AS t WHERE t.is_placeholder ORDER BY t.position",
        lambda name, deployment: (
            f"tokenizer {name!r} has no config (deployment {deployment!r} uses it): add it to "
            "tokenizer_configs.yaml or fix the deployment's tokenizer_name"
        ),
    ),
    _RowCheck(
        Severity.WARNING,
        "deployment-named-like-another-model",
        "SELECT d.name, d.source_file, d.source_line, d.model_name FROM deployments AS d "
        "JOIN models AS m ON m.name = d.name WHERE d.model_name != d.name ORDER BY d.position",
        lambda name, served: (
            f"deployment {name!r} serves model {served!r}, but a model is named {name!r} too: "
            f"HELM's `first` rule runs model {name!r} on this deployment of another model; "
            "rename the deployment or set its model_name"
        ),
    ),
    _RowCheck(
        Severity.WARNING,
        "pin-to-deprecated",
        "SELECT p.model_name, d.source_file, d.source_line, p.deployment_name FROM pins AS p "
        "JOIN deployments AS d ON d.name = p.deployment_name WHERE d.deprecated "
        "ORDER BY p.model_name",
        lambda name, deployment: (
            f"model {name!r} is pinned to {deployment!r}, which is deprecated; the pin still "
            f"wins (also over --ignore-deprecated): pin another deployment or unpin {name!r}"
        ),
    ),
    _RowCheck(
        Severity.WARNING,
        "all-deployments-deprecated",
        "SELECT m.name, m.source_file, m.source_line, "
        "(SELECT count(*) FROM deployments AS d WHERE d.model_name = m.name) FROM models AS m "
        "WHERE EXISTS (SELECT 1 FROM deployments AS d WHERE d.model_name = m.name) "
        "AND NOT EXISTS (SELECT 1 FROM deployments AS d "
        "WHERE d.model_name = m.name AND NOT d.deprecated) ORDER BY m.position",
        lambda name, count: (
            f"model {name!r} has {count} deployment{'s' if count != 1 else ''}, all "
            "deprecated: a run of it uses a deprecated deployment"
        ),
    ),
    _RowCheck(
        Severity.INFO,
        "unused-tokenizer",
        "SELECT t.name, t.source_file, t.source_line FROM tokenizers AS t "
        "WHERE NOT EXISTS (SELECT 1 FROM deployments AS d WHERE d.tokenizer_name = t.name) "
        "ORDER BY t.position",
        lambda name: f"no deployment uses tokenizer {name!r}",
    ),
)
