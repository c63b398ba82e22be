"""A model card's text as HTML: a few markdown forms, and never HTML of its own."""

from __future__ import annotations

from t2reg.cli.ui.markup import card_html


def test_markdown_forms_become_tags():
    html = card_html("# Title\n\nsome `code` here\nand more\n\n* one\n- two\n\n```\nx < y\n```")
    assert html == ("<h2>Title</h2><p>some <code>code</code> here and more</p><ul><li>one</li><li>two</li></ul>"
                    "<pre><code>x &lt; y</code></pre>")


def test_html_in_a_card_stays_text_everywhere():
    for text in ("<script>x()</script>", "# <img src=x onerror=y()>", "* <b>b</b>", "`<i>`", "```\n<svg>"):
        html = str(card_html(text))
        assert "<script" not in html and "<img" not in html and "<b>" not in html and "<i>" not in html
        assert "<svg" not in html and "&lt;" in html
