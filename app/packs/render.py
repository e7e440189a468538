"""Pack prose (Markdown) to HTML that is safe to put in a page.

Packs come from outside, so whatever markdown-it-py produces goes through
nh3 (ammonia): no scripts, no event handlers, no `javascript:` URLs, no
styles beyond table alignment. Code samples in prose are highlighted by
Pygments into classed spans; `highlight_css()` gives the matching styles.
"""

from __future__ import annotations

import functools

import nh3
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

_CLASSED = ("code", "span", "pre", "div")
_TAGS = nh3.ALLOWED_TAGS - {"img", "map", "area"}  # no loads from third parties
_ATTRIBUTES: dict[str, set[str]] = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    **{tag: {"class"} for tag in _CLASSED},
    # markdown-it writes column alignment as an inline style
    "th": set(nh3.ALLOWED_ATTRIBUTES.get("th", ())) | {"style"},
    "td": set(nh3.ALLOWED_ATTRIBUTES.get("td", ())) | {"style"},
}
_URL_SCHEMES = {"http", "https", "mailto"}

_FORMATTER = HtmlFormatter(nowrap=True, classprefix="hl-")


def _highlight(code: str, lang: str, attrs: str) -> str:
    try:
        lexer = get_lexer_by_name(lang) if lang else None
    except ClassNotFound:
        lexer = None
    # "" tells markdown-it to escape the code itself
    return highlight(code, lexer, _FORMATTER) if lexer else ""


_MD = MarkdownIt("commonmark", {"highlight": _highlight}).enable("table")


@functools.lru_cache(maxsize=2048)
def render_markdown(text: str) -> str:
    """Markdown from a pack -> sanitized HTML."""
    return sanitize(_MD.render(text))


def sanitize(html: str) -> str:
    return nh3.clean(
        html,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        filter_style_properties={"text-align"},
        link_rel="noopener noreferrer nofollow",
    )


def highlight_python(code: str) -> str:
    """A snippet as classed spans (to wrap in <pre><code>), for read-only display."""
    return highlight(code, get_lexer_by_name("python"), _FORMATTER)


def highlight_css(selector: str = ".prose") -> str:
    """Styles for the `hl-` classes under `selector`."""
    return str(HtmlFormatter(classprefix="hl-").get_style_defs(selector))
