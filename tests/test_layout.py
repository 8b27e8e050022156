"""The package's layout: imports run one way (tfllm/_tiers.py) and never in a circle.

Parsed with `ast`, nothing imported: every `import tfllm.x` and `from tfllm.x import y`,
inside functions too (a lazy import is still a dependency)."""

import ast
import pathlib
import sys

import pytest

import tfllm
from tfllm._tiers import TIERS, tier_of

ROOT = pathlib.Path(tfllm.__file__).parent


def _package(module):
    """'tfllm.runs.run_directory' -> 'runs'; 'tfllm.cli' -> 'cli'; 'tfllm' -> '__init__'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path):
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path):
    """The tfllm modules a file imports, resolving relative imports."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "tfllm")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "tfllm":
                continue
            if target == "tfllm":  # from tfllm import cli: the module named
                found.update(f"tfllm.{a.name}" for a in node.names)
            else:
                found.add(target)
    return found


def _edges():
    """{(importing package, imported package): [file, ...]} over the whole package."""
    edges = {}
    for path in sorted(ROOT.rglob("*.py")):
        here = _package(_module_name(path))
        for target in _imports(path):
            there = _package(target)
            if there != here:
                edges.setdefault((here, there), []).append(str(path.relative_to(ROOT.parent)))
    return edges


def _all_packages():
    names = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    names |= {p.stem for p in ROOT.glob("*.py")}
    return names | {"configs"}


def test_every_package_stands_on_one_tier():
    placed = [name for _, names in TIERS for name in names]
    assert len(placed) == len(set(placed)), "a package stands on two tiers"
    missing = sorted(_all_packages() - set(placed))
    assert not missing, f"packages on no tier (add them to tfllm/_tiers.py): {missing}"


def test_imports_run_down_the_tiers():
    upward = [f"{here} (tier {TIERS[tier_of(here)][0]}) imports {there} (tier "
              f"{TIERS[tier_of(there)][0]}) in {files[0]}"
              for (here, there), files in sorted(_edges().items())
              if tier_of(there) >= tier_of(here)]
    assert not upward, "imports against the tiers' order:\n" + "\n".join(upward)


def test_no_import_cycle_between_packages():
    graph = {}
    for here, there in _edges():
        graph.setdefault(here, set()).add(there)
    state = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                pytest.fail("import cycle: " + " -> ".join(path + [node, nxt]))
            if nxt not in state:
                visit(nxt, path + [node])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_the_checks_see_an_upward_import(tmp_path, monkeypatch):
    """The parser finds an import inside a function, and a lower tier naming a higher one
    is reported (the test above cannot pass by reading nothing)."""
    source = tmp_path / "tfllm" / "layers"
    source.mkdir(parents=True)
    (source / "x.py").write_text("def f():\n    from tfllm.training import trainer\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path / "tfllm")
    assert ("layers", "training") in _edges()
    assert tier_of("training") > tier_of("layers")


def test_no_source_file_is_ignored_by_git():
    """A file .gitignore hides is missing from a clean checkout, so from CI's wheel (a
    top-level `runs/` pattern once hid tfllm/runs/__init__.py)."""
    import shutil
    import subprocess

    repo = ROOT.parent
    if shutil.which("git") is None or not (repo / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(
        ["git", "ls-files", "--others", "--ignored", "--exclude-standard", "tfllm", "tests",
         "configs", "tools"], cwd=repo, capture_output=True, text=True, check=True).stdout
    hidden = [f for f in ignored.splitlines() if "__pycache__" not in f]
    assert not hidden, f"ignored by .gitignore, so missing from a clean checkout: {hidden}"
