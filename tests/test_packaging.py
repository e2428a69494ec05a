"""One import name: the wheel installs `ostinato/` only, and the layers hold (import-linter)."""

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import REPO

STAGES = ("events", "symbolic", "render", "corpora")


def test_the_wheel_holds_only_the_ostinato_package_and_its_dist_info(tmp_path):
    source = tmp_path / "source"   # a copy: building writes build/ and egg-info beside the sources
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", "build", "*.egg-info", "__pycache__"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(source)],
                           check=True, capture_output=True, text=True, timeout=600)
    # setuptools warns (a screenful on every install) when a folder it can import is not declared
    assert "Warning" not in built.stdout + built.stderr, built.stdout + built.stderr
    (wheel,) = (tmp_path / "dist").glob("ostinato-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    version = wheel.name.split("-")[1]
    assert {name.split("/")[0] for name in names} == {"ostinato", f"ostinato-{version}.dist-info"}
    # the stages, the command, `python -m ostinato`, and the shipped weights with their cards
    for name in ("__init__.py", "__main__.py", "cli.py", "events/table.py", "symbolic/model.py",
                 "render/ddsp/engine.py", "corpora/batch.py",
                 "symbolic/pretrained/chorale-midi/model.safetensors",
                 "symbolic/pretrained/folk-abc/model_card.md",
                 "symbolic/pretrained/folk-abc/memory.safetensors",   # its memory of its training tunes
                 "symbolic/pretrained/folk-abc/memory.json",
                 "render/pretrained/ddsp-fluidr3/model.safetensors"):
        assert f"ostinato/{name}" in names, name
    assert not [n for n in names if n.startswith(("ostinato/tests/", "ostinato/benchmarks/", "ostinato/examples/"))]
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    with zipfile.ZipFile(wheel) as archive:
        assert "ostinato = ostinato.cli:main" in archive.read(entry_points).decode()


def test_python_dash_m_ostinato_is_the_command():
    result = subprocess.run([sys.executable, "-m", "ostinato", "--help"], capture_output=True, text=True,
                            cwd="/", timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: ostinato")


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            yield module, [a.name for a in node.names], node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno


def test_every_import_of_our_code_uses_the_one_name():
    """tests, benchmarks, examples and the package itself import `ostinato.*`, never `events`, `cli`..."""
    bare = []
    for path in REPO.rglob("*.py"):
        if {".git", "build"} & set(path.parts):
            continue
        for module, _names, line in _imports(path):
            if module.split(".")[0] in (*STAGES, "cli"):
                bare.append(f"{path.relative_to(REPO)}:{line}: {module}")
    assert bare == []


def test_no_private_name_is_imported_across_modules():
    """A helper whose name starts with `_` belongs to its module: no other module of ours imports it."""
    private = []
    for path in REPO.rglob("*.py"):
        if {".git", "build", "tests", "benchmarks", "examples"} & set(path.parts):
            continue
        for module, names, line in _imports(path):
            if module.startswith(("ostinato", ".")):
                private += [f"{path.relative_to(REPO)}:{line}: {module}.{n}" for n in names
                            if n.startswith("_") and not n.startswith("__")]
    assert private == []


def test_the_import_contracts_hold():
    """The layers of DESIGN.md (pyproject.toml [tool.importlinter]): a broken one names the import."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint) if lint.exists() else "lint-imports", "--no-cache"], capture_output=True,
                            text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "BROKEN" not in result.stdout


def test_the_package_level_import_graph_is_the_layers_of_design_md():
    """Which package imports which (every import, also those inside functions), as DESIGN.md draws them."""
    import grimp

    graph = grimp.build_graph("ostinato")
    packages = ("cli", "corpora", "symbolic", "render", "events")

    def package(module: str) -> str | None:
        return next((p for p in packages if module == f"ostinato.{p}" or module.startswith(f"ostinato.{p}.")), None)

    edges = set()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            a, b = package(module), package(imported)
            if a and b and a != b:
                edges.add((a, b))
    assert edges == {
        ("cli", "corpora"), ("cli", "symbolic"), ("cli", "render"), ("cli", "events"),
        ("corpora", "symbolic"), ("corpora", "render"), ("corpora", "events"),
        ("symbolic", "events"), ("render", "events"),
    }


def test_every_import_of_our_own_modules_resolves():
    """Also the imports inside functions (a moved module must not leave a lazy import behind)."""
    import importlib.util

    def exists(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:   # a parent that is a module, not a package
            return False

    missing = []
    for path in REPO.rglob("*.py"):
        if {".git", "build"} & set(path.parts):
            continue
        relative = path.relative_to(REPO)
        in_package = relative.parts[0] in (*STAGES, "cli.py", "__init__.py", "__main__.py")
        package = ".".join(("ostinato", *relative.parts[:-1])) if in_package else None
        for module, names, line in _imports(path):
            if module.startswith("."):
                if package is None:
                    continue
                module = importlib.util.resolve_name(module, package)
            if not module.startswith("ostinato"):
                continue
            if not exists(module):
                missing.append(f"{relative}:{line}: {module}")
                continue
            for name in names:   # `from ostinato.x import y`: y is a module or an attribute of x
                if not exists(f"{module}.{name}") and not hasattr(
                        importlib.import_module(module), name):
                    missing.append(f"{relative}:{line}: {module}.{name}")
    assert missing == []
