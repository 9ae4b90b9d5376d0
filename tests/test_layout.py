"""The package's shape: no import circles, few shared modules at the top, plug-ins in static tables."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import stemscribe

ROOT = Path(stemscribe.__file__).resolve().parent
SHARED = {"__init__", "__main__", "audio", "cli", "errors", "midi", "progress", "result", "settings", "stems"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def import_graph() -> dict[str, set[str]]:
    """Module -> the stemscribe modules it imports anywhere (lazy imports too; not TYPE_CHECKING)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        skip = _type_checking_lines(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(tree):
            if getattr(node, "lineno", 0) in skip:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base])
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            deps.update(t for t in targets if t in modules and t != name)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return stack[stack.index(dep) :] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_circles() -> None:
    graph = import_graph()
    assert "stemscribe.transcription.pipeline" in graph
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_only_shared_modules_at_the_top() -> None:
    top = {p.stem for p in ROOT.glob("*.py")}
    assert top <= SHARED and len(top) <= 10, sorted(top - SHARED)
    folders = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert folders >= {"transcription", "separation", "jobs", "service", "web"}
    for folder in folders:  # each stage's __init__ says what it holds
        assert ast.get_docstring(ast.parse((ROOT / folder / "__init__.py").read_text())), folder


def test_stages_do_not_import_the_service_layer() -> None:
    for name, deps in import_graph().items():
        if name.startswith(("stemscribe.transcription", "stemscribe.separation", "stemscribe.score")):
            assert not {d for d in deps if d.startswith(("stemscribe.jobs", "stemscribe.service"))}, name


def test_separator_table_names_every_demucs_model() -> None:
    from stemscribe.separation.base import SEPARATORS
    from stemscribe.separation.weights import MODELS

    assert set(SEPARATORS) == {"hpss", "demucs", *MODELS}
    assert all(options.get("model") == name for name, (_, options) in SEPARATORS.items() if name in MODELS)


def test_importing_the_tables_imports_no_backend() -> None:
    code = (
        "import sys, stemscribe, stemscribe.separation, stemscribe.transcription.drums;"
        "bad = [m for m in ('torch', 'demucs', 'stemscribe.separation.demucs',"
        " 'stemscribe.transcription.drum_model', 'onnxruntime') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
