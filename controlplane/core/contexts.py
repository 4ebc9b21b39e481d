"""cdcctl contexts: named Kafka Connect clusters in ``~/.config/cdcctl/config.yaml``.

Pure: the model, parsing and the precedence rule (docs/decisions/0020-contexts.md). Reading and
writing the file is in `services.contexts`.

    currentContext: local
    contexts:
      local: {connectUrl: http://127.0.0.1:8083}
      staging: {connectUrl: https://connect.staging.example:8083}
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from controlplane.core.errors import ManifestError, UsageError
from controlplane.core.manifest import Pipeline

DEFAULT_CONNECT_URL = "http://127.0.0.1:8083"


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True
    )


class Context(_Model):
    connect_url: str = Field(description="Kafka Connect REST URL of this cluster.")

    @field_validator("connect_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/")


class CdcctlConfig(_Model):
    current_context: str | None = None
    contexts: dict[str, Context] = Field(default_factory=dict)

    def with_context(self, name: str, context: Context) -> CdcctlConfig:
        contexts = {**self.contexts, name: context}
        return CdcctlConfig(current_context=self.current_context or name, contexts=contexts)

    def use(self, name: str) -> CdcctlConfig:
        if name not in self.contexts:
            raise UsageError(
                f"no context named {name!r}",
                hint="known: "
                + (", ".join(sorted(self.contexts)) or "(none)")
                + "; add one with `cdcctl config set-context NAME --connect-url URL`",
            )
        return CdcctlConfig(current_context=name, contexts=dict(self.contexts))

    def context(self, name: str) -> Context:
        return self.use(name).contexts[name]

    def to_yaml(self) -> str:
        data = self.model_dump(by_alias=True, exclude_none=True)
        return yaml.safe_dump(data, sort_keys=False)


def parse_config(text: str, source: str) -> CdcctlConfig:
    try:
        data: Any = yaml.safe_load(text) or {}
        return CdcctlConfig.model_validate(data)
    except (yaml.YAMLError, ValidationError) as exc:
        raise ManifestError(
            f"invalid cdcctl config: {exc}".splitlines()[0],
            location=source,
            hint="fix or delete the file; `cdcctl config set-context` rewrites it",
        ) from exc


def connect_url_for(
    pipeline: Pipeline | None,
    config: CdcctlConfig,
    *,
    override_url: str | None = None,
    override_context: str | None = None,
) -> str:
    """Which Connect URL to use (first that applies):

    1. ``--connect-url`` on the command line;
    2. ``--context NAME`` on the command line;
    3. the manifest's ``spec.connect.context`` (a named context);
    4. the manifest's ``spec.connect.url`` when written explicitly;
    5. the current context of the config file;
    6. the default, http://127.0.0.1:8083.
    """
    if override_url:
        return override_url.rstrip("/")
    if override_context:
        return config.context(override_context).connect_url
    if pipeline is not None:
        connect = pipeline.spec.connect
        if connect.context:
            return config.context(connect.context).connect_url
        if "url" in connect.model_fields_set:
            return connect.url
    if config.current_context and config.current_context in config.contexts:
        return config.contexts[config.current_context].connect_url
    return DEFAULT_CONNECT_URL
