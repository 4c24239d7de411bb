"""Templates: declarative TOML files with typed inputs, a prompt, an output format and
few-shot examples, so a user fills in fields instead of writing prompts.

    name = "product-description"
    title = "Product description"
    prompt = "Write a product description for {product}.\\nKey features: {features}"
    output = "text"            # text | bullets | json (json needs output_schema)
    route = "small"            # a model or route name (optional)

    [inputs.product]
    required = true
    max_length = 120
    examples = ["Trail running shoe"]

A line of the prompt whose placeholders are all optional inputs left empty is dropped, so one
template serves with and without its optional fields. Files are validated when loaded; an
error names the file and the field. Lookup order: the caller's custom templates (REST), the
user folder, the built-ins shipped in ``strata/apps/templates``.
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from strata.core.errors import ConfigError, InvalidInput, NotFound

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class InputSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["string", "integer", "number", "boolean", "list"] = "string"
    description: str = ""
    required: bool = True
    default: str | int | float | bool | list[str] | None = None
    max_length: int | None = Field(None, ge=1, description="Characters (or items of a list)")
    enum: list[str] | None = None
    examples: list[str | int | float | bool | list[str]] = Field(default_factory=list)


class Shot(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: dict[str, Any]
    output: str = Field(..., min_length=1)


class Template(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., pattern=NAME)
    title: str = Field(..., min_length=1)
    description: str = ""
    category: str = ""
    system: str = ""
    prompt: str = Field(..., min_length=1)
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    output: Literal["text", "bullets", "json"] = "text"
    output_schema: dict[str, Any] | None = None
    route: str | None = Field(None, description="Model or route to run on (default: default)")
    quality: float | None = Field(None, gt=0, le=1, description="Quality target for routes")
    max_tokens: int = Field(400, ge=1)
    temperature: float = Field(0.7, ge=0, le=2)
    examples: list[Shot] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Template:
        for used in _PLACEHOLDER.findall(self.prompt):
            if used not in self.inputs:
                raise ValueError(f"prompt uses {{{used}}} but no input '{used}' is declared")
        if self.output == "json" and not self.output_schema:
            raise ValueError("output = 'json' needs an output_schema")
        for i, shot in enumerate(self.examples):
            try:
                validate_inputs(self, shot.inputs)
            except InvalidInput as exc:
                raise ValueError(f"examples[{i}]: {exc.message}") from None
        return self

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "object": "template",
            "title": self.title,
            "description": self.description,
            "category": self.category,
            "output": self.output,
        }

    def render(self, values: dict[str, Any]) -> str:
        """The prompt with ``values`` (already validated) filled in."""
        lines = []
        for line in self.prompt.splitlines():
            names = _PLACEHOLDER.findall(line)
            if names and all(_empty(values.get(n)) for n in names):
                continue
            lines.append(_PLACEHOLDER.sub(lambda m: _show(values.get(m.group(1))), line))
        return "\n".join(lines).strip()


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list) and len(value) == 0)


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return "" if value is None else str(value)


def validate_inputs(template: Template, given: dict[str, Any]) -> dict[str, Any]:
    """Check ``given`` against the declared inputs; a 422 names the first bad field."""
    for name in given:
        if name not in template.inputs:
            known = ", ".join(template.inputs) or "none"
            raise InvalidInput(
                f"template '{template.name}' has no input '{name}' (inputs: {known})",
                param=f"inputs.{name}",
            )
    values: dict[str, Any] = {}
    for name, spec in template.inputs.items():
        param = f"inputs.{name}"
        value = given.get(name)
        if _empty(value):
            if spec.required and _empty(spec.default):
                raise InvalidInput(f"input '{name}' is required", param=param)
            values[name] = spec.default
            continue
        value = _coerce(name, spec, value, param)
        size = len(value) if isinstance(value, str | list) else None
        if spec.max_length is not None and size is not None and size > spec.max_length:
            unit = "items" if isinstance(value, list) else "characters"
            raise InvalidInput(
                f"input '{name}' is {size} {unit} long; the most is {spec.max_length}", param=param
            )
        if spec.enum is not None and value not in spec.enum:
            raise InvalidInput(
                f"input '{name}' must be one of {', '.join(spec.enum)} (got {value!r})",
                param=param,
            )
        values[name] = value
    return values


def _coerce(name: str, spec: InputSpec, value: Any, param: str) -> Any:
    """Values as declared; strings (from a command line) are parsed for other types."""
    try:
        if spec.type == "string":
            if not isinstance(value, str):
                raise TypeError
            return value
        if spec.type == "list":
            if isinstance(value, str):
                return [v.strip() for v in value.split(";") if v.strip()]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise TypeError
            return value
        if spec.type == "boolean":
            if isinstance(value, str) and value.lower() in {"true", "false", "yes", "no"}:
                return value.lower() in {"true", "yes"}
            if not isinstance(value, bool):
                raise TypeError
            return value
        if isinstance(value, bool):
            raise TypeError
        return int(value) if spec.type == "integer" else float(value)
    except (TypeError, ValueError):
        article = "an" if spec.type[0] in "aeiou" else "a"
        raise InvalidInput(
            f"input '{name}' must be {article} {spec.type} (got {value!r})", param=param
        ) from None


def parse_template(data: dict[str, Any], source: str) -> Template:
    """Validate a template; the error names ``source`` and the offending field."""
    try:
        return Template.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "template"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"template {source}: {where}: {message}") from None


def load_file(path: Path) -> Template:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"template {path}: not valid TOML: {exc}") from None
    data.setdefault("name", path.stem)
    return parse_template(data, str(path))


def builtin_templates() -> dict[str, Template]:
    out: dict[str, Template] = {}
    folder = resources.files("strata.features.apps") / "templates"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            data = tomllib.loads(entry.read_text(encoding="utf-8"))
            data.setdefault("name", entry.name.removesuffix(".toml"))
            template = parse_template(data, f"(built-in) {entry.name}")
            out[template.name] = template
    return out


def folder_templates(folder: Path | None) -> dict[str, Template]:
    if folder is None or not folder.is_dir():
        return {}
    templates = [load_file(p) for p in sorted(folder.glob("*.toml"))]
    return {t.name: t for t in templates}


class TemplateRegistry:
    """Built-ins, then the user folder (overrides a built-in of the same name), both loaded
    once at start; custom templates of an API key come from the store on each lookup."""

    def __init__(self, folder: Path | None, custom: Any) -> None:
        self.shared = {**builtin_templates(), **folder_templates(folder)}
        self.custom = custom  # AppStore: templates(owner) -> list of dicts

    def all(self, owner: str) -> dict[str, Template]:
        mine = {t["name"]: parse_template(t, "(custom)") for t in self.custom.templates(owner)}
        return {**self.shared, **mine}

    def get(self, owner: str, name: str) -> Template:
        found = self.all(owner).get(name)
        if found is None:
            raise NotFound(f"No template '{name}'.", param="template")
        return found
