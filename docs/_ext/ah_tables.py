"""Behaviour tables rendered from the package's own tables, so the docs cannot drift.

Directives:

``.. ah-error-table::``
    Every class of the ``HelpersError`` tree (``aiohttp_helpers.errors`` and the feature
    modules that extend it), depth first: HTTP status, problem ``type`` and the first line
    of its docstring.
``.. ah-close-code-table::``
    Every close code of ``aiohttp_helpers.websocket.codes``: name, meaning, who may send
    it and what a client should do (the ``Retry`` member's own ``#:`` comment).
``.. ah-reconnect-table::``
    The same codes grouped by what a client should do after them.
``.. ah-signature-table:: aiohttp_helpers.add_resumable_uploads``
    A function's keyword options with the defaults of its signature, and the meanings the
    page gives (``name: meaning`` lines; a missing or unknown one is a warning).
``.. ah-unreleased::``
    The towncrier fragments in ``CHANGES/`` not yet collected into ``CHANGES.rst``,
    grouped by the types ``pyproject.toml`` declares, as the next release will show them.
``.. ah-settings-table:: aiohttp_helpers.UploadLimits``
    Every field of a settings dataclass with its default. The meaning comes from the
    field's ``metadata["doc"]``, its ``#:`` comment, or the clauses of the class docstring
    that name it; the directive's content may add ``name: meaning`` lines for fields the
    code does not describe. A field with no meaning, or a content line for a field that
    does not exist, is a warning (so a ``-W`` build fails when the code and the page part).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

import aiohttp_helpers

logger = logging.getLogger(__name__)

KiB = 2**10
MiB = 2**20


def _summary(obj: object) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().split("\n\n", 1)[0].replace("\n", " ").strip()


def _cell(text: str) -> str:
    return text.replace("|", "\\|") if text else "\\-"


def _ref(cls: type) -> str:
    if cls.__name__ in aiohttp_helpers.__all__:
        return f":class:`~aiohttp_helpers.{cls.__name__}`"
    return f"``{cls.__name__}``"


class _TableDirective(SphinxDirective):
    def render(
        self, header: list[str], rows: list[list[str]], widths: str = "auto"
    ) -> list[nodes.Node]:
        lines = [".. list-table::", "   :header-rows: 1", f"   :widths: {widths}", ""]
        for row in [header, *rows]:
            first = True
            for cell in row:
                prefix = "   * - " if first else "     - "
                lines.append(prefix + cell)
                first = False
        container = nodes.container()
        self.state.nested_parse(
            StringList(lines, source=self.get_source_info()[0]), self.content_offset, container
        )
        return list(container.children)


PROBLEM_PREFIX = "urn:aiohttp-helpers:problem:"


def _short_type(uri: str) -> str:
    """The package's own problem types by their last part; others (IANA's) in full."""
    return uri.removeprefix(PROBLEM_PREFIX)


class ErrorTable(_TableDirective):
    """The HelpersError tree: class, status, problem type, meaning."""

    def run(self) -> list[nodes.Node]:
        rows: list[list[str]] = []

        def walk(cls: type[aiohttp_helpers.HelpersError], depth: int) -> None:
            shown = not cls.__name__.startswith("_")
            if shown:
                indent = "\u00a0\u00a0\u00a0\u00a0" * depth
                rows.append(
                    [
                        indent + _ref(cls),
                        str(cls.status),
                        f"``{_short_type(cls.problem_type())}``",
                        _cell(_summary(cls)),
                    ]
                )
            children = sorted(cls.__subclasses__(), key=lambda c: (c.status, c.__name__))
            for child in children:
                walk(child, depth + 1 if shown else depth)

        walk(aiohttp_helpers.HelpersError, 0)
        return self.render(["error", "status", "problem ``type``", "meaning"], rows, "30 8 35 40")


class CloseCodeTable(_TableDirective):
    """Every close code with its meaning, sender and the reconnect advice."""

    def run(self) -> list[nodes.Node]:
        from aiohttp_helpers.websocket import codes

        attr_docs = ModuleAnalyzer.for_module(codes.__name__).find_attr_docs()
        advice = {
            member: " ".join(attr_docs.get(("Retry", member.name), [member.value])).strip()
            for member in codes.Retry
        }
        rows = []
        for code in [*sorted(codes._TABLE), 3000, 4000]:  # every named code, then the ranges
            info = codes.close_code_info(code)
            shown = {3000: "3000-3999", 4000: "4000-4999"}.get(code, str(code))
            rows.append(
                [
                    shown,
                    f"``{info.name}``",
                    _cell(info.meaning),
                    info.sender.value,
                    _cell(advice[info.retry]),
                ]
            )
        return self.render(
            ["code", "name", "meaning", "who may send it", "a client should"],
            rows,
            "10 20 35 15 30",
        )


class ReconnectTable(_TableDirective):
    """The close codes grouped by what a client should do after them."""

    def run(self) -> list[nodes.Node]:
        from aiohttp_helpers.websocket import codes

        attr_docs = ModuleAnalyzer.for_module(codes.__name__).find_attr_docs()
        groups: dict[object, list[str]] = {}
        for code in [*sorted(codes._TABLE), 3000, 4000]:  # every named code, then the ranges
            info = codes.close_code_info(code)
            shown = {3000: "3000-3999", 4000: "4000-4999"}.get(code, f"{code} ``{info.name}``")
            groups.setdefault(info.retry, []).append(shown)
        rows = [
            [", ".join(shown), _cell(" ".join(attr_docs.get(("Retry", retry.name), [])))]  # type: ignore[attr-defined]
            for retry, shown in groups.items()
        ]
        return self.render(["close code", "a client should"], rows, "45 55")


def _format_default(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return f"``{value!r}``"
    if isinstance(value, int) and value >= KiB:
        for unit, size in (("MiB", MiB), ("KiB", KiB)):
            if value % size == 0:
                return f"{value // size} {unit} (``{value}``)"
    return f"``{value!r}``"


def _docstring_clauses(cls: type, name: str, names: set[str]) -> str:
    """The clauses of ``cls``'s docstring about field ``name``.

    A clause whose subject is ``name`` (the field names it starts with: ``a`` and ``b``
    ...) starts its description; the clauses after it in the same sentence that start with
    no field name continue it.
    """
    doc = " ".join((inspect.getdoc(cls) or "").split())
    sentences = re.split(r"(?<=[.])\s+(?=``|[A-Z])", doc)
    found: list[str] = []
    for sentence in sentences:
        owners: set[str] = set()
        for clause in re.split(r";\s+", sentence):
            leading = re.match(r"\(?((?:``\w+``(?:,\s*|\s+and\s+|\s+or\s+)?)+)", clause)
            named = set(re.findall(r"``(\w+)``", leading.group(1))) & names if leading else set()
            if named:
                owners = named
            if name in owners:
                clause = clause.strip().rstrip(".;")
                if clause and clause not in found:
                    found.append(clause)
    return "; ".join(found)


class SettingsTable(_TableDirective):
    """Every field of a settings dataclass, with its default and meaning."""

    required_arguments = 1
    has_content = True

    def run(self) -> list[nodes.Node]:
        module_name, _, class_name = self.arguments[0].rpartition(".")
        cls = getattr(importlib.import_module(module_name), class_name)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        real_module = importlib.import_module(cls.__module__)
        attr_docs = ModuleAnalyzer.for_module(real_module.__name__).find_attr_docs()
        extra: dict[str, str] = {}
        for line in self.content:
            if not line.strip():
                continue
            key, _, text = line.partition(":")
            key = key.strip()
            if key not in fields:
                logger.warning(
                    "%s has no field %r (described in the page)",
                    cls.__name__,
                    key,
                    location=self.get_location(),
                )
                continue
            extra[key] = text.strip()
        rows = []
        for name, field in fields.items():
            meanings = [
                str(field.metadata.get("doc", "")),
                " ".join(attr_docs.get((cls.__name__, name), [])),
                _docstring_clauses(cls, name, set(fields)),
                extra.get(name, ""),
            ]
            meaning = "; ".join(m for m in meanings if m)
            if not meaning:
                logger.warning(
                    "%s.%s has no meaning documented",
                    cls.__name__,
                    name,
                    location=self.get_location(),
                )
            if field.default is not dataclasses.MISSING:
                default = _format_default(field.default)
            elif field.default_factory is not dataclasses.MISSING:
                default = _format_default(field.default_factory())
            else:
                default = "(required)"
            rows.append([f"``{name}``", default, _cell(meaning)])
        return self.render(["option", "default", "meaning"], rows, "22 18 60")


class Unreleased(SphinxDirective):
    """The fragments of ``CHANGES/``, grouped by type as towncrier will."""

    def run(self) -> list[nodes.Node]:
        import tomllib
        from pathlib import Path

        root = Path(self.env.srcdir).parent
        config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
        towncrier = config["tool"]["towncrier"]
        folder = root / towncrier.get("directory", "CHANGES/")
        lines: list[str] = []
        for kind in towncrier.get("type", []):
            found = []
            for path in folder.glob(f"*.{kind['directory']}*.rst"):
                issue, _, rest = path.name.partition(".")
                if rest.split(".")[0] != kind["directory"] or not issue.isdigit():
                    continue
                found.append((int(issue), path.name, path.read_text(encoding="utf-8").strip()))
            if not found:
                continue
            lines += [f".. rubric:: {kind['name']}", ""]
            for issue, _, text in sorted(found):
                body = text.split("\n")
                lines.append(f"- {body[0]}")
                lines += [f"  {line}" if line.strip() else "" for line in body[1:]]
                lines[-1] += f" (#{issue})"
                lines.append("")
        if not lines:
            lines = ["Nothing yet."]
        container = nodes.container()
        source = self.get_source_info()[0]
        self.state.nested_parse(StringList(lines, source=source), self.content_offset, container)
        return list(container.children)


class SignatureTable(_TableDirective):
    """A function's parameters with the defaults of its signature.

    The content gives each parameter's meaning as ``name: meaning`` (and, for a default
    the signature cannot show, such as ``None`` meaning "the app's", ``name: [shown
    default] meaning``). A parameter without a line, or a line for a parameter the function
    does not have, is a warning.
    """

    required_arguments = 1
    has_content = True

    def run(self) -> list[nodes.Node]:
        module_name, _, name = self.arguments[0].rpartition(".")
        func = getattr(importlib.import_module(module_name), name)
        params = {
            p.name: p
            for p in inspect.signature(func).parameters.values()
            if p.name not in ("self", "app")
        }
        meanings: dict[str, tuple[str | None, str]] = {}
        for line in self.content:
            if not line.strip():
                continue
            key, _, text = line.partition(":")
            key, text = key.strip(), text.strip()
            shown = None
            if text.startswith("["):
                shown, _, text = text[1:].partition("]")
                text = text.strip()
            if key not in params:
                logger.warning(
                    "%s has no parameter %r (described in the page)",
                    name,
                    key,
                    location=self.get_location(),
                )
                continue
            meanings[key] = (shown, text)
        rows = []
        for key, param in params.items():
            if key not in meanings:
                logger.warning(
                    "%s(%s=...) has no meaning documented", name, key, location=self.get_location()
                )
            shown, text = meanings.get(key, (None, ""))
            if param.default is inspect.Parameter.empty:
                default = "(required)"
            else:
                default = _format_default(param.default)
                if shown:
                    default += f": {shown}"
            rows.append([f"``{key}``", default, _cell(text)])
        return self.render(["option", "default", "meaning"], rows, "22 18 60")


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("ah-error-table", ErrorTable)
    app.add_directive("ah-close-code-table", CloseCodeTable)
    app.add_directive("ah-reconnect-table", ReconnectTable)
    app.add_directive("ah-settings-table", SettingsTable)
    app.add_directive("ah-unreleased", Unreleased)
    app.add_directive("ah-signature-table", SignatureTable)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
