"""The responsive-image markup for a pre-warmed ladder: an HTML <picture> element, or the same as JSON."""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from urllib.parse import quote

from . import formats
from .ladder import LadderEntry, Manifest

Link = Callable[[str, str], str]  # (key, query) -> the URL of that variant

PLACEHOLDER_MAX = 64  # ladder widths up to this are a blurred placeholder, not a srcset candidate
_SOURCES = tuple((f.name, f.content_type) for f in formats.AUTO_ORDER)  # <source>s, best first
# The low-resolution placeholder is painted behind the image: only where no pixel of it can show through, i.e. when
# the fallback (the original's own format) cannot carry transparency, so neither can the original.
_OPAQUE = frozenset(f.name for f in formats.OUTPUTS.values() if not (f.alpha or f.binary_alpha))
PRIORITIES = ("high", "auto")  # ?picture&priority=: high = eager with fetchpriority="high"; auto (default) = lazy
# Whatever the container, the image never overflows it, and keeps its aspect ratio.
IMG_STYLE = "max-width:100%;height:auto"


def relative(key: str, query: str) -> str:
    return f"/{quote(key)}?{query}"


def absolute(base: str, link: Link = relative) -> Link:
    """Links under `base` (scheme://host[/stage], no trailing slash), so markup works wherever it is pasted."""
    base = base.rstrip("/")
    return lambda key, query: base + link(key, query)


def _candidates(manifest: Manifest, fmt: str) -> list[LadderEntry]:
    """One entry per distinct real width (an original smaller than a ladder width is never enlarged)."""
    by_width: dict[int, LadderEntry] = {}
    for entry in manifest.entries:
        if entry.format == fmt and entry.width > PLACEHOLDER_MAX:
            by_width.setdefault(entry.width, entry)
    return [by_width[w] for w in sorted(by_width)]


def _fallback_format(manifest: Manifest) -> str:
    formats = {e.format for e in manifest.entries} - {f for f, _ in _SOURCES}
    return sorted(formats)[0] if formats else "jpeg"


def html(manifest: Manifest, alt: str = "", sizes: str = "", link: Link = relative, priority: str = "auto") -> str:
    """<picture> with AVIF and WebP <source>s and an <img> in the original's format: sized (width and height, so no
    layout shift) but never wider than its container, lazy unless `priority` is high (then eager, fetched first),
    with a blurred placeholder behind it only for opaque originals. Candidates are the ladder's real widths, so
    never wider than the original."""
    fallback = _candidates(manifest, _fallback_format(manifest))
    if not fallback:
        fallback = _candidates(manifest, "webp")
    largest = fallback[-1] if fallback else None
    sizes = sizes or (f"(max-width: {largest.width}px) 100vw, {largest.width}px" if largest else "100vw")

    def srcset(entries: list[LadderEntry]) -> str:
        return ", ".join(f"{link(manifest.key, e.query)} {e.width}w" for e in entries)

    lines = ["<picture>"]
    for fmt, content_type in _SOURCES:
        entries = _candidates(manifest, fmt)
        if entries:
            lines.append(f'  <source type="{content_type}" srcset="{escape(srcset(entries))}" '
                         f'sizes="{escape(sizes)}">')
    width, height = (largest.width, largest.height) if largest else (manifest.width, manifest.height)
    src = link(manifest.key, largest.query) if largest else f"/{quote(manifest.key)}"
    fallback_format = _fallback_format(manifest)
    placeholder = [e for e in manifest.entries if e.width <= PLACEHOLDER_MAX and e.format == fallback_format]
    style = IMG_STYLE
    if placeholder and fallback_format in _OPAQUE:
        blurred = escape(link(manifest.key, placeholder[0].query))
        style += f";background-size:cover;background-image:url(&quot;{blurred}&quot;)"
    loading = 'loading="eager" fetchpriority="high"' if priority == "high" else 'loading="lazy"'
    lines.append(f'  <img src="{escape(src)}" srcset="{escape(srcset(fallback))}" sizes="{escape(sizes)}" '
                 f'width="{width}" height="{height}" alt="{escape(alt)}" {loading} decoding="async" '
                 f'style="{style}">')
    lines.append("</picture>")
    return "\n".join(lines) + "\n"


def as_json(manifest: Manifest, link: Link = relative) -> dict[str, object]:
    """The ladder as data: each variant's URL, size, format and bytes."""
    return {
        "key": manifest.key,
        "width": manifest.width,
        "height": manifest.height,
        "variants": [
            {"url": link(manifest.key, e.query), "width": e.width, "height": e.height, "format": e.format,
             "content_type": e.content_type, "bytes": e.bytes}
            for e in manifest.entries
        ],
    }
