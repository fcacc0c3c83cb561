"""Report import cycles in facelens and bench, at module and at package level.

Layers only point down if no import ever loops back, so this counts every loop the
interpreter could meet: the graph is grimp's (the library under import-linter) with
every import in it, those inside functions and those under ``TYPE_CHECKING`` included,
because a cycle hidden in a function or behind a type-checking guard is still two
modules that each need the other. A cycle is a strongly connected component of more
than one node: at module level over modules, at package level over packages, a
package being a module's first two dotted components (``facelens.people.matching`` is
in ``facelens.people``; a top-level module such as ``facelens.wiring`` or
``bench.suite`` is a package of its own).

Beside the cycles it reports what the architecture's figures are made of: the most
imported modules (fan-in: how many modules of the same root import each directly) and
the number of modules in each package.

Usage: ``python tools/import_cycles.py [--json] [--top N] [ROOT ...]`` (roots default
to facelens and bench). Exits 1 when any cycle exists, 0 otherwise, so CI can run it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ROOTS = ("facelens", "bench")
PACKAGE_DEPTH = 2  # facelens.people.matching -> facelens.people

Graph = Mapping[str, frozenset[str]]


@dataclass(frozen=True)
class Edge:
    """One import between two members of a cycle, with the module imports that make it."""

    importer: str
    imported: str
    imports: tuple[str, ...]  # "importer.module -> imported.module", at package level


@dataclass(frozen=True)
class Cycle:
    """A strongly connected component: each member reaches every other by imports."""

    members: tuple[str, ...]
    edges: tuple[Edge, ...]


@dataclass(frozen=True)
class FanIn:
    module: str
    importers: int


@dataclass(frozen=True)
class RootSummary:
    """The figures for one root package, counted among its own modules only."""

    root: str
    modules: int
    packages: int
    module_cycles: int
    package_cycles: int
    largest_fan_in: tuple[FanIn, ...]
    modules_per_package: dict[str, int]


@dataclass(frozen=True)
class Report:
    roots: tuple[RootSummary, ...]
    module_cycles: tuple[Cycle, ...]
    package_cycles: tuple[Cycle, ...]

    @property
    def cycle_count(self) -> int:
        return len(self.module_cycles) + len(self.package_cycles)


def package_of(module: str) -> str:
    return ".".join(module.split(".")[:PACKAGE_DEPTH])


def root_of(name: str) -> str:
    return name.split(".", 1)[0]


def build_module_graph(roots: Sequence[str]) -> Graph:
    """Every module of ``roots`` and what it imports among them, all imports counted."""
    for path in (REPO / "src", REPO):  # facelens lives under src/, bench at the top
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    graph = grimp.build_graph(
        *roots,
        include_external_packages=False,
        exclude_type_checking_imports=False,
        cache_dir=None,  # a one-off run: leave no cache directory in the checkout
    )
    return {
        module: frozenset(graph.find_modules_directly_imported_by(module))
        for module in sorted(graph.modules)
    }


def collapse_to_packages(modules: Graph) -> Graph:
    edges: dict[str, set[str]] = {}
    for importer, imported in modules.items():
        source = package_of(importer)
        targets = edges.setdefault(source, set())
        targets.update(package_of(module) for module in imported)
        targets.discard(source)
    return {package: frozenset(targets) for package, targets in edges.items()}


def strongly_connected(graph: Graph) -> list[tuple[str, ...]]:
    """Tarjan's algorithm without recursion (module chains run deeper than the stack)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[tuple[str, ...]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, pending = work[-1]
            if pending:
                child = pending.pop()
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, sorted(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(tuple(sorted(component)))
    return components


def cycles_of(graph: Graph, modules: Graph, *, packages: bool) -> tuple[Cycle, ...]:
    found = []
    for members in strongly_connected(graph):
        if len(members) < 2:
            continue
        inside = set(members)
        edges = [
            Edge(
                importer,
                imported,
                _module_imports(modules, importer, imported) if packages else (),
            )
            for importer in members
            for imported in sorted(graph[importer] & inside)
        ]
        found.append(Cycle(members, tuple(edges)))
    return tuple(sorted(found, key=lambda cycle: (-len(cycle.members), cycle.members)))


def _module_imports(modules: Graph, importer: str, imported: str) -> tuple[str, ...]:
    return tuple(
        f"{source} -> {target}"
        for source, targets in modules.items()
        if package_of(source) == importer
        for target in sorted(targets)
        if package_of(target) == imported
    )


def summarise(
    root: str,
    modules: Graph,
    module_cycles: Iterable[Cycle],
    package_cycles: Iterable[Cycle],
    top: int,
) -> RootSummary:
    own = {module: targets for module, targets in modules.items() if root_of(module) == root}
    fan_in = Counter(
        target for targets in own.values() for target in targets if root_of(target) == root
    )
    per_package = Counter(package_of(module) for module in own)

    def ours(cycle: Cycle) -> bool:
        return root_of(cycle.members[0]) == root

    return RootSummary(
        root=root,
        modules=len(own),
        packages=len(per_package),
        module_cycles=sum(1 for cycle in module_cycles if ours(cycle)),
        package_cycles=sum(1 for cycle in package_cycles if ours(cycle)),
        largest_fan_in=tuple(FanIn(module, count) for module, count in _ranked(fan_in)[:top]),
        modules_per_package=dict(_ranked(per_package)),
    )


def _ranked(counts: Counter[str]) -> list[tuple[str, int]]:
    """Largest count first, then by name, so two runs print the same order."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def analyse(roots: Sequence[str], top: int) -> Report:
    modules = build_module_graph(roots)
    packages = collapse_to_packages(modules)
    module_cycles = cycles_of(modules, modules, packages=False)
    package_cycles = cycles_of(packages, modules, packages=True)
    return Report(
        roots=tuple(summarise(root, modules, module_cycles, package_cycles, top) for root in roots),
        module_cycles=module_cycles,
        package_cycles=package_cycles,
    )


def render_text(report: Report) -> str:
    lines: list[str] = []
    for summary in report.roots:
        lines += [
            f"{summary.root}: {summary.modules} modules in {summary.packages} packages; "
            f"cycles: {summary.module_cycles} at module level, "
            f"{summary.package_cycles} at package level",
            "  largest fan-in (modules importing it directly):",
            *(f"    {entry.importers:4d}  {entry.module}" for entry in summary.largest_fan_in),
            "  modules per package:",
            *(f"    {count:4d}  {name}" for name, count in summary.modules_per_package.items()),
        ]
    for title, cycles in (
        ("module-level cycles", report.module_cycles),
        ("package-level cycles", report.package_cycles),
    ):
        lines.append(f"{title}: {len(cycles)}")
        for cycle in cycles:
            lines.append(f"  {len(cycle.members)} members: {', '.join(cycle.members)}")
            for edge in cycle.edges:
                lines.append(f"    {edge.importer} -> {edge.imported}")
                lines.extend(f"      {line}" for line in edge.imports)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("roots", nargs="*", default=list(DEFAULT_ROOTS), metavar="ROOT")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--top", type=int, default=10, help="how many fan-in entries to list")
    args = parser.parse_args(argv)
    report = analyse(tuple(args.roots), args.top)
    if args.json:
        text = json.dumps(asdict(report) | {"cycle_count": report.cycle_count}, indent=2)
    else:
        text = render_text(report)
    sys.stdout.write(text + "\n")  # a report on stdout, the one thing this script makes
    return 1 if report.cycle_count else 0


if __name__ == "__main__":
    sys.exit(main())
