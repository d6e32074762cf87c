"""The package's structure: no module-level import cycle, and the light paths stay light."""

from __future__ import annotations

import ast
from pathlib import Path

import occ_gym

PACKAGE = Path(occ_gym.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(path: Path, modules: set[str]) -> set[str]:
    """occ_gym modules ``path`` imports when it is imported (not inside functions, not under
    ``TYPE_CHECKING``)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for inner in ast.walk(node) if not isinstance(node, ast.FunctionDef) else ():
            if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if isinstance(inner, ast.Import):
                names = [alias.name for alias in inner.names]
            elif isinstance(inner, ast.ImportFrom) and inner.module and inner.level == 0:
                # ``from pkg import submodule`` imports the submodule; other names come from pkg
                names = [
                    f"{inner.module}.{a.name}"
                    if f"{inner.module}.{a.name}" in modules
                    else inner.module
                    for a in inner.names
                ]
            else:
                continue
            found.update(name for name in names if name in modules)
    return found


def test_no_module_level_import_cycle():
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: top_level_imports(path, set(files)) - {name} for name, path in files.items()}

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        seen: set[str] = set()
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    return [*path, start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
        return None

    # A package's __init__ importing its own submodules is how packages re-export: not a cycle
    # unless a submodule imports the package back at module level.
    cycles = [c for name in graph if (c := cycle_from(name))]
    assert not cycles, cycles[0]


def test_the_readme_is_a_front_page_and_its_links_resolve():
    import re

    root = PACKAGE.parent
    readme = (root / "README.md").read_text()
    assert len(readme.splitlines()) < 200
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    for page in pages:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"
