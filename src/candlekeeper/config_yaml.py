"""The strict YAML reader behind :mod:`candlekeeper.config`.

* A ``SafeLoader`` that **rejects duplicate keys**: PyYAML silently keeps the last one, which
  turns a copy-paste slip into a silently ignored setting.
* It refuses what would turn a typo or a hostile file into a hang or a 25 MB error line:
  documents over :data:`MAX_YAML_BYTES`, aliases that expand to more than
  :data:`MAX_YAML_VALUES` values (the "billion laughs"), recursive aliases, nesting too deep to
  parse, and integers too long for Python to convert. Each is one problem line, never a
  traceback.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Final

import yaml

__all__ = ["MAX_YAML_BYTES", "MAX_YAML_VALUES", "read_yaml"]

#: a config is a few KB; even ``symbols`` listing every pair of a venue stays far below this
MAX_YAML_BYTES: Final = 4 << 20
#: scalars, lists and mappings a document may hold once its aliases are expanded
MAX_YAML_VALUES: Final = 100_000


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


def _construct_int(loader: _StrictLoader, node: yaml.ScalarNode) -> int:
    # Python refuses to convert integers of more than 4,300 digits (a ValueError, which PyYAML
    # does not turn into a YAML error): report it where it is, without echoing the digits
    try:
        value: int = yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)
    except ValueError:
        raise yaml.constructor.ConstructorError(
            None, None, f"integer of {len(str(node.value))} characters is too long",
            node.start_mark) from None
    return value


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_StrictLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


class _YamlRefused(Exception):
    """A document refused before construction (too large once expanded, recursive)."""


def _check_expansion(root: yaml.Node) -> None:
    """Count the values ``root`` holds once every alias is expanded, without expanding them.

    PyYAML builds an alias as a shared reference, so nine nested anchors of ten items each
    (the "billion laughs") cost little memory while loading, but 10**9 values as soon as
    anything walks or prints them. Sizes are memoised per node, so the check is linear in the
    document's size; a node reached again while it is being counted is a recursive alias."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        ident = id(node)
        if ident in sizes:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        if not children_done:
            if ident in on_path:
                raise _YamlRefused(f"recursive alias at line {node.start_mark.line + 1}")
            on_path.add(ident)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        on_path.discard(ident)
        total = 1 + sum(sizes.get(id(child), 1) for child in children)
        if total > MAX_YAML_VALUES:
            raise _YamlRefused(
                f"the document expands to more than {MAX_YAML_VALUES:,} values through its "
                f"aliases (line {node.start_mark.line + 1}); refusing it")
        sizes[ident] = total


def read_yaml(text: str, source: str, problems: list[str]) -> object:
    """Parse ``text``; on any problem append one line (with line:column) and return {}."""
    if len(text) > MAX_YAML_BYTES:
        problems.append(f"YAML error: the document is larger than {MAX_YAML_BYTES >> 20} MiB")
        return {}
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_expansion(node)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = exc.problem or "cannot be parsed"
        problems.append(f"YAML error at {where}{what}")
        return {}
    except yaml.YAMLError:
        problems.append("YAML error: the document cannot be parsed")
        return {}
    except _YamlRefused as exc:
        problems.append(f"YAML error: {exc}")
        return {}
    except RecursionError:
        problems.append("YAML error: the document is nested too deeply")
        return {}
    finally:
        loader.dispose()
    return {} if data is None else data
