"""The package layout: no import cycle between modules or between packages (imports inside functions
included), no private name imported across modules, few loose modules at the top."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "spikemfm"


def _modules() -> dict[str, Path]:
    mods = {}
    for f in ROOT.rglob("*.py"):
        parts = list(f.relative_to(ROOT.parent).with_suffix("").parts)
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return mods


def _imports(mods: dict[str, Path]) -> tuple[dict[str, set[str]], list[tuple[str, str, str]]]:
    """(module -> spikemfm modules it imports anywhere in its body, [(importer, module, private name)])."""
    graph, private = {}, []
    for name, f in mods.items():
        pkg = name if f.name == "__init__.py" else name.rpartition(".")[0]
        out: set[str] = set()
        for n in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(n, ast.Import):
                out |= {a.name for a in n.names}
            elif isinstance(n, ast.ImportFrom):
                base = n.module or ""
                if n.level:
                    keep = pkg.split(".")[: len(pkg.split(".")) - n.level + 1]
                    base = ".".join(keep + ([n.module] if n.module else []))
                for a in n.names:
                    out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base)
                    if a.name.startswith("_") and base.startswith("spikemfm") and base != name:
                        private.append((name, base, a.name))
        graph[name] = {d for d in out if d in mods and d != name}
    return graph, private


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of a directed graph, or None (iterative depth-first search with colours)."""
    state: dict[str, int] = {}
    for start in sorted(graph):
        if state.get(start):
            continue
        stack, path = [(start, iter(sorted(graph[start])))], [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(child) == 1:
                return path[path.index(child):] + [child]
            elif not state.get(child):
                state[child] = 1
                stack.append((child, iter(sorted(graph.get(child, ())))))
                path.append(child)
    return None


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_no_import_cycle_between_modules():
    graph, _ = _imports(_modules())
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_no_import_cycle_between_packages():
    graph, _ = _imports(_modules())
    packages: dict[str, set[str]] = {}
    for a, deps in graph.items():
        for b in deps:
            pa, pb = _package(a), _package(b)
            if pa != pb and "spikemfm" not in (pa, pb):  # the top-level package re-exports the API
                packages.setdefault(pa, set()).add(pb)
    assert _cycle(packages) is None, " -> ".join(_cycle(packages))


def test_the_cycle_finder_finds_cycles():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_private_name_is_imported_across_modules():
    _, private = _imports(_modules())
    assert private == []


def test_at_most_five_loose_modules_at_the_top():
    loose = [f.name for f in ROOT.glob("*.py") if f.name not in ("__init__.py", "__main__.py")]
    assert len(loose) <= 5, loose
