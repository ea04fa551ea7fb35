"""Where each entry of an old HELM cache shard belongs now.

Before HELM PR #1903 a response was cached in the shard of the model's creator (`meta`); since
then, in the shard of the deployment's host (`together`). An entry is routed by the `model` and
`engine` strings of its key, compared with the names the catalog knows for the models and
deployments named after the entry's own shard (its candidates). The rules are pure functions of
a `ShardRouting`; only `catalog_router` reads the catalog, and each model's target host comes
from the catalog's resolution engine, pins and policy applied.
"""

from __future__ import annotations

import json
import json.scanner
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple, cast

from catalog.cache.aliases import load_aliases
from catalog.db.rows import decode_json
from catalog.errors import CacheMigrationError

if TYPE_CHECKING:
    from catalog.db.connection import CatalogConnection
    from catalog.resolve.engine import ResolutionEngine

OutcomeKind = Literal["move", "stay", "unrouted"]
CandidateKind = Literal["model", "deployment"]
_MEMO_LIMIT = 65_536
_NAMES_IN_REASON = 3


@dataclass(frozen=True)
class Outcome:
    """What happens to an entry: `move` to `host`, `stay` in its shard, or `unrouted`."""

    kind: OutcomeKind
    host: str | None = None
    reason: str = ""


class KeyIdentifiers(NamedTuple):
    """What routing reads in a cache key: its `model`/`engine` strings, and `tokenizer`.

    A tuple rather than a dataclass: one is built per cache entry, millions per run.
    """

    identifiers: tuple[str, ...]
    has_tokenizer: bool


@dataclass(frozen=True)
class Candidate:
    """A model or deployment named after the shard, with the strings that identify it."""

    name: str
    kind: CandidateKind
    target: str | None
    match_strings: frozenset[str]


@dataclass(frozen=True)
class DeploymentNames:
    """What a deployment contributes to matching: its names and its client's string args."""

    name: str
    engine: str
    model_name: str
    host: str
    arg_strings: tuple[str, ...]


NO_IDENTIFIERS: Final = KeyIdentifiers((), False)
STAY_TOKENIZER: Final = Outcome("stay", reason="a tokenizer request")
STAY_NO_CANDIDATES: Final = Outcome(
    "stay", reason="no model or deployment of the catalog is named after this shard"
)


_scan_json: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(
    cast(Any, json.JSONDecoder())
)
_JSON_SPACE = " \t\n\r"


def _parse_json(text: str) -> Any:
    """`json.loads(text)`, calling its C scanner directly: one call per cache entry.

    Raises ValueError as json.loads does (also for text json.loads would accept only after
    skipping leading whitespace, which is then left to json.loads itself).
    """
    if text[:1] in _JSON_SPACE:
        return json.loads(text)
    try:
        value, end = _scan_json(text, 0)
    except StopIteration as error:
        raise ValueError("not JSON") from error
    if end != len(text) and text[end:].strip(_JSON_SPACE):
        raise ValueError("extra data after the JSON value")
    return value


def key_identifiers(key: str) -> KeyIdentifiers:
    """The identifiers of a cache key (HELM's `json.dumps(request, sort_keys=True)`)."""
    if not isinstance(key, str):
        return NO_IDENTIFIERS  # a BLOB key (not HELM's): it names nothing
    try:
        request = _parse_json(key)
    except (ValueError, RecursionError):
        return NO_IDENTIFIERS
    if not isinstance(request, dict):
        return NO_IDENTIFIERS
    model, engine = request.get("model"), request.get("engine")
    if isinstance(model, str):
        identifiers: tuple[str, ...] = (model, engine) if isinstance(engine, str) else (model,)
    else:
        identifiers = (engine,) if isinstance(engine, str) else ()
    return KeyIdentifiers(identifiers, "tokenizer" in request)


def string_values(value: Any) -> Iterator[str]:
    """Every string value in a JSON-like structure, at any depth (mapping keys excluded)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from string_values(item)
    elif isinstance(value, list):
        for item in value:
            yield from string_values(item)


def _fold(strings: Iterable[str]) -> frozenset[str]:
    return frozenset(s.casefold() for s in strings if s)


def _name_list(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_NAMES_IN_REASON])
    if len(names) > _NAMES_IN_REASON:
        shown += f" and {len(names) - _NAMES_IN_REASON} more"
    return shown


class ShardRouting:
    """The routing rules of one shard: its candidates and what each entry becomes."""

    def __init__(
        self,
        shard: str,
        candidates: Sequence[Candidate],
        name_problem: Callable[[str], str | None] = lambda _name: None,
    ) -> None:
        self.shard = shard
        self.candidates = tuple(candidates)
        self._name_problem = name_problem
        index: dict[str, list[int]] = {}
        for position, candidate in enumerate(self.candidates):
            for string in candidate.match_strings:
                index.setdefault(string, []).append(position)
        self._index = {string: tuple(positions) for string, positions in index.items()}
        self._fallback = self._without_match()

    def route(self, key: KeyIdentifiers) -> Outcome:
        """Rules 1-4: tokenizer requests stay, then the matched candidates, then the shard."""
        if key.has_tokenizer:
            return STAY_TOKENIZER
        if not self.candidates:
            return STAY_NO_CANDIDATES
        found = self.matches(key)
        if not found:
            return self._fallback
        untargeted = [c.name for c in found if c.target is None]
        if untargeted:
            return Outcome(
                "unrouted", reason=f"matches {_name_list(untargeted)}, which has no deployment"
            )
        hosts = sorted({c.target for c in found if c.target is not None})
        if len(hosts) > 1:
            return Outcome(
                "unrouted",
                reason=f"matches {_name_list([c.name for c in found])}, "
                f"served by several hosts ({', '.join(hosts)})",
            )
        return self._to(hosts[0])

    def matches(self, key: KeyIdentifiers) -> list[Candidate]:
        """The candidates an entry's identifiers name (an identifier, or its last `/`
        segment, is one of their match strings, ignoring case), in candidate order."""
        matched: set[int] = set()
        for identifier in key.identifiers:
            folded = identifier.casefold()
            matched.update(self._index.get(folded, ()))
            matched.update(self._index.get(folded.rpartition("/")[2], ()))
        return [self.candidates[i] for i in sorted(matched)]

    def likely_outcome(self) -> Outcome | None:
        """What nearly every entry becomes, if all the shard's candidates lead to one place.

        A guess, from the rules alone: it lets a migration start copying a whole shard while
        its keys are still being routed. The routed keys decide; a wrong guess costs only the
        copy it started.
        """
        if not self.candidates:
            return STAY_NO_CANDIDATES
        targets = {candidate.target for candidate in self.candidates}
        if len(targets) == 1 and None not in targets:
            return self._fallback
        return None

    def _without_match(self) -> Outcome:
        hosts = sorted({c.target for c in self.candidates if c.target is not None})
        if len(hosts) == 1:
            return self._to(hosts[0])
        if not hosts:
            return Outcome(
                "unrouted",
                reason="matches nothing, and nothing named after the shard has a deployment",
            )
        return Outcome(
            "unrouted",
            reason=f"matches nothing, and the shard's models are served by several hosts "
            f"({_name_list(hosts)})",
        )

    def _to(self, host: str) -> Outcome:
        if host == self.shard:
            return Outcome("stay", host=host, reason="already in its host's shard")
        problem = self._name_problem(host)
        if problem is not None:
            return Outcome("unrouted", reason=f"host {host!r} refused as a shard name: {problem}")
        return Outcome("move", host=host)


def build_shard_routing(
    shard: str,
    models: Sequence[tuple[str, str]],
    model_deployments: Sequence[DeploymentNames],
    shard_deployments: Sequence[DeploymentNames],
    targets: Mapping[str, str | None],
    aliases: Mapping[str, Sequence[str]] | None = None,
    name_problem: Callable[[str], str | None] = lambda _name: None,
) -> ShardRouting:
    """The candidates of `shard`: models named `shard/...`, deployments named `shard/...`.

    `models` are (name, engine) pairs, `model_deployments` every deployment of those models,
    `targets` each model's host, `aliases` extra identifiers by model or deployment name.
    """
    prefix = f"{shard}/"
    aliases = aliases or {}
    by_model: dict[str, list[DeploymentNames]] = {}
    for deployment in model_deployments:
        by_model.setdefault(deployment.model_name, []).append(deployment)
    candidates: list[Candidate] = []
    for name, engine in models:
        if not name.startswith(prefix):
            continue
        strings = [name, engine, *aliases.get(name, ())]
        for deployment in by_model.get(name, ()):
            strings += [deployment.name, deployment.engine, *deployment.arg_strings]
            strings += aliases.get(deployment.name, ())
        candidates.append(Candidate(name, "model", targets.get(name), _fold(strings)))
    for deployment in shard_deployments:
        if not deployment.name.startswith(prefix):
            continue
        strings = [deployment.name, deployment.engine, *deployment.arg_strings]
        strings += aliases.get(deployment.name, ())
        candidates.append(Candidate(deployment.name, "deployment", shard, _fold(strings)))
    return ShardRouting(shard, candidates, name_problem)


class Router:
    """Routes the entries of any shard, building each shard's rules on first use.

    A move must be final: an entry sent to host H must stay there when H's own entries are
    routed, or a second run (or a re-run after a crash, or an earlier position of H in the
    order of shards) would move it again. An entry whose move H's rules would undo or continue
    is therefore unrouted, with that reason.
    """

    def __init__(self, load: Callable[[str], ShardRouting]) -> None:
        self._load = load
        self._routings: dict[str, ShardRouting] = {}
        self._memo: dict[tuple[str, KeyIdentifiers], Outcome] = {}

    def routing(self, shard: str) -> ShardRouting:
        routing = self._routings.get(shard)
        if routing is None:
            routing = self._routings[shard] = self._load(shard)
        return routing

    def route(self, shard: str, key: str) -> Outcome:
        identifiers = key_identifiers(key)
        memo_key = (shard, identifiers)
        try:
            return self._memo[memo_key]
        except KeyError:
            pass
        outcome = self._route(shard, identifiers)
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()
        self._memo[memo_key] = outcome
        return outcome

    def _route(self, shard: str, identifiers: KeyIdentifiers) -> Outcome:
        outcome = self.routing(shard).route(identifiers)
        if outcome.kind == "move" and outcome.host is not None:
            onward = self.routing(outcome.host).route(identifiers)
            if onward.kind == "move":
                return Outcome(
                    "unrouted",
                    reason=f"routes to {outcome.host}, whose own rules would move it on to "
                    f"{onward.host}",
                )
        return outcome


# Reading the rules from the catalog ------------------------------------------------------------


def _deployment_names(rows: Iterable[tuple[Any, ...]]) -> list[DeploymentNames]:
    result = []
    for name, engine, model_name, host, client_args in rows:
        args = decode_json(client_args) if client_args else None
        result.append(
            DeploymentNames(
                str(name), str(engine), str(model_name), str(host), tuple(string_values(args))
            )
        )
    return result


def catalog_router(
    connection: CatalogConnection,
    engine: ResolutionEngine,
    *,
    policy: str | None = None,
    aliases: str | os.PathLike[str] | None = None,
    name_problem: Callable[[str], str | None] = lambda _name: None,
) -> tuple[Router, str]:
    """A router over the catalog's models and deployments, and the policy it applies."""
    if connection.execute("SELECT 1 FROM models LIMIT 1").fetchone() is None:
        raise CacheMigrationError(
            "the catalog is empty, so no entry could be routed: run `catalog sync` first "
            "(or give --db the synced catalog)"
        )
    chosen = engine.policy_in_force(policy)[0]
    targets = engine.default_hosts(chosen)
    alias_names = load_aliases(connection, aliases) if aliases is not None else {}

    def load(shard: str) -> ShardRouting:
        models = connection.execute(
            "SELECT name, engine FROM models WHERE creator_prefix = ? ORDER BY position", (shard,)
        ).fetchall()
        model_deployments = _deployment_names(
            connection.execute(
                "SELECT d.name, d.engine, d.model_name, d.host_organization, d.client_args "
                "FROM deployments AS d JOIN models AS m ON m.name = d.model_name "
                "WHERE m.creator_prefix = ? ORDER BY d.position",
                (shard,),
            )
        )
        shard_deployments = _deployment_names(
            connection.execute(
                "SELECT name, engine, model_name, host_organization, client_args "
                "FROM deployments WHERE host_organization = ? ORDER BY position",
                (shard,),
            )
        )
        return build_shard_routing(
            shard, models, model_deployments, shard_deployments, targets, alias_names, name_problem
        )

    return Router(load), chosen
