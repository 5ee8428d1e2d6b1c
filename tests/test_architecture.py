"""Dependencies point one way: the import graph (tests/import_graph.py) against the layers below."""

from __future__ import annotations

import ast
from fnmatch import fnmatchcase

import import_graph as ig

# Bottom first. A module may import any module of a lower layer, and modules of its own group;
# never a module of a higher layer, nor of another group of its own layer (peers stay independent).
# `(by name)` edges are not checked: a "module:attr" string is how a lower module names a higher one
# it never imports itself (the provider registry its implementations, the CLI group its commands).
LAYERS: list[list[set[str]]] = [
    # foundations: no domain knowledge
    [
        {"switchyard", "_records", "errors"},
        {"patterns"},
        {"money"},
        {"usage_formats"},
        {"redact"},
        {"failures"},
        {"progress"},
        {"examples"},
    ],
    # values and languages
    [{"catalog", "catalog_import"}, {"task"}, {"rules", "rules.*"}, {"providers.command_template"}],
    # what is built on them
    [{"facts"}, {"prompts"}, {"demo"}, {"usage_parsers"}],
    [{"config", "config.*"}],
    [{"ledger", "ledger.*"}],
    # the parts the runner wires together; each knows nothing of the others
    [{"router"}, {"health"}, {"budgets"}, {"sources"}, {"report"}, {"providers", "providers.*"}],
    # pure machines over them: the attempt driver, the workflow stages; git worktrees and the checks run in them
    [{"driver"}, {"stages"}, {"worktree", "verify"}],
    [{"runner"}, {"dashboard"}, {"replay", "replay.*"}, {"delivery"}],
    # a task's verified outcome: its workspace, verification and delivery, for the coordinator's steps
    [{"outcome"}],
    [{"coordinator"}],
    [{"cli", "cli.*"}],
]


def place(module: str) -> tuple[int, int]:
    """(layer, group) of `module`: the group naming it, else the group whose pattern (`rules.*`) matches it."""
    short = module.removeprefix("switchyard.")
    groups = [(i, j, group) for i, layer in enumerate(LAYERS) for j, group in enumerate(layer)]
    found = [(i, j) for i, j, group in groups if short in group]
    if not found:
        found = [(i, j) for i, j, group in groups if any(fnmatchcase(short, pattern) for pattern in group)]
    assert len(found) == 1, f"{module} belongs to {len(found)} groups of LAYERS: place it in exactly one"
    return found[0]


def test_every_module_has_a_place() -> None:
    for module in ig.graph():
        place(module)


def test_no_import_cycle() -> None:
    assert ig.cycles(ig.runtime(ig.graph(), ig.EAGER, ig.LAZY)) == []


def test_dependencies_point_down() -> None:
    upward = []
    for module, deps in ig.graph().items():
        here = place(module)
        for dep, how in deps.items():
            there = place(dep)
            if how == ig.BY_NAME or there[0] < here[0] or there == here:
                continue
            where = "up a layer" if there[0] > here[0] else "to a peer of its own layer"
            upward.append(f"{module} -> {dep} ({how}) points {where} (see LAYERS)")
    assert upward == []


def test_the_architecture_doc_shows_the_current_graph() -> None:
    block = ig.doc_block(ig.DOC.read_text(encoding="utf-8"))
    assert block == ig.render(), "the import graph changed: run `.venv/bin/python tests/import_graph.py --write`"


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def test_did_you_mean_is_written_in_one_place() -> None:
    """Every "(did you mean ...)" hint comes from `errors.did_you_mean`."""
    spelt = []
    for module, path in ig.module_files().items():
        if module == "switchyard.errors":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            text = node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else ""
            if "did you mean" in text.lower() and id(node) not in skip:
                spelt.append(f"{path.relative_to(ig.ROOT)}:{node.lineno}")
    assert spelt == []


def test_graph_reader_sees_each_kind_of_import() -> None:
    # Checks on the reader itself, on real edges of the tree.
    g = ig.graph()
    assert g["switchyard.router"]["switchyard.facts"] == ig.EAGER
    assert g["switchyard.cli.route_cmd"]["switchyard.health"] == ig.LAZY
    assert g["switchyard.config.provider_kinds"]["switchyard.providers.http"] == ig.BY_NAME
    assert "switchyard.config.schema" not in g["switchyard.catalog"]  # imported under TYPE_CHECKING only
