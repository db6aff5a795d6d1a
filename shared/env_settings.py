"""Settings read from the environment: pydantic models filled from ``os.environ``.

:class:`EnvSettings` reads the variables as pydantic-settings' ``BaseSettings`` reads them
with the options toilkit uses (``env_prefix``, ``env_nested_delimiter``, a field's
``validation_alias`` or ``AliasChoices``, names in any case, JSON for a dict, list or model
field, keyword arguments over the environment), and validates as a pydantic model. It is
not pydantic-settings: importing that library and its sources (dotenv, the CLI parser,
``argparse``, ``importlib.resources``) cost a Lambda cold start ~15 ms of CPU, and building
one of its settings objects another millisecond or more. No ``.env`` file, secrets
directory or command line is read; nothing toilkit runs used them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, Union, get_args, get_origin

from pydantic import AliasChoices, BaseModel, ConfigDict
from pydantic.fields import FieldInfo

from shared.errors import ConfigError


class EnvConfigDict(ConfigDict, total=False):
    """pydantic's ``ConfigDict`` and where a settings class's variables are."""

    #: Put before a field's name (not before an alias): ``TOILKIT_GATEWAY_`` + ``port``.
    env_prefix: str
    #: Splits a variable's name into a nested model's fields: ``..._WORKER__CONCURRENCY``.
    env_nested_delimiter: str | None


class EnvSettings(BaseModel):
    """A settings model whose unset fields are read from the environment (see the module).

    Keyword arguments win over the environment, by field name or by alias.
    """

    # defer_build: a class's validator is built when it is first used (a base class, such
    # as SlackSettings, never is), not when the class is defined.
    model_config = EnvConfigDict(
        extra="forbid", arbitrary_types_allowed=True, validate_default=True, defer_build=True
    )

    def __init__(self, **values: Any) -> None:
        read = environment_values(type(self), os.environ)
        given = {field_key(type(self), name): value for name, value in values.items()}
        super().__init__(**{**read, **given})


def field_key(cls: type[BaseModel], name: str) -> str:
    """The key a value of field (or alias) ``name`` is validated under: the field's first
    alias if it has one, else its name (unknown names as given)."""
    for field_name, field in cls.model_fields.items():
        aliases = _aliases(field)
        if name == field_name or name in aliases:
            return aliases[0] if aliases else field_name
    return name


def environment_values(cls: type[BaseModel], environ: Mapping[str, str]) -> dict[str, Any]:
    """The values of ``cls``'s fields that ``environ`` sets, by :func:`field_key`."""
    lowered = {name.lower(): value for name, value in environ.items()}
    prefix = str(cls.model_config.get("env_prefix", ""))
    delimiter = str(cls.model_config.get("env_nested_delimiter") or "")
    # As pydantic-settings: a field with an alias is read by its name too when the model
    # may be filled by name.
    by_name_too = bool(
        cls.model_config.get("populate_by_name") or cls.model_config.get("validate_by_name")
    )
    values: dict[str, Any] = {}
    for field_name, field in cls.model_fields.items():
        aliases = _aliases(field)
        by_name = not aliases or by_name_too
        names = aliases + ([prefix + field_name] if by_name else [])
        found = next((n for n in names if n.lower() in lowered), None)
        value: Any = None
        if found is not None:
            value = lowered[found.lower()]
            if _is_complex(field.annotation):
                value = _json(found, value)
        if delimiter and (nested := _nested(names[0].lower(), delimiter, lowered, field)):
            value = _deep_update(value if isinstance(value, dict) else {}, nested)
        if found is not None or value is not None:
            values[aliases[0] if aliases else field_name] = value
    return values


def _aliases(field: FieldInfo) -> list[str]:
    alias = field.validation_alias
    if isinstance(alias, str):
        return [alias]
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    return []


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation) if _is_union(annotation) else ():
        if (model := _model_of(arg)) is not None:
            return model
    return None


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, type(int | None))


def _is_complex(annotation: Any) -> bool:
    """A field pydantic-settings reads as JSON: a model, a dict, a list, set or tuple."""
    if _is_union(annotation):
        return any(_is_complex(arg) for arg in get_args(annotation))
    origin = get_origin(annotation) or annotation
    return isinstance(origin, type) and issubclass(origin, BaseModel | dict | list | set | tuple)


def _json(name: str, value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError as exc:
        raise ConfigError(f"{name.upper()}: not valid JSON ({exc})") from exc


def _nested(
    name: str, delimiter: str, lowered: Mapping[str, str], field: FieldInfo
) -> dict[str, Any]:
    """``NAME<delimiter>KEY[<delimiter>KEY...]`` variables as a nested dict."""
    start = name + delimiter.lower()
    nested: dict[str, Any] = {}
    for variable, value in lowered.items():
        if not variable.startswith(start):
            continue
        *keys, last = variable[len(start) :].split(delimiter.lower())
        model, target = _model_of(field.annotation), nested
        for key in keys:
            inner = model.model_fields.get(key) if model else None
            model = _model_of(inner.annotation) if inner else None
            target = target.setdefault(key, {})
        leaf = model.model_fields.get(last) if model else None
        target[last] = _json(variable, value) if leaf and _is_complex(leaf.annotation) else value
    return nested


def _deep_update(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_update(merged[key], value)
        else:
            merged[key] = value
    return merged
