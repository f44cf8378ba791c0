"""Sphinx configuration of the aiohttp-helpers documentation (built with -W -n: no warning)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))

import aiohttp_helpers  # noqa: E402

project = "aiohttp-helpers"
author = "the aiohttp-helpers authors"
copyright = "2026, the aiohttp-helpers authors"
release = version = aiohttp_helpers.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "myst_parser",
    "ah_tables",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = f"aiohttp-helpers {release}"
html_static_path: list[str] = []

autodoc_member_order = "bysource"
# Defaults as the source writes them (a sentinel shows its name, not "<object object at ...>").
autodoc_preserve_defaults = True
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

nitpicky = True

# Intersphinx only where an inventory is on this machine: the build never reaches the
# network. Debian's python3-doc package ships Python's inventory; aiohttp, yarl, multidict
# and aiosignal publish theirs only on the web, so their names stay plain text (below).
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
_PYTHON_INVENTORIES = [
    Path(f"/usr/share/doc/python3.{sys.version_info.minor}/html/objects.inv"),
    Path("/usr/share/doc/python3-doc/html/objects.inv"),
    Path("/usr/share/doc/python3/html/objects.inv"),
]
_python_inventory = next((p for p in _PYTHON_INVENTORIES if p.is_file()), None)
if _python_inventory is not None:
    intersphinx_mapping["python"] = ("https://docs.python.org/3", str(_python_inventory))

nitpick_ignore_regex = [
    # No offline inventory for these libraries (see above): their names are not linked.
    (
        "py:.*",
        r"(aiohttp|yarl|multidict|aiosignal|propcache|prometheus_client|opentelemetry|gunicorn|redis)(\..*)?",
    ),
    # Names the package's docstrings write as aiohttp's own modules do (``web.Request``).
    (
        "py:.*",
        r"(web|abc|hdrs|WSCloseCode|WSMsgType|WSMessage|ClientSession|ClientWebSocketResponse|StreamResponse|BodyPartReader|MultipartWriter|CIMultiDict|CIMultiDictProxy|MultiDict|MultiDictProxy|URL|Signal)(\..*)?",
    ),
    # Type variables and private helpers that signatures show.
    ("py:.*", r"(_[A-Za-z].*|.*\._[A-Za-z].*|[A-Z]|[A-Z]_co|P|R|T|Handler|Middleware)"),
]
if _python_inventory is None:
    # Without Python's inventory, standard-library names are plain text too.
    nitpick_ignore_regex.append(
        (
            "py:.*",
            r"(str|int|float|bool|bytes|bytearray|memoryview|object|None|type|list|dict|"
            r"tuple|set|frozenset|Exception|BaseException|ExceptionGroup|RuntimeError|"
            r"ValueError|TypeError|OSError|FileExistsError|FileNotFoundError|TimeoutError|"
            r"typing|collections|asyncio|os|pathlib|enum|types|datetime|logging|io|ssl|"
            r"socket|contextlib|contextvars|weakref|concurrent|tempfile|hashlib|re|random|"
            r"signal|json|dataclasses|functools|ipaddress|"
            r"Path|Any|Callable|Awaitable|AsyncIterator|Iterator|Iterable|Mapping|Sequence)"
            r"(\..*)?",
        )
    )

# Names that signatures show but that are not public: type variables, protocols and
# helpers of the package's modules (documented where they are used, not on their own).
nitpick_ignore_regex += [
    (
        "py:.*",
        r"(aiohttp_helpers\.[\w.]*\.)?(R|SafeSignal|InFlight|Observer|RequestScope|PartStream|"
        r"Level|Messages|Sender|AbstractStreamWriter|HookError)",
    ),
    # Members of ServerWebSocket that its docstrings name but that carry no docstring of
    # their own (so autodoc lists no target), and a private module.
    ("py:attr", r"close_sent|close_received|message_kind"),
    ("py:meth", r"messages"),
    ("py:mod", r"aiohttp_helpers\.websocket\.frames"),
    # Documented by Python as data, not as a class.
    ("py:class", r"types\.FrameType"),
]


def setup(app):  # type: ignore[no-untyped-def]
    """Keep napoleon away from attribute and property docstrings.

    The package's attribute docstrings are sentences ("Whether the subscription is up:
    ..."), never Google-style ``type: description``; napoleon would read the words before
    the first colon as a type. Function and class docstrings still go through napoleon.
    """
    from sphinx.ext import napoleon

    for listener in list(app.events.listeners["autodoc-process-docstring"]):
        if listener.handler is napoleon._process_docstring:
            app.disconnect(listener.id)

    def process(app, what, name, obj, options, lines):  # type: ignore[no-untyped-def]
        if what not in ("attribute", "property", "data"):
            napoleon._process_docstring(app, what, name, obj, options, lines)

    app.connect("autodoc-process-docstring", process)
    app.connect("missing-reference", _resolve_short_name)


def _resolve_short_name(app, env, node, contnode):  # type: ignore[no-untyped-def]
    """Resolve ``ClientWebSocket`` or ``ServerWebSocket.messages`` wherever it is documented.

    Docstrings name objects as their own module sees them; the reference documents many
    under ``aiohttp_helpers`` (re-exported) and others under their public submodule, so a
    short name is looked up by its dotted suffix, the shortest (public) full name first.
    """
    from sphinx.util.nodes import make_refnode

    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip(".~")
    objects = env.get_domain("py").objects
    found = sorted(
        (name for name in objects if name.endswith("." + target)), key=lambda n: (len(n), n)
    )
    if not found:
        return None
    entry = objects[found[0]]
    return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id, contnode)
