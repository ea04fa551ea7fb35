"""The `model=` groups of HELM's ModelRunExpander, answered with SQL over model tags.

HELM (src/helm/benchmark/run_expander.py) builds each group from model tags, then:
- `ablation_<group>` is the group's models that also carry ABLATION_MODEL_TAG, and `ablation`
  is every ablation model; the plain groups keep their ablation models (HELM does not remove
  them);
- every group, ablation ones included, drops models tagged DEPRECATED_MODEL_TAG or
  UNSUPPORTED_MODEL_TAG.
Two deliberate differences: members come in catalog order (HELM's ablation groups come out of
a set, in no fixed order), and `text_code` (the text models, then the code models) lists a model
tagged both only once (HELM's list concatenation would run it twice). The fixed lists HELM keeps
for a few old scenarios (`biomedical`, `summarization_zs`, ...) are groups here too, with the
same exclusions; so are the two model names HELM's table lists as keys of their own
(`ai21/j1-jumbo`, `openai/curie`): `model=openai/curie` is HELM's one-model group, which is empty
when the model is tagged deprecated (zero runs, no error), and `ablation_openai/curie` is empty
unless the model is an ablation model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from catalog.db.connection import CatalogConnection

ABLATION_TAG = "ABLATION_MODEL_TAG"
EXCLUDED_TAGS = ("DEPRECATED_MODEL_TAG", "UNSUPPORTED_MODEL_TAG")


@dataclass(frozen=True)
class GroupRule:
    """A group is either every model (`all`), models with any of `tags`, or a fixed list."""

    tags: tuple[str, ...] = ()
    fixed: tuple[str, ...] = ()
    everything: bool = False


BASE_GROUPS: dict[str, GroupRule] = {
    "all": GroupRule(everything=True),
    "ai21/j1-jumbo": GroupRule(fixed=("ai21/j1-jumbo",)),
    "openai/curie": GroupRule(fixed=("openai/curie",)),
    "text": GroupRule(tags=("TEXT_MODEL_TAG",)),
    "code": GroupRule(tags=("CODE_MODEL_TAG",)),
    "text_code": GroupRule(tags=("TEXT_MODEL_TAG", "CODE_MODEL_TAG")),
    "instruction_following": GroupRule(tags=("INSTRUCTION_FOLLOWING_MODEL_TAG",)),
    "full_functionality_text": GroupRule(tags=("FULL_FUNCTIONALITY_TEXT_MODEL_TAG",)),
    "limited_functionality_text": GroupRule(tags=("LIMITED_FUNCTIONALITY_TEXT_MODEL_TAG",)),
    "text_to_image": GroupRule(tags=("TEXT_TO_IMAGE_MODEL_TAG",)),
    "vlm": GroupRule(tags=("VISION_LANGUAGE_MODEL_TAG",)),
    "audiolm": GroupRule(tags=("AUDIO_LANGUAGE_MODEL_TAG",)),
    "summarization_zs": GroupRule(
        fixed=("openai/davinci", "openai/curie", "openai/text-davinci-002", "openai/text-curie-001")
    ),
    "biomedical": GroupRule(fixed=("openai/text-davinci-003",)),
    "interactive_qa": GroupRule(
        fixed=(
            "openai/text-davinci-001",
            "openai/davinci",
            "ai21/j1-jumbo",
            "openai/text-babbage-001",
        )
    ),
    "opinions_qa_openai": GroupRule(
        fixed=(
            "openai/ada",
            "openai/davinci",
            "openai/text-ada-001",
            "openai/text-davinci-001",
            "openai/text-davinci-002",
            "openai/text-davinci-003",
        )
    ),
    "opinions_qa_ai21": GroupRule(
        fixed=("ai21/j1-grande", "ai21/j1-jumbo", "ai21/j1-grande-v2-beta")
    ),
}


def group_names() -> list[str]:
    """Every group name: the base groups, `ablation`, and `ablation_<group>` for each."""
    names = list(BASE_GROUPS)
    names.append("ablation")
    names.extend(f"ablation_{name}" for name in BASE_GROUPS if name != "all")
    return names


GROUP_NAMES = frozenset(group_names())


def is_group(name: str) -> bool:
    return name in GROUP_NAMES


def _base_and_ablation(name: str) -> tuple[GroupRule, bool]:
    if name == "ablation":
        return BASE_GROUPS["all"], True
    if name.startswith("ablation_") and name[len("ablation_") :] in BASE_GROUPS:
        return BASE_GROUPS[name[len("ablation_") :]], True
    return BASE_GROUPS[name], False


def group_members(connection: CatalogConnection, name: str) -> list[str]:
    """The models of group `name`, in HELM's order, without the excluded ones.

    Tag groups list models in catalog order (`text_code`: the text models, then the code models
    not already listed); fixed lists keep HELM's order and may name models the catalog lacks,
    which the caller reports.
    """
    rule, ablation_only = _base_and_ablation(name)
    if rule.everything:
        candidates = [row[0] for row in connection.execute(_ALL_MODELS)]
    elif rule.tags:
        candidates = []
        seen: set[str] = set()
        for tag in rule.tags:
            for model in _with_tags(connection, (tag,)):
                if model not in seen:
                    seen.add(model)
                    candidates.append(model)
    else:
        candidates = list(rule.fixed)
    excluded = set(_with_tags(connection, EXCLUDED_TAGS))
    ablation = set(_with_tags(connection, (ABLATION_TAG,))) if ablation_only else None
    return [
        model
        for model in candidates
        if model not in excluded and (ablation is None or model in ablation)
    ]


_ALL_MODELS = "SELECT name FROM models ORDER BY position"


def _with_tags(connection: CatalogConnection, tags: tuple[str, ...]) -> list[str]:
    """Models carrying any of `tags`, in catalog order (uses the model_tags tag index)."""
    placeholders = ", ".join("?" * len(tags))
    # One row per (model, tag), so a single tag needs no DISTINCT.
    distinct = "DISTINCT " if len(tags) > 1 else ""
    query = (
        f"SELECT {distinct}m.name, m.position FROM model_tags AS t"
        " JOIN models AS m ON m.name = t.model_name"
        f" WHERE t.tag_name IN ({placeholders}) ORDER BY m.position"
    )
    return [row[0] for row in connection.execute(query, tags)]
