"""Rendered previews of shared notebooks: nbconvert's HTML of a snapshot, and the headers it
is served with. Outputs keep their HTML and scripts (a preview should look like the notebook),
so the document is sandboxed: an opaque origin that can run scripts but can reach neither the
platform's cookies nor its API, and that only the platform's own pages may frame.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nbconvert import HTMLExporter

# nbconvert (with its filters, bleach, mistune, pygments' lexers and jupyter_client) is
# imported by the first render, not with the service: ~9 MiB resident in a service where
# nobody may ever open a shared notebook (tests/service/test_service_imports.py).

# On the document that holds the notebook's outputs: no `allow-same-origin`, so it runs in an
# opaque origin whatever URL it came from, even when opened directly rather than framed.
PREVIEW_CSP = "sandbox allow-scripts; frame-ancestors 'self'"
# The service's own page around it: no scripts at all, frames only from the service.
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; frame-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "private, no-store",
}


# nbconvert's lab page loads require.js and MathJax from cdnjs: offline (and in air-gapped
# sites) every preview logs failed loads, and online each recipient's browser tells a third
# party what it opens. Without them outputs render the same; TeX stays as written.
_TEMPLATE = "mlfactory_preview.html.j2"
_OFFLINE = (
    "{%- extends 'lab/index.html.j2' -%}"
    "{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}"
    "{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}"
    "{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}"
)


_per_thread = threading.local()


def _exporter() -> HTMLExporter:
    """This worker thread's exporter. Building one compiles nbconvert's templates, a large
    part of a render (benchmarks/sharing.py), so each thread keeps its own; exporters are not
    for sharing between threads. ``from_notebook_node`` registers its per-notebook filters
    (the code lexer, the widget filter) afresh on every call, so nothing of one notebook
    reaches the next but the metadata nbconvert keeps by notebook name, cleared here."""
    exporter = getattr(_per_thread, "exporter", None)
    if exporter is None:
        from jinja2 import DictLoader
        from nbconvert import HTMLExporter

        exporter = _per_thread.exporter = HTMLExporter(
            template_name="lab",
            template_file=_TEMPLATE,
            extra_loaders=[DictLoader({_TEMPLATE: _OFFLINE})],
        )
    exporter._nb_metadata.clear()  # noqa: SLF001 - nbconvert grows it by name, never clears
    return exporter


def render(text: str, name: str) -> str:
    """The notebook ``text`` (nbformat 4 JSON) as one self-contained HTML document.

    ``name`` is the page title unless the notebook has its own; nbconvert's template escapes
    it, as it escapes code and text outputs (only HTML, SVG and JavaScript outputs and
    Markdown are HTML on purpose, and they live inside the sandbox). Blocking: call it in a
    worker thread.
    """
    import nbformat

    nb = nbformat.reads(text, as_version=4)
    body, _ = _exporter().from_notebook_node(nb, resources={"metadata": {"name": name}})
    return body
