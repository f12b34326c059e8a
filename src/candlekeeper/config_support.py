"""Plumbing for :mod:`candlekeeper.config`: a strict YAML reader, environment overrides and
turning validation errors into one ``path: message`` line each.

Kept apart from the model because none of it knows what the keys mean; the model validates
whatever these produce, and these explain what the model rejected.

* YAML is read by :mod:`candlekeeper.config_yaml` (strict: duplicate keys, alias bombs, ...).
* Environment variables ``CANDLEKEEPER__A__B=value`` set ``a.b``; a numeric segment indexes a
  list (``CANDLEKEEPER__FEEDS__0__TESTNET=true``; index == length appends a new item). Values
  stay strings: the model converts them (``"500"`` -> 500, ``"false"`` -> False, ``"a,b"`` -> a
  list where a list is expected); an empty value or ``null`` means None.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError

from candlekeeper.config_yaml import MAX_YAML_BYTES, MAX_YAML_VALUES, read_yaml
from candlekeeper.core.options import Options, split_list
from candlekeeper.errors import ConfigError
from candlekeeper.observability.redact import Redactor, redact_text

__all__ = ["CONFIG_PATH_ENV", "ENV_PREFIX", "MAX_PROBLEM_CHARS", "MAX_YAML_BYTES",
           "MAX_YAML_VALUES", "ConfigValidationError", "EnvOverrides", "Section", "apply_env",
           "did_you_mean", "format_config_errors", "pydantic_problems", "read_yaml",
           "safe_line", "secret_paths", "secret_values", "split_list"]

ENV_PREFIX: Final = "CANDLEKEEPER__"
CONFIG_PATH_ENV: Final = "CANDLEKEEPER_CONFIG"
_NULLS: Final = frozenset({"", "null", "~"})
_SEGMENT: Final = re.compile(r"[a-z0-9_]+")
#: one problem line is cut to this many characters (the rest is counted, never printed)
MAX_PROBLEM_CHARS: Final = 500


@dataclass
class EnvOverrides:
    """The merged data, which config path each variable set, and problems found."""

    data: object
    origins: dict[tuple[str | int, ...], str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _sort_key(path: list[str]) -> list[tuple[int, int, str]]:
    # numeric segments compare as numbers so FEEDS__2 is applied before FEEDS__10
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in path]


def apply_env(data: object, env: Mapping[str, str]) -> EnvOverrides:
    """Return a copy of ``data`` with every ``CANDLEKEEPER__...`` variable applied."""
    merged = copy.deepcopy(data)
    out = EnvOverrides(merged)
    wanted: list[tuple[list[str], str, str]] = []
    for name, value in env.items():
        if not name.upper().startswith(ENV_PREFIX):
            continue
        path = name[len(ENV_PREFIX):].lower().split("__")
        if not all(_SEGMENT.fullmatch(p) for p in path):
            out.problems.append(
                f"environment variable {name}: bad name (use {ENV_PREFIX}SECTION__KEY, "
                "double underscore between levels)")
            continue
        wanted.append((path, name, value))
    for path, name, value in sorted(wanted, key=lambda w: _sort_key(w[0])):
        problem = _set(out, path, name, None if value.strip().lower() in _NULLS else value)
        if problem:
            out.problems.append(f"environment variable {name}: {problem}")
    return out


def _set(out: EnvOverrides, path: list[str], name: str, value: str | None) -> str | None:
    if not isinstance(out.data, dict):
        return "the configuration file's top level is not a mapping"
    node: Any = out.data
    loc: list[str | int] = []
    for i, seg in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, dict):
            key: str | int = seg
            if last:
                node[seg] = value
            elif node.get(seg) is None:
                node[seg] = [] if path[i + 1].isdigit() else {}
        elif isinstance(node, list):
            if not seg.isdigit():
                return f"{_dotted(loc)} is a list; expected an index, got {seg!r}"
            key = int(seg)
            if key > len(node):
                return (f"index {key} is out of range for {_dotted(loc)} "
                        f"(it has {len(node)} item{'s' if len(node) != 1 else ''})")
            if key == len(node):
                node.append(None)
            if last:
                node[key] = value
            elif node[key] is None:
                node[key] = [] if path[i + 1].isdigit() else {}
        else:
            return f"{_dotted(loc)} is a single value, it has no key {seg!r}"
        loc.append(key)
        if not last:
            node = node[key]
    out.origins[tuple(loc)] = name
    return None


def _dotted(loc: list[str | int]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "the top level"


# -- the base of every section ----------------------------------------------------------------


# -- turning validation errors into one line each -------------------------------------------


class ConfigValidationError(ConfigError):
    """A configuration with one or more problems; ``problems`` lists each as ``path: message``.

    Every line is made safe here, whoever wrote it: each ``secrets`` value (the raw text of
    every secret field) is replaced by ``***``, so is the user-info part of any URL
    (``nats://user:pw@host`` -> ``nats://***@host``), and a line is cut at
    :data:`MAX_PROBLEM_CHARS` characters."""

    def __init__(self, problems: list[str] | tuple[str, ...], source: str | None = None, *,
                 secrets: Collection[str] = ()) -> None:
        self.problems: tuple[str, ...] = tuple(safe_line(p, secrets) for p in problems)
        self.source = source
        super().__init__(format_config_errors(self.problems, source))




def safe_line(text: str, secrets: Collection[str] = (), limit: int = MAX_PROBLEM_CHARS) -> str:
    """``text`` without secrets or URL credentials (the one redaction policy,
    :mod:`candlekeeper.observability.redact`), cut to ``limit`` characters."""
    text = redact_text(text, Redactor(secrets=secrets) if secrets else None)
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text) - limit:,} more characters)"
    return text


def format_config_errors(problems: list[str] | tuple[str, ...], source: str | None = None) -> str:
    """Human-readable report, as ``candlekeeper config check`` prints it."""
    where = f" in {source}" if source else ""
    n = len(problems)
    head = f"invalid configuration{where} ({n} problem{'s' if n != 1 else ''}):"
    return "\n".join([head, *(f"  - {p}" for p in problems)])


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close:
        close = [c for c in choices if c.lower() == word.lower()]
    return f" (did you mean {close[0]!r}?)" if close else ""



_MAX_INPUT_REPR: Final = 60


def _loc_text(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _fields_at(root: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """Field names valid at the parent of ``loc`` (for 'did you mean')."""
    model = root
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        sub = _model_of(field.annotation) if field is not None else None
        if sub is None:
            return []
        model = sub
    return list(model.model_fields)


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or any(_is_secret(arg) for arg in get_args(annotation))


def secret_paths(root: type[BaseModel]) -> list[tuple[str, ...]]:
    """Where the secret fields (typed :class:`SecretStr`) sit, by the names a file uses
    (``("sinks", "postgres", "dsn")``). List items are skipped: no list holds a secret."""
    out: list[tuple[str, ...]] = []
    for name, info in root.model_fields.items():
        key = info.alias or name
        if _is_secret(info.annotation):
            out.append((key,))
        sub = _model_of(info.annotation)
        if sub is not None and get_origin(info.annotation) not in (tuple, list):
            out.extend((key, *path) for path in secret_paths(sub))
    return out


def secret_values(data: object, paths: list[tuple[str, ...]]) -> list[str]:
    """The raw text at each of ``paths`` in ``data`` (to scrub from every message)."""
    found: list[str] = []
    for path in paths:
        node: object = data
        for part in path:
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is not None and not isinstance(node, Mapping | list):
            text = str(node)
            found.append(text)
            # a URL's password on its own (it may be quoted apart from the rest of the URL)
            userinfo = text.partition("://")[2].rpartition("@")[0]
            found.extend(part for part in (userinfo, userinfo.partition(":")[2]) if len(part) > 3)
    return found


def pydantic_problems(root: type[BaseModel], exc: ValidationError,
                      env_origins: Mapping[tuple[str | int, ...], str]) -> list[str]:
    problems: list[str] = []
    secret = secret_paths(root)
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        kind = err["type"]
        hidden = any(loc[: len(path)] == path for path in secret)
        if hidden and not kind.startswith("value_error") and kind != "missing":
            # never echo a secret, nor pydantic's words about it (they may quote it); our own
            # validators' messages (value_error) are written never to quote it
            msg = ("must be a string (quote it in YAML: an unquoted number loses leading zeros)"
                   if kind == "string_type" else "invalid value (not shown: it is a secret)")
        elif kind == "extra_forbidden":
            key = str(loc[-1]) if loc else ""
            msg = f"unknown key{did_you_mean(key, _fields_at(root, loc))}"
        elif kind == "missing":
            msg = "required key is missing"
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
            if not kind.startswith("value_error") and "input" in err:
                shown = repr(err["input"])
                if len(shown) > _MAX_INPUT_REPR:
                    shown = shown[: _MAX_INPUT_REPR - 3] + "..."
                msg = f"{msg} (got {shown})"
        for origin, var in env_origins.items():
            # the error is at or below what the variable set, or the variable set a sub-key of
            # a value that is not a mapping (CANDLEKEEPER__BUFFER_SIZE__X)
            if loc and (loc[: len(origin)] == origin or origin[: len(loc)] == loc):
                msg = f"{msg} [from environment variable {var}]"
                break
        where = _loc_text(loc)
        problems.append(f"{where}: {msg}" if where else msg)
    return problems


#: the base of every config section (kept under its config name: the config's sections *are*
#: the runtime options, see :mod:`candlekeeper.core.options`)
Section = Options
