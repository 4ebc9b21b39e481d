"""cdcctl contexts: named targets in ``~/.config/cdcctl/config.yaml`` (core.target has the
model of one context, with every endpoint and credential reference).

Pure: the file's model, parsing and the Connect URL precedence rule (docs/decisions/0020 and
0070). Reading and writing the file is in `services.contexts`.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from controlplane.core.errors import ManifestError, UsageError
from controlplane.core.manifest_loader import locate
from controlplane.core.target import Context


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True
    )


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
    hint = "fix or delete the file; `cdcctl config set-context` rewrites it"
    try:
        data: Any = yaml.safe_load(text) or {}
        return CdcctlConfig.model_validate(data)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise ManifestError(
            f"invalid cdcctl config: {exc}".splitlines()[0], location=where, hint=hint
        ) from exc
    except ValidationError as exc:
        # The first error, where it is written (file:line:column of its key) and what is wrong,
        # never the value given (it may be a password).
        err = exc.errors(include_input=False, include_url=False)[0]
        loc = tuple(err["loc"])
        where = source
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            root = None
        if root is not None:
            node, _ = locate(root, loc, want_key=True)
            where = f"{source}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        message = str(err["msg"]).removeprefix("Value error, ")
        raise ManifestError(
            f"invalid cdcctl config at {dotted}: {message}", location=where, hint=hint
        ) from exc
