"""The responsive-image markup for a pre-warmed ladder: an HTML <picture> element, or the same as JSON."""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from .service import LadderEntry, Manifest

PLACEHOLDER_MAX = 64  # ladder widths up to this are a blurred placeholder, not a srcset candidate
_SOURCES = (("avif", "image/avif"), ("webp", "image/webp"))


def url(key: str, entry: LadderEntry) -> str:
    return f"/{quote(key)}?{entry.query}"


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


def html(manifest: Manifest, alt: str = "", sizes: str = "") -> str:
    """<picture> with AVIF and WebP <source>s and an <img> in the original's format (lazy, async, sized)."""
    fallback = _candidates(manifest, _fallback_format(manifest))
    if not fallback:
        fallback = _candidates(manifest, "webp")
    largest = fallback[-1] if fallback else None
    sizes = sizes or (f"(max-width: {largest.width}px) 100vw, {largest.width}px" if largest else "100vw")

    def srcset(entries: list[LadderEntry]) -> str:
        return ", ".join(f"{url(manifest.key, e)} {e.width}w" for e in entries)

    lines = ["<picture>"]
    for fmt, content_type in _SOURCES:
        entries = _candidates(manifest, fmt)
        if entries:
            lines.append(f'  <source type="{content_type}" srcset="{escape(srcset(entries))}" '
                         f'sizes="{escape(sizes)}">')
    width, height = (largest.width, largest.height) if largest else (manifest.width, manifest.height)
    src = url(manifest.key, largest) if largest else f"/{quote(manifest.key)}"
    placeholder = [e for e in manifest.entries if e.width <= PLACEHOLDER_MAX and e.format == _fallback_format(manifest)]
    style = (f' style="background-size:cover;background-image:url(&quot;{escape(url(manifest.key, placeholder[0]))}'
             f'&quot;)"' if placeholder else "")
    lines.append(f'  <img src="{escape(src)}" srcset="{escape(srcset(fallback))}" sizes="{escape(sizes)}" '
                 f'width="{width}" height="{height}" alt="{escape(alt)}" loading="lazy" decoding="async"{style}>')
    lines.append("</picture>")
    return "\n".join(lines) + "\n"


def as_json(manifest: Manifest) -> dict[str, object]:
    """The ladder as data: each variant's URL, size, format and bytes."""
    return {
        "key": manifest.key,
        "width": manifest.width,
        "height": manifest.height,
        "variants": [
            {"url": url(manifest.key, e), "width": e.width, "height": e.height, "format": e.format,
             "content_type": e.content_type, "bytes": e.bytes}
            for e in manifest.entries
        ],
    }
