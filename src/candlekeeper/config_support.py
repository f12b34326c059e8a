"""Plumbing for :mod:`candlekeeper.config`: a strict YAML reader, environment overrides and
turning validation errors into one ``path: message`` line each.

Kept apart from the model because none of it knows what the keys mean; the model validates
whatever these produce, and these explain what the model rejected.

* YAML is read with a ``SafeLoader`` that **rejects duplicate keys**: PyYAML silently keeps the
  last one, which turns a copy-paste slip into a silently ignored setting.
* Environment variables ``CANDLEKEEPER__A__B=value`` set ``a.b``; a numeric segment indexes a
  list (``CANDLEKEEPER__FEEDS__0__TESTNET=true``; index == length appends a new item). Values
  stay strings: the model converts them (``"500"`` -> 500, ``"false"`` -> False, ``"a,b"`` -> a
  list where a list is expected); an empty value or ``null`` means None.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, get_args

import yaml
from pydantic import BaseModel, ValidationError

from candlekeeper.errors import ConfigError

ENV_PREFIX: Final = "CANDLEKEEPER__"
CONFIG_PATH_ENV: Final = "CANDLEKEEPER_CONFIG"
_NULLS: Final = frozenset({"", "null", "~"})
_SEGMENT: Final = re.compile(r"[a-z0-9_]+")


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode,
                       deep: bool = False) -> dict[Hashable, Any]:
    loader.flatten_mapping(node)
    seen: dict[Hashable, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                None, None, f"unhashable key {key!r}", key_node.start_mark)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None,
                f"duplicate key {key!r} (first defined on line {seen[key] + 1})",
                key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(text: str, source: str, problems: list[str]) -> object:
    """Parse ``text``; on a syntax error append one line (with line:column) and return {}."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = exc.problem or str(exc)
        problems.append(f"YAML error at {where}{what}")
        return {}
    except yaml.YAMLError as exc:
        problems.append(f"YAML error: {exc}")
        return {}
    return {} if data is None else data


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


# -- turning validation errors into one line each -------------------------------------------


class ConfigValidationError(ConfigError):
    """A configuration with one or more problems; ``problems`` lists each as ``path: message``."""

    def __init__(self, problems: list[str] | tuple[str, ...], source: str | None = None) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        self.source = source
        super().__init__(format_config_errors(self.problems, source))


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


def pydantic_problems(root: type[BaseModel], exc: ValidationError,
                      env_origins: Mapping[tuple[str | int, ...], str]) -> list[str]:
    problems: list[str] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden":
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

