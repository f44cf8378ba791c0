"""The start order of hooks: the tree of apps, ``after=`` dependencies, cycles."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import TYPE_CHECKING

from aiohttp import web

from ..keys import LIFECYCLE_KEY
from .errors import HookOrderError

if TYPE_CHECKING:
    from .core import Lifecycle
    from .hooks import Hook

__all__ = ["collect_tree", "plan"]


def _subapps(app: web.Application) -> Iterator[tuple[str, web.Application]]:
    """Sub-apps mounted on ``app``, each with how it is reached (prefix or domain)."""
    for resource in app.router.resources():
        info = resource.get_info()
        sub = info.get("app")
        if isinstance(sub, web.Application):
            where = info.get("prefix") or getattr(info.get("rule"), "canonical", "a domain")
            yield str(where), sub


def collect_tree(root: Lifecycle) -> list[Lifecycle]:
    """``root`` and the lifecycles of the sub-apps below it that went through ``setup()``.

    Parents come before their sub-apps; each learns its parent and how it is reached.
    """
    tree: list[Lifecycle] = []
    seen: set[int] = set()

    def walk(
        app: web.Application,
        parent: Lifecycle | None,
        where: str,
        above: tuple[web.Application, ...],
    ) -> None:
        if id(app) in seen:
            return
        seen.add(id(app))
        lifecycle = root if app is root.app else app.get(LIFECYCLE_KEY)
        if lifecycle is not None:
            if lifecycle._root is not None:
                raise RuntimeError(
                    f"the sub-app{where} already started as part of another application: "
                    "mount a sub-app in one application only"
                )
            lifecycle._parent, lifecycle._where = parent, where
            lifecycle.apps_above = above
            tree.append(lifecycle)
            parent = lifecycle
        for prefix, sub in _subapps(app):
            walk(sub, parent, f" (sub-app {prefix})", (app, *above))

    walk(root.app, None, "", ())
    return tree


def plan(tree: list[Lifecycle]) -> list[Hook]:
    """The start order of every hook of ``tree``: dependencies first, else tree order."""
    hooks = [hook for lifecycle in tree for hook in lifecycle._hooks.values()]
    rank = {id(hook): i for i, hook in enumerate(hooks)}
    needs: dict[int, list[Hook]] = {}
    for hook in hooks:
        deps: list[Hook] = []
        for name in hook.after:
            found = _resolve(hook.owner, name)
            if found is None:
                known = sorted({n for lc in _lineage(hook.owner) for n in lc._hooks})
                raise HookOrderError(
                    f"{hook.kind} hook {hook.name!r}{hook.owner._where} runs after {name!r}, "
                    f"which is not a hook of this app or of an app it is mounted in "
                    f"(known: {', '.join(map(repr, known))})"
                )
            deps.append(found)
        needs[id(hook)] = deps
    waiting = {id(hook): len(needs[id(hook)]) for hook in hooks}
    dependents: dict[int, list[Hook]] = {id(hook): [] for hook in hooks}
    for hook in hooks:
        for dep in needs[id(hook)]:
            dependents[id(dep)].append(hook)
    ready = [(rank[id(hook)], hook) for hook in hooks if not waiting[id(hook)]]
    heapq.heapify(ready)
    order: list[Hook] = []
    while ready:
        _, hook = heapq.heappop(ready)
        order.append(hook)
        for dependent in dependents[id(hook)]:
            waiting[id(dependent)] -= 1
            if not waiting[id(dependent)]:
                heapq.heappush(ready, (rank[id(dependent)], dependent))
    if len(order) < len(hooks):
        raise HookOrderError(
            "lifecycle hooks depend on each other in a cycle: "
            + _describe_cycle([h for h in hooks if waiting[id(h)]], needs)
        )
    return order


def _lineage(lifecycle: Lifecycle) -> Iterator[Lifecycle]:
    current: Lifecycle | None = lifecycle
    while current is not None:
        yield current
        current = current._parent


def _resolve(owner: Lifecycle, name: str) -> Hook | None:
    for lifecycle in _lineage(owner):
        if name in lifecycle._hooks:
            return lifecycle._hooks[name]
    return None


def _describe_cycle(stuck: list[Hook], needs: dict[int, list[Hook]]) -> str:
    # Every stuck hook waits on another stuck hook: walking those edges must come back.
    stuck_ids = {id(hook) for hook in stuck}
    path: list[Hook] = []
    seen: dict[int, int] = {}
    hook = stuck[0]
    while id(hook) not in seen:
        seen[id(hook)] = len(path)
        path.append(hook)
        hook = next(dep for dep in needs[id(hook)] if id(dep) in stuck_ids)
    cycle = [*path[seen[id(hook)] :], hook]
    return " runs after ".join(f"{h.name!r}{h.owner._where}" for h in cycle)
