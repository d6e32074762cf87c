"""Checks before running: syntax, and a fast AST courtesy screen.

The screen is a courtesy filter: it saves a sandbox round trip on code that is plainly broken
or plainly hostile, and tells a repairing model why. It does not stop a determined candidate
from reaching the interpreter's internals or the ``os`` module: routes such as
``from typing import sys``, ``dataclasses.builtins``, ``operator.attrgetter("__globals__")``,
``string.Formatter().get_field`` and ``match`` class patterns pass it (each is a test that the
sandbox holds, ``tests/test_verifier_regressions.py``). The sandbox is the security boundary
and assumes the screen was bypassed.
"""

from __future__ import annotations

import ast
import warnings
from dataclasses import dataclass
from typing import Literal

from occ_gym.verifier.protocol import ALLOWED_MODULES

MAX_CODE_CHARS = 100_000

FORBIDDEN_CALLS: frozenset[str] = frozenset(
    {
        "__import__",
        "breakpoint",
        "compile",
        "eval",
        "exec",
        "globals",
        "input",
        "locals",
        "open",
        "vars",
    }
)
# Dunder names that ordinary code uses; every other dunder attribute or name is rejected,
# which closes the ``().__class__.__base__.__subclasses__()`` family of escapes.
ALLOWED_DUNDERS: frozenset[str] = frozenset(
    {
        "__init__",
        "__name__",
        "__doc__",
        "__len__",
        "__iter__",
        "__next__",
        "__contains__",
        "__getitem__",
        "__setitem__",
        "__eq__",
        "__ne__",
        "__lt__",
        "__le__",
        "__gt__",
        "__ge__",
        "__hash__",
        "__repr__",
        "__str__",
        "__add__",
        "__sub__",
        "__mul__",
        "__bool__",
        "__post_init__",
    }
)
# Imports that reach the operating system or the interpreter's internals: a safety matter.
# Any other module outside the allow list is merely unavailable: an import failure.
DANGEROUS_MODULES: frozenset[str] = frozenset(
    {
        "builtins",
        "ctypes",
        "gc",
        "importlib",
        "inspect",
        "io",
        "marshal",
        "mmap",
        "multiprocessing",
        "os",
        "pathlib",
        "pickle",
        "posix",
        "pty",
        "resource",
        "shutil",
        "signal",
        "socket",
        "subprocess",
        "sys",
        "tempfile",
    }
)
_ATTRIBUTE_FUNCTIONS = frozenset({"getattr", "setattr", "delattr", "hasattr"})


@dataclass(frozen=True)
class ScreenRejection:
    """Why a candidate was refused before running: a syntax error or an unsafe construct."""

    kind: Literal["syntax", "import", "safety"]
    reason: str
    line: int | None = None


@dataclass(frozen=True)
class ScreenPolicy:
    """What the screen lets through: importable modules and callable built-ins."""

    allowed_modules: frozenset[str] = ALLOWED_MODULES
    forbidden_calls: frozenset[str] = FORBIDDEN_CALLS

    def check(self, code: str) -> ScreenRejection | None:
        """Return why ``code`` must not run, or None when it may go to the sandbox."""
        return screen_code(code, self)


DEFAULT_POLICY = ScreenPolicy()


def screen_code(code: str, policy: ScreenPolicy = DEFAULT_POLICY) -> ScreenRejection | None:
    """Return why ``code`` must not run, or None when it may go to the sandbox."""
    if len(code) > MAX_CODE_CHARS:
        return ScreenRejection("safety", f"code is longer than {MAX_CODE_CHARS} characters")
    try:
        # A warning (``1if x``'s "invalid decimal literal") is no verdict: the same code must
        # screen alike whether or not the host turns warnings into errors (pytest does).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(code)
    except SyntaxError as error:
        return ScreenRejection("syntax", f"SyntaxError: {error.msg}", error.lineno)
    except (ValueError, RecursionError, MemoryError) as error:
        return ScreenRejection("syntax", f"cannot parse: {type(error).__name__}")
    for node in ast.walk(tree):
        reason = _unsafe(node, policy)
        if reason is not None:
            kind: Literal["import", "safety"] = (
                "import" if reason.startswith(IMPORT_UNAVAILABLE) else "safety"
            )
            return ScreenRejection(kind, reason, getattr(node, "lineno", None))
    return None


def _unsafe(node: ast.AST, policy: ScreenPolicy) -> str | None:
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] not in policy.allowed_modules:
                return _import_rejection(alias.name)
    elif isinstance(node, ast.ImportFrom):
        if node.level or node.module is None:
            return "relative imports are not allowed"
        if node.module.split(".")[0] not in policy.allowed_modules:
            return _import_rejection(node.module)
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        if node.func.id in policy.forbidden_calls:
            return f"call to {node.func.id}() is not allowed"
        if node.func.id in _ATTRIBUTE_FUNCTIONS and len(node.args) >= 2:
            name = node.args[1]
            if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                return f"{node.func.id}() with a computed attribute name is not allowed"
            if _forbidden_dunder(name.value):
                return f"{node.func.id}() of {name.value!r} is not allowed"
    elif isinstance(node, ast.Attribute) and _forbidden_dunder(node.attr):
        return f"access to attribute {node.attr!r} is not allowed"
    elif isinstance(node, ast.Name) and _forbidden_dunder(node.id):
        return f"use of name {node.id!r} is not allowed"
    return None


def _import_rejection(module: str) -> str:
    if module.split(".")[0] in DANGEROUS_MODULES:
        return f"import of {module!r} is not allowed"
    return f"{IMPORT_UNAVAILABLE}{module!r}"


IMPORT_UNAVAILABLE = "no module named "


def _forbidden_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__") and name not in ALLOWED_DUNDERS
