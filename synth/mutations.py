"""Bugs injected into a project's functions: AST mutations, deterministic by seed.

Six operators, each a small change a person could have made by mistake:

- ``flip_compare``: a comparison operator replaced (``<`` by ``>=`` or ``<=``, ``==`` by
  ``!=``, ``in`` by ``not in``, ``is`` by ``is not``);
- ``flip_not``: a ``not`` added to an ``if``/``while``/conditional test, or removed;
- ``swap_boolop``: ``and`` and ``or`` swapped;
- ``off_by_one``: an integer constant ±1, or a ``range`` bound ±1;
- ``drop_statement``: a statement of a function's body removed (never its last, nor the
  docstring);
- ``swap_args``: two adjacent positional arguments of a call swapped.

:func:`mutants` enumerates them function by function (top-level functions and methods of
top-level classes) and writes each mutated module: the changed node is rendered with
``ast.unparse`` and spliced into the original text, so the rest of the file (comments,
layout) stays as it was; when the splice would not parse to the mutated tree, the whole
module is written with ``ast.unparse``. Running the mutants against the tests lives in
:mod:`synth.swe_tasks`. This module only rewrites source text; it runs nothing.
"""

from __future__ import annotations

import ast
import copy
import random
from collections.abc import Iterator
from dataclasses import dataclass

OPERATORS = (
    "flip_compare",
    "flip_not",
    "swap_boolop",
    "off_by_one",
    "drop_statement",
    "swap_args",
)
COMPARE_FLIPS: dict[type[ast.cmpop], tuple[type[ast.cmpop], ...]] = {
    ast.Lt: (ast.GtE, ast.LtE),
    ast.LtE: (ast.Gt, ast.Lt),
    ast.Gt: (ast.LtE, ast.GtE),
    ast.GtE: (ast.Lt, ast.Gt),
    ast.Eq: (ast.NotEq,),
    ast.NotEq: (ast.Eq,),
    ast.In: (ast.NotIn,),
    ast.NotIn: (ast.In,),
    ast.Is: (ast.IsNot,),
    ast.IsNot: (ast.Is,),
}


Splice = tuple[ast.expr | ast.stmt, ast.expr | None]
"""A node of the original text and what to write in its place (None: remove its lines)."""


@dataclass(frozen=True)
class Site:
    """Where one mutation applies: the operator, the node's index in the function's walk
    (for ``drop_statement``: the statement's index in the body) and which variant."""

    operator: str
    index: int
    variant: int = 0


@dataclass(frozen=True)
class Mutant:
    path: str
    """The file, relative to the project's root."""
    function: str
    """The function's qualified name (``mean``, ``Stats.mean``)."""
    operator: str
    line: int
    description: str
    """What changed (``line 12: < -> >=``): for reports, never shown to the issue writer."""
    source: str
    """The whole mutated module."""


def functions(tree: ast.Module) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Top-level functions and the methods of top-level classes, in file order."""
    found: list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.append((node.name, node))
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    found.append((f"{node.name}.{item.name}", item))
    return found


def walk(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.AST]:
    """The nodes of ``function``'s body, breadth first, not entering nested functions,
    classes or f-strings (whose inner positions Python 3.11 does not keep)."""
    order: list[ast.AST] = []
    queue: list[ast.AST] = list(function.body)
    while queue:
        node = queue.pop(0)
        order.append(node)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.JoinedStr):
            continue
        queue.extend(ast.iter_child_nodes(node))
    return order


def sites(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[Site]:
    """Every mutation that applies to ``function``, in a fixed order."""
    found: list[Site] = []
    nodes = walk(function)
    tests = {id(n.test) for n in nodes if isinstance(n, ast.If | ast.While | ast.IfExp)}
    for index, node in enumerate(nodes):
        if isinstance(node, ast.Compare):
            for k, op in enumerate(node.ops):
                flips = COMPARE_FLIPS.get(type(op), ())
                found += [Site("flip_compare", index, 2 * k + j) for j in range(len(flips))]
        added = id(node) in tests and not isinstance(node, ast.Compare)
        if added or (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)):
            found.append(Site("flip_not", index))
        if isinstance(node, ast.BoolOp):
            found.append(Site("swap_boolop", index))
        if _is_int(node):
            found += [Site("off_by_one", index, 0), Site("off_by_one", index, 1)]
        if isinstance(node, ast.Call):
            found += _call_sites(node, index)
    body = function.body
    first = 1 if _is_docstring(body[0]) else 0
    found += [Site("drop_statement", i) for i in range(first, len(body) - 1)]
    return found


def _call_sites(call: ast.Call, index: int) -> list[Site]:
    found = []
    if isinstance(call.func, ast.Name) and call.func.id == "range" and not call.keywords:
        # the bounds that are not constants (constants are off_by_one sites already)
        for k, bound in enumerate(call.args[:2]):
            if not _is_int(bound):
                found += [
                    Site("off_by_one", index, 2 + 2 * k),
                    Site("off_by_one", index, 3 + 2 * k),
                ]
    args = call.args
    if not any(isinstance(a, ast.Starred) for a in args):
        for k in range(len(args) - 1):
            if ast.dump(args[k]) != ast.dump(args[k + 1]):
                found.append(Site("swap_args", index, k))
    return found


def _is_int(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int)
        and not isinstance(node.value, bool)
    )


def _is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def mutants(
    source: str, path: str, *, seed: int = 0, per_function: int | None = None
) -> Iterator[Mutant]:
    """The mutants of ``source`` (the module at ``path``): every site, or ``per_function``
    of each function's sites drawn by ``seed`` (the same seed, the same mutants).

    >>> [m.operator for m in mutants("def f(a):\\n    return a < 1\\n", "f.py")]
    ['flip_compare', 'flip_compare', 'off_by_one', 'off_by_one']
    """
    tree = ast.parse(source)
    for position, (name, function) in enumerate(functions(tree)):
        candidates = sites(function)
        if per_function is not None and len(candidates) > per_function:
            rng = random.Random(f"{seed}:{path}:{name}")
            chosen = sorted(rng.sample(range(len(candidates)), per_function))
            candidates = [candidates[i] for i in chosen]
        for site in candidates:
            yield apply(source, tree, position, name, site, path)


def apply(source: str, tree: ast.Module, position: int, name: str, site: Site, path: str) -> Mutant:
    """One mutant: ``site`` applied to the ``position``-th function of ``tree``."""
    mutated = copy.deepcopy(tree)
    function = functions(mutated)[position][1]
    if site.operator == "drop_statement":
        statement = function.body.pop(site.index)
        line = statement.lineno
        description = f"line {line}: statement removed"
        splices: list[Splice] = [(statement, None)]
    else:
        node = walk(function)[site.index]
        line = getattr(node, "lineno", function.lineno)
        splices, description = _mutate(node, site, function)
        description = f"line {line}: {description}"
    text = _splice(source, splices, mutated)
    return Mutant(path, name, site.operator, line, description, text)


def _mutate(node: ast.AST, site: Site, function: ast.AST) -> tuple[list[Splice], str]:
    """Change ``node`` in place (or plan its replacement): the splices and what changed."""
    if site.operator == "flip_compare":
        assert isinstance(node, ast.Compare)
        k, j = divmod(site.variant, 2)
        old = node.ops[k]
        node.ops[k] = COMPARE_FLIPS[type(old)][j]()
        before = ast.unparse(ast.Compare(ast.Name("a"), [old], [ast.Name("b")]))[2:-2]
        after = ast.unparse(ast.Compare(ast.Name("a"), [node.ops[k]], [ast.Name("b")]))[2:-2]
        return [(node, node)], f"{before} -> {after}"
    if site.operator == "swap_boolop":
        assert isinstance(node, ast.BoolOp)
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        return [(node, node)], "and <-> or"
    if site.operator == "flip_not":
        assert isinstance(node, ast.expr)
        expr = node.operand if isinstance(node, ast.UnaryOp) else ast.UnaryOp(ast.Not(), node)
        _replace(function, node, expr)
        return [(node, expr)], "not removed" if isinstance(node, ast.UnaryOp) else "not added"
    if site.operator == "off_by_one" and site.variant < 2:
        assert isinstance(node, ast.Constant) and isinstance(node.value, int)
        value = node.value + (1 if site.variant == 0 else -1)
        # a negative literal parses as unary minus: build it that way, so the text matches
        new: ast.expr = ast.Constant(abs(value))
        if value < 0:
            new = ast.UnaryOp(ast.USub(), new)
        _replace(function, node, new)
        return [(node, new)], f"{node.value} -> {value}"
    assert isinstance(node, ast.Call)
    if site.operator == "off_by_one":
        k, down = divmod(site.variant - 2, 2)
        bound = node.args[k]
        op: ast.operator = ast.Sub() if down else ast.Add()
        node.args[k] = ast.BinOp(bound, op, ast.Constant(1))
        return [(bound, node.args[k])], f"range bound {'- 1' if down else '+ 1'}"
    k = site.variant
    first, second = node.args[k], node.args[k + 1]
    node.args[k], node.args[k + 1] = second, first
    return [(first, second), (second, first)], f"arguments {k + 1} and {k + 2} swapped"


def _replace(root: ast.AST, old: ast.AST, new: ast.AST) -> None:
    """Put ``new`` where ``old`` is in ``root``'s tree."""
    for parent in ast.walk(root):
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, new)
                return
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if item is old:
                        value[i] = new
                        return
    raise ValueError("node not found in its function")


def _splice(source: str, splices: list[Splice], mutated: ast.Module) -> str:
    """``source`` with each old node's text replaced by the new node's (``None``: the
    statement's lines removed), checked to parse to ``mutated``; else ``ast.unparse``."""
    want = ast.dump(mutated)
    for parenthesize in (False, True):
        text = _spliced(source, splices, parenthesize)
        try:
            if text is not None and ast.dump(ast.parse(text)) == want:
                return text
        except SyntaxError:
            continue
    return ast.unparse(mutated) + "\n"


def _spliced(source: str, splices: list[Splice], parenthesize: bool) -> str | None:
    data = source.encode("utf-8")
    starts = [0]
    for line in data.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    edits: list[tuple[int, int, bytes]] = []
    for old, new in splices:
        last = old.end_lineno if old.end_lineno is not None else old.lineno
        start = starts[old.lineno - 1] + old.col_offset
        end = starts[last - 1] + (old.end_col_offset or 0)
        if new is None:  # a whole statement: its lines, when it is alone on them
            line_start, line_end = starts[old.lineno - 1], starts[last]
            if data[line_start:start].strip() or data[end:line_end].split(b"#")[0].strip():
                return None
            edits.append((line_start, line_end, b""))
            continue
        text = ast.unparse(new)
        if parenthesize and not isinstance(new, ast.Name | ast.Constant | ast.Call):
            text = f"({text})"
        edits.append((start, end, text.encode("utf-8")))
    for start, end, replacement in sorted(edits, reverse=True):
        data = data[:start] + replacement + data[end:]
    return data.decode("utf-8")
