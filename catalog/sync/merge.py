"""Merging the layers of a sync into the catalog they describe.

Every file is parsed and its entries checked (catalog.sync.validation); then, by name, later
definitions win. Models and tokenizers keep the order of their first appearance; a deployment
takes the place of the definition that won (an override in a later layer moves after the
earlier layers, as in HELM's list) and remembers where its name first appeared. A deployment
whose model or tokenizer nobody defined gets a placeholder, as HELM makes one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from catalog.db.rows import content_of
from catalog.db.schema import DeploymentInfo, ModelInfo, ShadowedDeployment, TokenizerInfo
from catalog.errors import Finding, Severity, suggest
from catalog.names import split_name
from catalog.sync.sources import TOP_LEVEL_KEYS, SourceFile
from catalog.sync.validation import (
    EntryChecker,
    check_deployment,
    check_model,
    check_tokenizer,
    type_name,
)
from catalog.sync.yaml_loader import YamlLimits, YamlLoadError, parse_yaml

PLACEHOLDER_TAGS = ("TEXT_MODEL_TAG", "FULL_FUNCTIONALITY_TEXT_MODEL_TAG")
_CHECKS: dict[str, Callable[[Any, EntryChecker], Any]] = {
    "models": check_model,
    "deployments": check_deployment,
    "tokenizers": check_tokenizer,
}


@dataclass(frozen=True)
class _Entry:
    """A checked entry and the layer (source directory) it came from."""

    record: Any
    layer: int


@dataclass
class MergedCatalog:
    """The union of the sources, by table, in catalog order, and the warnings of the merge."""

    models: dict[str, ModelInfo] = field(default_factory=dict)
    tokenizers: dict[str, TokenizerInfo] = field(default_factory=dict)
    deployments: dict[str, DeploymentInfo] = field(default_factory=dict)
    shadowed: dict[int, ShadowedDeployment] = field(default_factory=dict)
    """Earlier copies of deployments defined again later, by position: HELM's list keeps them."""
    warnings: list[Finding] = field(default_factory=list)

    @property
    def tags(self) -> list[str]:
        """Every tag, in order of first use."""
        return list(dict.fromkeys(tag for model in self.models.values() for tag in model.tags))


def merge_sources(
    files: Iterable[SourceFile], limits: YamlLimits
) -> tuple[MergedCatalog, list[Finding]]:
    """Parse, check and merge every file; returns the merged catalog and the errors."""
    diagnostics: list[Finding] = []
    entries: dict[str, list[_Entry]] = {kind: [] for kind in _CHECKS}
    for source in files:
        entries[source.kind].extend(_entries_of(source, limits, diagnostics))

    merged = MergedCatalog()
    for name, (model, first, _last) in _merge_kind(entries["models"], "model", diagnostics).items():
        merged.models[name] = replace(model, position=first)
    tokenizers = _merge_kind(entries["tokenizers"], "tokenizer", diagnostics)
    for name, (tokenizer, first, _last) in tokenizers.items():
        merged.tokenizers[name] = replace(tokenizer, position=first)
    deployments = _merge_kind(entries["deployments"], "deployment", diagnostics)
    won = {last for _record, _first, last in deployments.values()}
    for position, entry in enumerate(entries["deployments"]):
        if position not in won:
            copy: DeploymentInfo = entry.record
            merged.shadowed[position] = ShadowedDeployment(
                position=position,
                name=copy.name,
                model_name=copy.model_name,
                deprecated=copy.deprecated,
                source_file=copy.source_file,
                source_line=copy.source_line,
            )
    next_model_position = len(entries["models"])
    defined_models = list(merged.models)
    next_tokenizer_position = len(entries["tokenizers"])
    for deployment, first, last in sorted(deployments.values(), key=lambda won: won[2]):
        if deployment.model_name not in merged.models:
            merged.models[deployment.model_name] = _placeholder_model(
                deployment, next_model_position, diagnostics, defined_models
            )
            next_model_position += 1
        tokenizer = deployment.tokenizer_name
        if tokenizer and tokenizer not in merged.tokenizers:
            merged.tokenizers[tokenizer] = _placeholder_tokenizer(
                deployment, tokenizer, next_tokenizer_position, diagnostics
            )
            next_tokenizer_position += 1
        merged.deployments[deployment.name] = replace(
            deployment, position=last, first_position=first
        )
    merged.warnings = [d for d in diagnostics if d.severity is Severity.WARNING]
    return merged, [d for d in diagnostics if d.severity is Severity.ERROR]


def _entries_of(source: SourceFile, limits: YamlLimits, diagnostics: list[Finding]) -> list[_Entry]:
    """The checked entries of one file, in file order."""
    file = source.display
    try:
        loaded = parse_yaml(source.data, file, limits)
    except YamlLoadError as error:
        diagnostics.append(error.diagnostic)
        return []
    diagnostics.extend(loaded.warnings)
    document = loaded.document
    top_key = TOP_LEVEL_KEYS[source.kind]
    if document is None:
        diagnostics.append(
            Finding(
                Severity.WARNING,
                "empty-file",
                f"the file defines nothing (no {top_key!r})",
                file=file,
                line=1,
            )
        )
        return []
    if not isinstance(document, dict):
        diagnostics.append(
            Finding(
                Severity.ERROR,
                "wrong-type",
                f"the file must be a mapping with a {top_key!r} list at the top",
                file=file,
                line=getattr(document, "line", 1),
            )
        )
        return []
    key_lines: dict[Any, int] = getattr(document, "key_lines", {})
    checker = EntryChecker(file)
    for key in document:
        if key != top_key:
            checker.warning(
                "unknown-top-level-key",
                f"unknown top-level key {key!r} (this file defines {top_key!r}); it is ignored",
                key_lines.get(key, 1),
            )
    entries = document.get(top_key)
    if top_key not in document:
        checker.warning("empty-file", f"the file has no {top_key!r} list", 1)
        entries = []
    elif entries is None:
        checker.warning(
            "empty-file",
            f"{top_key!r} is empty (null): the file defines nothing; write `{top_key}: []` "
            "to say so",
            key_lines.get(top_key, 1),
        )
        entries = []
    elif not isinstance(entries, list):
        checker.error(
            "wrong-type",
            f"{top_key!r} must be a list of entries, not {type_name(entries)}",
            key_lines.get(top_key, 1),
        )
        entries = []
    check = _CHECKS[source.kind]
    records: list[_Entry] = []
    item_lines: list[int] = getattr(entries, "item_lines", [])
    for index, entry in enumerate(entries):
        checker.entry_line = item_lines[index] if index < len(item_lines) else None
        record = check(entry, checker)
        if record is not None:
            records.append(_Entry(record, source.layer))
    diagnostics.extend(checker.finish())
    return records


def _merge_kind(
    entries: list[_Entry], noun: str, diagnostics: list[Finding]
) -> dict[str, tuple[Any, int, int]]:
    """name -> (the definition that won, first position, position of the winner).

    Later definitions win; a name defined twice in one layer is a warning. `entries` are in
    catalog order (layer, then file order); positions index into it.
    """
    merged: dict[str, tuple[_Entry, int, int]] = {}
    for position, entry in enumerate(entries):
        name = entry.record.name
        previous = merged.get(name)
        if previous is None:
            merged[name] = (entry, position, position)
            continue
        earlier = previous[0]
        if earlier.layer == entry.layer:
            diagnostics.append(_duplicate_warning(noun, earlier.record, entry.record))
        merged[name] = (entry, previous[1], position)
    return {name: (won.record, first, last) for name, (won, first, last) in merged.items()}


def _duplicate_warning(noun: str, earlier: Any, later: Any) -> Finding:
    identical = content_of(earlier) == content_of(later)
    where = f"lines {earlier.source_line} and {later.source_line}"
    if earlier.source_file != later.source_file:
        where = f"{earlier.source_file}:{earlier.source_line} and line {later.source_line}"
    verdict = "the copies are identical" if identical else "the copies differ; the later one wins"
    return Finding(
        Severity.WARNING,
        "duplicate-name",
        f"{noun} {later.name!r} is defined twice, at {where}; {verdict}",
        file=later.source_file,
        line=later.source_line,
    )


def _placeholder_model(
    deployment: DeploymentInfo,
    position: int,
    diagnostics: list[Finding],
    defined_models: list[str],
) -> ModelInfo:
    """HELM's stand-in for a model with no metadata: creator Unknown, generic text tags. A
    name close to a defined model is most likely a typo, and the warning says which."""
    name = deployment.model_name
    prefix, engine = split_name(name)
    close = suggest(name, defined_models, limit=1)
    typo = f"; did you mean {close[0]}?" if close else ""
    diagnostics.append(
        Finding(
            Severity.WARNING,
            "placeholder-model",
            f"deployment {deployment.name!r} serves model {name!r}, which has no metadata; a "
            "placeholder model was created (creator Unknown, tags "
            + ", ".join(PLACEHOLDER_TAGS)
            + ")"
            + typo,
            file=deployment.source_file,
            line=deployment.source_line,
        )
    )
    return ModelInfo(
        name=name,
        creator_prefix=prefix,
        engine=engine,
        creator_organization_name="Unknown",
        display_name=name,
        description=name,
        access="open",
        release_date=None,
        num_parameters=None,
        is_placeholder=True,
        source_file=deployment.source_file,
        source_line=deployment.source_line,
        position=position,
        tags=PLACEHOLDER_TAGS,
    )


def _placeholder_tokenizer(
    deployment: DeploymentInfo, name: str, position: int, diagnostics: list[Finding]
) -> TokenizerInfo:
    diagnostics.append(
        Finding(
            Severity.WARNING,
            "placeholder-tokenizer",
            f"deployment {deployment.name!r} uses tokenizer {name!r}, which has no config; a "
            "placeholder tokenizer was created",
            file=deployment.source_file,
            line=deployment.source_line,
        )
    )
    return TokenizerInfo(
        name=name,
        class_name=None,
        args=None,
        end_of_text_token=None,
        prefix_token=None,
        is_placeholder=True,
        source_file=deployment.source_file,
        source_line=deployment.source_line,
        position=position,
    )
