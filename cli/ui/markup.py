"""A model card's text as HTML, the way the Hub shows a card's common parts, never passing HTML through.

Everything is escaped first; only then are a few markdown forms turned into tags: ``#`` headings, ``*``/``-``
list items, fenced code blocks, inline ``code`` and paragraphs. A ``<script>`` in a description stays text.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

_CODE = re.compile(r"`([^`]+)`")
_HEADING = re.compile(r"(#{1,4})\s+(.*)")
_ITEM = re.compile(r"[*-]\s+(.*)")


def card_html(text: str) -> Markup:
    blocks: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []
    code: list[str] | None = None

    def flush() -> None:
        if paragraph:
            blocks.append(f"<p>{_inline(' '.join(paragraph))}</p>")
            paragraph.clear()
        if items:
            blocks.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
            items.clear()

    for line in text.splitlines():
        if line.strip().startswith("```"):
            if code is None:
                flush()
                code = []
            else:
                blocks.append(f"<pre><code>{escape(chr(10).join(code))}</code></pre>")
                code = None
            continue
        if code is not None:
            code.append(line)
        elif not line.strip():
            flush()
        elif heading := _HEADING.fullmatch(line.strip()):
            flush()
            level = len(heading.group(1)) + 1  # the page's own title is the h1
            blocks.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif item := _ITEM.fullmatch(line.strip()):
            if paragraph:
                flush()
            items.append(item.group(1))
        else:
            if items:
                flush()
            paragraph.append(line.strip())
    if code is not None:  # an unclosed fence: what it holds is still shown
        blocks.append(f"<pre><code>{escape(chr(10).join(code))}</code></pre>")
    flush()
    return Markup("".join(blocks))


def _inline(text: str) -> str:
    """Escaped text with `code` spans (the backticks survive escaping, so the match runs on escaped text)."""
    return _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", str(escape(text)))
