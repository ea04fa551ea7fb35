"""The one place that splits `org/engine` names.

HELM derives a deployment's host (`together` of `together/llama-2-7b`) and a model's creator
prefix from the name in several places; here it is done once, and the importer stores the parts
as columns so SQL never has to split strings.
"""

from __future__ import annotations

import re

from catalog.errors import preview

# The host part names a cache shard file (`<host>.sqlite`), and file names stop at 255 bytes.
MAX_NAME_LENGTH = 200
# Printable, no whitespace, no quotes, no backslash; exactly one '/' between two non-empty parts.
_PART = r"[A-Za-z0-9][A-Za-z0-9._:+@\-]*"
NAME_PATTERN = re.compile(rf"{_PART}/{_PART}")


def split_name(name: str) -> tuple[str, str]:
    """`together/llama-2-7b` -> (`together`, `llama-2-7b`)."""
    organization, _, engine = name.partition("/")
    return organization, engine


def is_valid_name(name: str) -> bool:
    return len(name) <= MAX_NAME_LENGTH and NAME_PATTERN.fullmatch(name) is not None


def name_problem(name: str) -> str | None:
    """Why a name is not of the `org/engine` form, or None if it is."""
    if is_valid_name(name):
        return None
    if name == "":
        return "the name is empty"
    shown = repr(name) if len(name) <= MAX_NAME_LENGTH else preview(name)
    if len(name) > MAX_NAME_LENGTH:
        return f"{shown} is longer than {MAX_NAME_LENGTH} characters"
    if name.count("/") != 1:
        return f"{shown} is not of the form org/engine (exactly one '/')"
    if any(ch.isspace() for ch in name):
        return f"{shown} contains whitespace"
    return (
        f"{shown} is not of the form org/engine: each part starts with a letter or digit "
        "and holds only ASCII letters, digits and . _ - : + @"
    )


# Model name prefixes for which HELM (0.5.7 and later; this list is 0.5.16's) generates a
# deployment at run time when its configs define none: `openai/x` runs as deployment `openai/x`.
HELM_GENERATED_PREFIXES = (
    "anthropic/",
    "cohere/",
    "google/",
    "huggingface/",
    "huggingface-inference-providers/",
    "litellm/",
    "mistralai/",
    "openai/",
    "openrouter/",
    "together/",
    "writer/",
    "xai/",
)


def helm_generates(model: str) -> bool:
    """Whether HELM would generate a deployment for `model` if none were configured."""
    return model.startswith(HELM_GENERATED_PREFIXES)
