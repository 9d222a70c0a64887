"""YAML loading that remembers where every node is, so errors can name file:line:column."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from incidentctl.dsl.errors import RunbookError, RunbookErrors, json_path

Path_ = tuple[str | int, ...]


@dataclass
class Source:
    file: str
    data: Any
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    # Where each mapping key is written (positions holds where its value starts).
    key_positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def position(self, path: Path_) -> tuple[int | None, int | None]:
        """The node's line and column, or its nearest ancestor's when the node is absent."""
        for end in range(len(path), -1, -1):
            found = self.positions.get(tuple(path[:end]))
            if found:
                return found
        return None, None

    def error(self, path: Path_, message: str, at_key: bool = False) -> RunbookError:
        """An error about the node at `path`; `at_key` points at its key instead (for "unknown key")."""
        found = self.key_positions.get(tuple(path)) if at_key else None
        line, column = found or self.position(path)
        return RunbookError(self.file, line, column, json_path(path), message)


# Aliases let a few hundred bytes name billions of nodes ("billion laughs"): a file may expand to this many.
MAX_YAML_NODES = 100_000


class _Unbuildable(Exception):
    """An alias that contains itself, or a file that expands past MAX_YAML_NODES."""

    def __init__(self, node: yaml.Node, path: Path_, message: str) -> None:
        super().__init__(message)
        self.node, self.path, self.message = node, path, message


class _Guard:
    def __init__(self) -> None:
        self.left = MAX_YAML_NODES
        self.building: set[int] = set()


class _DuplicateKey(Exception):
    def __init__(self, key: str, node: yaml.Node, first: yaml.Node, path: Path_) -> None:
        super().__init__(key)
        self.key, self.node, self.first, self.path = key, node, first, path


def _build(node: yaml.Node, path: Path_, source: Source, loader: Any, guard: _Guard) -> Any:
    guard.left -= 1
    if guard.left < 0:
        raise _Unbuildable(node, path, f"the file expands to more than {MAX_YAML_NODES} YAML nodes (through "
                                       "aliases?): refused")
    source.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        if id(node) in guard.building:
            raise _Unbuildable(node, path, "an alias refers to a node that contains it (a YAML loop): refused")
        guard.building.add(id(node))
        try:
            return _build_collection(node, path, source, loader, guard)
        finally:
            guard.building.discard(id(node))
    return loader.construct_object(node, deep=True)


def _build_collection(node: yaml.Node, path: Path_, source: Source, loader: Any, guard: _Guard) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[str, Any] = {}
        seen: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            key = key if isinstance(key, str) else str(key)
            if key in seen:
                raise _DuplicateKey(key, key_node, seen[key], (*path, key))
            seen[key] = key_node
            source.key_positions[(*path, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            result[key] = _build(value_node, (*path, key), source, loader, guard)
        return result
    return [_build(child, (*path, i), source, loader, guard) for i, child in enumerate(node.value)]


# libyaml parses several times faster; the pure-Python parser words syntax errors better ("expected the node
# content, but found '-'"), so a file libyaml refuses is parsed again by it for the message.
_FAST_LOADER = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader


def load_yaml(text: str, file: str) -> Source:
    """Parse one YAML document; syntax errors and duplicate keys become RunbookErrors with positions."""
    try:
        return _load(text, file, _FAST_LOADER)
    except yaml.MarkedYAMLError:
        return _load(text, file, yaml.SafeLoader)


def _load(text: str, file: str, loader_class: Any) -> Source:
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise RunbookErrors([RunbookError(file, 1, 1, "$", "the file is empty: a runbook is a YAML mapping")])
        source = Source(file=file, data=None)
        source.data = _build(node, (), source, loader, _Guard())
    except _Unbuildable as bad:
        mark = bad.node.start_mark
        raise RunbookErrors([RunbookError(file, mark.line + 1, mark.column + 1, json_path(bad.path),
                                          bad.message)]) from None
    except _DuplicateKey as dup:
        mark = dup.node.start_mark
        first = dup.first.start_mark.line + 1
        raise RunbookErrors([RunbookError(file, mark.line + 1, mark.column + 1, json_path(dup.path),
                                          f"key {dup.key!r} appears twice (first on line {first})")]) from None
    except yaml.MarkedYAMLError as exc:
        if loader_class is _FAST_LOADER and loader_class is not yaml.SafeLoader:
            raise
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        problem = ": ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        if "expected a single document" in problem:
            problem = "a runbook file holds one YAML document; split the others into their own files"
        raise RunbookErrors([RunbookError(file, line, column, "$", f"YAML syntax error: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise RunbookErrors([RunbookError(file, None, None, "$", f"YAML error: {exc}")]) from None
    finally:
        loader.dispose()
    return source
