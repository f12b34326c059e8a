"""The base of every options model, so that a config section and the runtime options of the
component it configures are one and the same class.

Why: with two definitions (a config model copied field by field into an options struct) the
defaults drifted apart and a new knob had to be added in three places. Now
``TransportOptions``, ``GapFillOptions`` and the others are pydantic models on this base; the
service config simply nests them (``transport: TransportOptions``), the library takes them as
they are, and each default is written once.

Strict like the config: unknown keys are errors, values are validated (no ``inf``/``nan``), and
instances are frozen.
"""

from __future__ import annotations

from typing import Any, get_args, get_origin

from pydantic import BaseModel, ConfigDict, model_validator

__all__ = ["Options", "split_list"]


def _is_str_sequence(annotation: Any) -> bool:
    """``tuple[str, ...]``/``list[str]``, alone or inside a union (``... | None``)."""
    origin = get_origin(annotation)
    if origin in (tuple, list):
        args = [a for a in get_args(annotation) if a is not Ellipsis]
        return bool(args) and all(a is str for a in args)
    return any(_is_str_sequence(a) for a in get_args(annotation))


class Options(BaseModel):
    """Base of every options model: unknown keys forbidden, immutable, empty section allowed,
    no ``inf``/``nan`` anywhere (``clock.speed: .inf`` is a config error, not a crash at run
    time), and a comma-separated string accepted wherever a list of strings is expected (so
    ``CANDLEKEEPER__SINKS__NATS__SERVERS=nats://a:4222,nats://b:4222`` works for every list)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True,
                              allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _prepare(cls, data: Any) -> Any:
        # ``sinks:`` followed only by comments parses as None in YAML; treat it as "defaults".
        if data is None:
            return {}
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name, info in cls.model_fields.items():
            key = info.alias or name
            value = out.get(key)
            if isinstance(value, str) and _is_str_sequence(info.annotation):
                out[key] = split_list(value, key)
        return out


def split_list(value: object, what: str) -> list[object]:
    """A YAML list, or a comma-separated string (handy in environment overrides)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple):
        return list(value)
    raise ValueError(f"expected a list of {what}, got {type(value).__name__} {value!r}")
