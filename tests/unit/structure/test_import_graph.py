"""No import cycles anywhere in the shipped code, counting every import statement wherever it
stands: inside functions, under `if TYPE_CHECKING:`, in try blocks. (import-linter's layers
contract keeps the direction between packages; this keeps every module honest.)"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("node", "p2p", "consensus", "simulator")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def shipped_modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        base = ROOT / package
        if base.is_dir():
            for path in sorted(base.rglob("*.py")):
                modules[_module_name(path)] = path
    for path in sorted((ROOT / "scripts").glob("*.py")):
        modules[f"scripts.{path.stem}"] = path
    return modules


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The shipped modules that `name` imports, anywhere in its file."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[: -(node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            if name.startswith("scripts.") and f"scripts.{target}" in known:
                target = f"scripts.{target}"  # a script's sibling module
            if target in known and target != name:
                found.add(target)
            elif target == name:
                found.add(target)  # a module importing itself is a cycle of one
    # `from a.b import c` names module a.b.c when it exists; otherwise c is an attribute of
    # a.b and the edge is to a.b. Keep the most specific edge only.
    return {t for t in found if not any(o != t and o.startswith(t + ".") for o in found)} | {
        t for t in found if t == name
    }


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a self-import (Tarjan,
    iterative so that a deep graph cannot hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            advanced = False
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, ()):
                    cycles.append(sorted(component))
    return cycles


def test_no_module_imports_one_that_imports_it_back() -> None:
    modules = shipped_modules()
    known = set(modules)
    graph = {name: imports_of(name, path, known) for name, path in modules.items()}
    assert len(graph) > 80, "the scan found too few modules"
    assert find_cycles(graph) == []


def test_the_cycle_finder_finds_cycles() -> None:
    """It would be a test that cannot fail otherwise."""
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"a"}}) == [["a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_function_local_and_type_checking_imports_count(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "one.py").write_text("def f():\n    from pkg import two\n")
    (pkg / "two.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.one import f\n"
    )
    known = {"pkg", "pkg.one", "pkg.two"}
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        graph = {
            m: imports_of(m, tmp_path / (m.replace(".", "/") + ".py"), known)
            for m in ("pkg.one", "pkg.two")
        }
    finally:
        ROOT = saved
    assert graph == {"pkg.one": {"pkg.two"}, "pkg.two": {"pkg.one"}}
    assert find_cycles(graph) == [["pkg.one", "pkg.two"]]
