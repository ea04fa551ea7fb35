"""HELM's registry functions, with HELM's names, arguments and return shapes, read from a catalog.

Code written against `helm.benchmark.model_metadata_registry`, `model_deployment_registry` and
`tokenizer_config_registry` can import these instead and read the catalog database (which may
hold several layers, pins and a policy) without loading any YAML. Choose the catalog with
`use_catalog(path_or_catalog)`; by default `Catalog.open()` is used on first call.

Where the catalog knows more than HELM's globals, it answers as the catalog: the default
deployment honours pins and the database's policy setting. Three shapes differ from HELM's
registries on purpose: a name defined twice is listed once (HELM's list keeps both copies), a
placeholder model has no release date (HELM stamps the day it loaded the files), and a date
written unquoted inside spec args is its ISO string (the catalog stores args as JSON).
"""

from __future__ import annotations

import datetime as dt
import os
import warnings
from dataclasses import dataclass, field
from typing import Any

from catalog.api import Catalog
from catalog.db.schema import DeploymentInfo
from catalog.errors import UnknownModelError, UnknownTokenizerError
from catalog.helm.shapes import (
    model_deployment_fields,
    model_metadata_fields,
    tokenizer_config_fields,
)

# HELM's tag constants (helm.benchmark.model_metadata_registry), by the same names.
TEXT_MODEL_TAG = "TEXT_MODEL_TAG"
IMAGE_MODEL_TAG = "IMAGE_MODEL_TAG"
CODE_MODEL_TAG = "CODE_MODEL_TAG"
EMBEDDING_MODEL_TAG = "EMBEDDING_MODEL_TAG"
FULL_FUNCTIONALITY_TEXT_MODEL_TAG = "FULL_FUNCTIONALITY_TEXT_MODEL_TAG"
LIMITED_FUNCTIONALITY_TEXT_MODEL_TAG = "LIMITED_FUNCTIONALITY_TEXT_MODEL_TAG"
CHATML_MODEL_TAG = "CHATML_MODEL_TAG"
OPENAI_CHATGPT_MODEL_TAG = "OPENAI_CHATGPT_MODEL_TAG"
NOVA_MODEL_TAG = "NOVA_MODEL_TAG"
ANTHROPIC_CLAUDE_1_MODEL_TAG = "ANTHROPIC_CLAUDE_1_MODEL_TAG"
ANTHROPIC_CLAUDE_2_MODEL_TAG = "ANTHROPIC_CLAUDE_2_MODEL_TAG"
ANTHROPIC_CLAUDE_3_MODEL_TAG = "ANTHROPIC_CLAUDE_3_MODEL_TAG"
GOOGLE_PALM_2_MODEL_TAG = "GOOGLE_PALM_2_MODEL_TAG"
GOOGLE_GEMINI_MODEL_TAG = "GOOGLE_GEMINI_MODEL_TAG"
GOOGLE_GEMINI_PRO_VISION_V1_TAG = "GOOGLE_GEMINI_PRO_VISION_V1_TAG"
GOOGLE_GEMMA_INSTRUCT_MODEL_TAG = "GOOGLE_GEMMA_INSTRUCT_MODEL_TAG"
BUGGY_TEMP_0_TAG = "BUGGY_TEMP_0_TAG"
ABLATION_MODEL_TAG = "ABLATION_MODEL_TAG"
NO_NEWLINES_TAG = "NO_NEWLINES_TAG"
NLG_PREFIX_TAG = "NLG_PREFIX_TAG"
INSTRUCTION_FOLLOWING_MODEL_TAG = "INSTRUCTION_FOLLOWING_MODEL_TAG"
TEXT_TO_IMAGE_MODEL_TAG = "TEXT_TO_IMAGE_MODEL_TAG"
VISION_LANGUAGE_MODEL_TAG = "VISION_LANGUAGE_MODEL_TAG"
IDEFICS_INSTRUCT_MODEL_TAG = "IDEFICS_INSTRUCT_MODEL_TAG"
IDEFICS_MODEL_TAG = "IDEFICS_MODEL_TAG"
LLAVA_MODEL_TAG = "LLAVA_MODEL_TAG"
OPEN_FLAMINGO_MODEL_TAG = "OPEN_FLAMINGO_MODEL_TAG"
LIMITED_FUNCTIONALITY_VLM_TAG = "LIMITED_FUNCTIONALITY_VLM_TAG"
FULL_FUNCTIONALITY_VLM_TAG = "FULL_FUNCTIONALITY_VLM_TAG"
AUDIO_LANGUAGE_MODEL_TAG = "AUDIO_LANGUAGE_MODEL_TAG"
DEPRECATED_MODEL_TAG = "DEPRECATED_MODEL_TAG"
UNSUPPORTED_MODEL_TAG = "UNSUPPORTED_MODEL_TAG"


class UnknownModelMetadataError(UnknownModelError, ValueError):
    """HELM raises ValueError for a model without metadata; so does this module."""


@dataclass(frozen=True)
class ObjectSpec:
    class_name: str
    args: dict[str, Any] = field(default_factory=dict)


class ClientSpec(ObjectSpec):
    pass


class WindowServiceSpec(ObjectSpec):
    pass


class TokenizerSpec(ObjectSpec):
    pass


@dataclass(frozen=True)
class ModelMetadata:
    name: str
    creator_organization_name: str
    display_name: str
    description: str
    access: str
    release_date: dt.date | None
    tags: list[str] = field(default_factory=list)
    num_parameters: int | None = None
    deployment_names: list[str] | None = None

    @property
    def creator_organization(self) -> str:
        return self.name.split("/")[0]

    @property
    def engine(self) -> str:
        return self.name.split("/")[1]


@dataclass(frozen=True)
class ModelDeployment:
    name: str
    client_spec: ClientSpec
    model_name: str | None = None
    tokenizer_name: str | None = None
    window_service_spec: WindowServiceSpec | None = None
    max_sequence_length: int | None = None
    max_request_length: int | None = None
    max_sequence_and_generated_tokens_length: int | None = None
    deprecated: bool = False
    host_organization: str = ""
    engine: str = ""


@dataclass(frozen=True)
class TokenizerConfig:
    name: str
    tokenizer_spec: TokenizerSpec
    end_of_text_token: str | None = None
    prefix_token: str | None = None


class _CurrentCatalog:
    """The catalog the module-level functions answer from.

    HELM's registry is module-level by HELM's design, so this one piece of process-wide state
    stands for it; everything else lives in the `Catalog` it holds.
    """

    __slots__ = ("catalog",)

    def __init__(self) -> None:
        self.catalog: Catalog | None = None

    def get(self) -> Catalog:
        if self.catalog is None:
            self.catalog = Catalog.open()
        return self.catalog


_CURRENT = _CurrentCatalog()


def use_catalog(path_or_catalog: Catalog | str | os.PathLike[str] | None = None) -> Catalog:
    """Answer from this catalog from now on (a Catalog, or a path / URL to open)."""
    if isinstance(path_or_catalog, Catalog):
        _CURRENT.catalog = path_or_catalog
    else:
        _CURRENT.catalog = Catalog.open(path_or_catalog)
    return _CURRENT.catalog


# model_metadata_registry ---------------------------------------------------------------------


def get_model_metadata(model_name: str) -> ModelMetadata:
    catalog = _CURRENT.get()
    try:
        model = catalog.model(model_name)
    except UnknownModelError as error:
        raise UnknownModelMetadataError(model_name, catalog.model_names()) from error
    return ModelMetadata(
        **model_metadata_fields(model), deployment_names=_deployment_names(catalog, model.name)
    )


def _deployment_names(catalog: Catalog, model: str) -> list[str] | None:
    """HELM's `deployment_names` as its registry leaves it after loading the deployments.

    HELM starts from None, treats None as [model name], and appends each deployment not yet
    listed; so a model served only under its own name keeps None, and the own-name deployment
    is listed only if another deployment came before it.
    """
    names: list[str] | None = None
    deployments = sorted(catalog.deployments(model=model), key=lambda d: d.first_position)
    for deployment in deployments:
        if deployment.name not in (names if names is not None else [model]):
            names = (names or []) + [deployment.name]
    return names


def get_all_models() -> list[str]:
    return _CURRENT.get().model_names()


def get_model_names_with_tag(tag: str) -> list[str]:
    """Models with `tag` in catalog order; an unknown tag has none (as in HELM)."""
    catalog = _CURRENT.get()
    if tag not in {t.name for t in catalog.tags()}:
        return []
    return [m.name for m in catalog.models(tag=tag)]


def model_has_tag(model_name: str, tag: str) -> bool:
    """False for a model the catalog does not hold, as in HELM (which catches the ValueError)."""
    try:
        return tag in _CURRENT.get().model(model_name).tags
    except UnknownModelError:
        return False


def get_all_text_models() -> list[str]:
    return get_model_names_with_tag(TEXT_MODEL_TAG)


def get_all_code_models() -> list[str]:
    return get_model_names_with_tag(CODE_MODEL_TAG)


def get_all_instruction_following_models() -> list[str]:
    return get_model_names_with_tag(INSTRUCTION_FOLLOWING_MODEL_TAG)


def is_text_to_image_model(model_name: str) -> bool:
    return model_has_tag(model_name, TEXT_TO_IMAGE_MODEL_TAG)


def is_vlm(model_name: str) -> bool:
    """A vision-language model (HELM's OpenAI client asks this of every request)."""
    return model_has_tag(model_name, VISION_LANGUAGE_MODEL_TAG)


def is_audiolm(model_name: str) -> bool:
    return model_has_tag(model_name, AUDIO_LANGUAGE_MODEL_TAG)


def get_unknown_model_metadata(helm_model_name: str) -> ModelMetadata:
    """HELM's stand-in for a model no metadata defines, exactly as HELM makes it (dated today;
    the catalog's own placeholders have no release date instead)."""
    return ModelMetadata(
        name=helm_model_name,
        creator_organization_name="Unknown",
        display_name=helm_model_name,
        description=helm_model_name,
        access="open",
        release_date=dt.date.today(),
        tags=[TEXT_MODEL_TAG, FULL_FUNCTIONALITY_TEXT_MODEL_TAG],
    )


# model_deployment_registry -------------------------------------------------------------------


def _helm_deployment(deployment: DeploymentInfo) -> ModelDeployment:
    return ModelDeployment(
        **model_deployment_fields(deployment, ClientSpec, WindowServiceSpec),
        host_organization=deployment.host_organization,
        engine=deployment.engine,
    )


def get_model_deployment(name: str, warn_deprecated: bool = False) -> ModelDeployment:
    """Raises UnknownDeploymentError, a ValueError, for an unknown name (as HELM does)."""
    deployment = _helm_deployment(_CURRENT.get().deployment(name))
    if deployment.deprecated and warn_deprecated:
        warnings.warn(f"model deployment {name} is deprecated", stacklevel=2)
    return deployment


def get_model_deployment_host_organization(name: str) -> str:
    return get_model_deployment(name).host_organization


def get_model_deployments_by_host_organization(host_organization: str) -> list[str]:
    """Names of the deployments on this host, in HELM's list order."""
    deployments = _CURRENT.get().deployments(host=host_organization)
    return [d.name for d in sorted(deployments, key=lambda d: d.first_position)]


def get_model_names_with_tokenizer(tokenizer_name: str) -> list[str]:
    """The model of each deployment using this tokenizer (a model once per deployment)."""
    catalog = _CURRENT.get()
    if tokenizer_name not in {t.name for t in catalog.tokenizers()}:
        return []
    deployments = catalog.deployments(tokenizer=tokenizer_name)
    return [d.model_name for d in sorted(deployments, key=lambda d: d.first_position)]


def get_default_model_deployment_for_model(
    model_name: str, warn_arg_deprecated: bool = False, ignore_deprecated: bool = False
) -> str | None:
    """HELM's default deployment of a model (or of any name, as HELM accepts any); None if
    there is none. Pins and the database's policy setting apply."""
    chosen = _CURRENT.get().engine.helm_default(model_name, ignore_deprecated=ignore_deprecated)
    if warn_arg_deprecated and chosen is not None and chosen != model_name:
        warnings.warn(
            f"model name {model_name} is used where a deployment is expected; "
            f"{chosen} was chosen; name the model deployment explicitly",
            stacklevel=2,
        )
    return chosen


# tokenizer_config_registry -------------------------------------------------------------------


def get_tokenizer_config(name: str) -> TokenizerConfig | None:
    """None for an unknown tokenizer, and for one deployments name but nobody configured."""
    try:
        tokenizer = _CURRENT.get().tokenizer(name)
    except UnknownTokenizerError:
        return None
    if tokenizer.is_placeholder:
        return None
    return TokenizerConfig(**tokenizer_config_fields(tokenizer, TokenizerSpec))
