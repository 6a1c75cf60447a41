"""Checks a tool's JSON Schema must pass before anything recurses over it.

A schema read from a file or an MCP server can be nested thousands of levels deep, carry
``NaN`` or infinities (which Python's ``json`` accepts and every other JSON reader
rejects), or hold a ``$ref`` cycle that applies a schema to the same value forever.
Validators, hashing and ``json.dumps`` all recurse, so these are found here, iteratively,
and reported as one line naming where. Recursion through properties or items (a tree
type) is fine: it consumes the value being validated. This module does not check the
schema against the metaschema; :class:`~tool_registry.spec.ToolSpec` does that next.

:func:`undeclared_required` finds what is valid but worth a warning: a ``required`` list
naming a property the object does not declare.
"""

from __future__ import annotations

import math
from typing import Any

MAX_SCHEMA_DEPTH = 100
"""Nested objects and arrays a tool's parameters may have; real ones use fewer than 20."""
# Keywords that apply their subschemas to the same value (not to a part of it): a cycle
# through these (and $ref) never ends.
_IN_PLACE = ("allOf", "anyOf", "oneOf", "not", "if", "then", "else")


def structure_problem(schema: Any) -> str | None:
    """Why ``schema`` cannot be used safely, or None: too deep, not plain JSON, a
    ``$ref`` that points nowhere, or a ``$ref`` cycle."""
    nodes, problem = _walk(schema)
    return problem or _cycle_problem(schema, nodes)


def json_problem(value: Any) -> str | None:
    """Why ``value`` is not plain JSON of bounded depth, or None (no ``$ref`` checks)."""
    return _walk(value)[1]


def _walk(schema: Any) -> tuple[list[tuple[str, dict[str, Any]]], str | None]:
    """Every object in ``schema`` with its JSON pointer, or the first depth/JSON problem."""
    objects: list[tuple[str, dict[str, Any]]] = []
    stack: list[tuple[str, Any, int]] = [("#", schema, 1)]
    while stack:
        where, value, depth = stack.pop()
        if depth > MAX_SCHEMA_DEPTH:
            return objects, f"nested more than {MAX_SCHEMA_DEPTH} levels deep"
        if isinstance(value, float) and not math.isfinite(value):
            name = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
            return objects, f"{where}: {name} is not a JSON value"
        if isinstance(value, dict):
            objects.append((where, value))
            items = [(str(k), v) for k, v in value.items()]
        elif isinstance(value, list):
            items = [(str(n), v) for n, v in enumerate(value)]
        else:
            continue
        stack.extend((f"{where}/{_escape(k)}", v, depth + 1) for k, v in items)
    return objects, None


def _cycle_problem(root: Any, nodes: list[tuple[str, dict[str, Any]]]) -> str | None:
    """A ``$ref`` that does not resolve, or a cycle of in-place subschemas, as one line."""
    where = {id(node): pointer for pointer, node in nodes}
    edges: dict[int, list[dict[str, Any]]] = {}
    for pointer, node in nodes:
        targets = []
        ref = node.get("$ref")
        if isinstance(ref, str) and (ref == "#" or ref.startswith("#/")):  # others: not followed
            target = _resolve(root, ref)
            if not isinstance(target, dict):
                return f"$ref {ref!r} at {pointer} does not point to a schema"
            targets.append(target)
        for key in _IN_PLACE:
            sub = node.get(key)
            subs = sub if isinstance(sub, list) else [sub]
            targets.extend(s for s in subs if isinstance(s, dict))
        edges[id(node)] = targets
    return _first_cycle(edges, where)


def _first_cycle(edges: dict[int, list[dict[str, Any]]], where: dict[int, str]) -> str | None:
    """Iterative depth-first search for a cycle (or an over-long chain) of in-place edges."""
    done: set[int] = set()
    for start in edges:
        if start in done:
            continue
        path, pending = [start], [iter(edges[start])]
        while pending:
            nxt = next(pending[-1], None)
            if nxt is None:
                done.add(path.pop())
                pending.pop()
                continue
            key = id(nxt)
            if key in path:
                loop = [where[n] for n in path[path.index(key) :]] + [where[key]]
                return f"$ref cycle {' -> '.join(loop)}: validating with it would never end"
            if key in done:
                continue
            if len(path) >= MAX_SCHEMA_DEPTH:
                return f"$ref chain longer than {MAX_SCHEMA_DEPTH} (at {where[key]})"
            path.append(key)
            pending.append(iter(edges[key]))
    return None


def _resolve(root: Any, ref: str) -> Any:
    node = root
    for part in ref[2:].split("/") if ref != "#" else []:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


# Keywords whose value is one subschema, a list of them, or a map of name → subschema.
_ONE = ("items", "additionalProperties", "additionalItems", "contains", "propertyNames")
_ONE_IN_PLACE = ("not", "if", "then", "else")
_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems", "items")
_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")


def undeclared_required(schema: Any, root: str = "parameters") -> list[str]:
    """Each ``required`` list that names a property its object does not declare, as one
    line (``parameters.properties.opts.required names undeclared properties ['x']``).

    Valid JSON Schema (a value must then carry a key the schema says nothing else about),
    and common in benchmark function docs, so importers warn instead of rejecting. Only
    schema positions are visited: a ``default`` or ``enum`` value holding a ``required``
    key is data. Iterative, so it is safe on any schema :func:`structure_problem` passed.
    """
    lines: list[str] = []
    stack: list[tuple[str, Any]] = [(root, schema)]
    while stack:
        where, node = stack.pop()
        if not isinstance(node, dict):
            continue
        required, properties = node.get("required"), node.get("properties")
        declared = properties if isinstance(properties, dict) else {}
        if isinstance(required, list):
            missing = [name for name in required if name not in declared]
            if missing:
                lines.append(f"{where}.required names undeclared properties {missing}")
        stack.extend(_subschemas(where, node))
    return sorted(lines)


def _subschemas(where: str, node: dict[str, Any]) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for key in (*_ONE, *_ONE_IN_PLACE):
        if isinstance(node.get(key), dict):
            found.append((f"{where}.{key}", node[key]))
    for key in _LISTS:
        if isinstance(node.get(key), list):
            found.extend((f"{where}.{key}[{n}]", sub) for n, sub in enumerate(node[key]))
    for key in _MAPS:
        if isinstance(node.get(key), dict):
            found.extend((f"{where}.{key}.{name}", sub) for name, sub in node[key].items())
    return found
