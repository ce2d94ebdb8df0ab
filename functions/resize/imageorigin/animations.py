"""Animations made from several originals (POST /animations): validation, the key, get-or-render, store, markers.

An animation is stored once in the cache bucket at <version>/_animations/<sha256>.<ext>, the digest taken over the
canonical parameters, the originals' keys and their ETags: the same request on the same versions of the originals
is the same key, and is rendered once. Each member original's variant folder gets a marker, anim-<sha256>, recording
that original's ETag; pre-warm (an overwrite) and purge (a delete) remove the markers of other versions and the
animations they name (ladder.py), so an animation is never served once one of its pictures changed."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from PIL import Image

from . import render
from .config import Settings
from .deadline import Deadline
from .delivery import CacheStatus, Delivery, Kind, cache_control, limits
from .errors import BadKey, BadParameter, Conflict, ImageServiceError, OriginalNotFound, TooLarge
from .formats import Format
from .grammars.query import accepted_types
from .grammars.values import hex_colour
from .model import (
    ANIMATION_EXTENSIONS,
    ANIMATIONS,
    DEFAULT_BG,
    Fit,
    ResizeSpec,
    animation_key,
    animation_marker,
    canonicalize,
    check_key,
)
from .storage import SOURCE_ETAG, Blob, Store, strong_etag

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024  # the JSON body: up to MAX_FRAMES keys of up to 1024 bytes each, and the rest
MIN_DURATION_MS, MAX_DURATION_MS = 20, 10_000
DEFAULT_DURATION_MS = 500
MAX_LOOP = 65_535  # GIF's loop count is 16 bits
FORMATS = {"gif": Format.GIF, "webp": Format.WEBP}
DITHERS = {"floyd-steinberg": Image.Dither.FLOYDSTEINBERG, "none": Image.Dither.NONE}
FITS = (Fit.COVER, Fit.CONTAIN, Fit.FILL)
FIELDS = frozenset({"keys", "w", "h", "fit", "bg", "duration_ms", "loop", "format", "dither"})
CREATED_VIA = "animation"  # the marker's and the animation's metadata: what made them


@dataclass(frozen=True)
class AnimationRequest:
    """A validated request, in its canonical form: every default written out, the format resolved."""

    keys: tuple[str, ...]
    width: int | None  # None: from the first original's aspect (the other side given)
    height: int | None
    fit: Fit
    background: str
    durations: tuple[int, ...]  # one per frame, ms (GIF: whole centiseconds)
    loop: int  # 0: forever
    format: Format
    dither: str | None  # GIF only

    @property
    def extension(self) -> str:
        return self.format.value

    def canonical(self, etags: Sequence[str]) -> bytes:
        """The JSON the key is the digest of: the parameters, the keys, and the ETags of the originals' versions."""
        params = asdict(self) | {"fit": self.fit.value, "format": self.format.value, "etags": list(etags)}
        return json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Created:
    """What POST /animations answers: where the stored animation is, and what it is."""

    key: str  # in the cache bucket; also the path of its URL
    download_url: str
    frames: int
    width: int
    height: int
    bytes: int
    format: Format
    rendered: bool  # False: it was stored already

    @property
    def path(self) -> str:
        return "/" + self.key

    def to_json(self, url: str) -> dict[str, object]:
        return {"url": url, "download_url": self.download_url, "frames": self.frames, "width": self.width,
                "height": self.height, "bytes": self.bytes, "format": self.format.value}


def parse(body: bytes, accept: str, settings: Settings) -> AnimationRequest:
    """The request body, validated field by field (BadParameter naming the field; TooLarge naming the limit)."""
    if len(body) > MAX_BODY_BYTES:
        raise TooLarge(f"the request body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadParameter("body", "must be a JSON object") from None
    if not isinstance(raw, dict):
        raise BadParameter("body", "must be a JSON object")
    unknown = sorted(set(raw) - FIELDS)
    if unknown:
        raise BadParameter(unknown[0], f"unknown field; known: {', '.join(sorted(FIELDS))}")
    keys = _keys(raw.get("keys"), settings)
    width = _side("w", raw.get("w"), settings.max_output_side)
    height = _side("h", raw.get("h"), settings.max_output_side)
    if width is None and height is None:
        raise BadParameter("w", "give w, h or both: the size every frame is made to")
    fit = _choice("fit", raw.get("fit", "cover" if width and height else "contain"), {f.value: f for f in FITS})
    background = hex_colour("bg", _text("bg", raw.get("bg", DEFAULT_BG)), css=True)
    fmt = _format(raw.get("format", "auto"), accept)
    durations = _durations(raw.get("duration_ms", DEFAULT_DURATION_MS), len(keys), fmt)
    loop = _integer("loop", raw.get("loop", 0), 0, MAX_LOOP)
    dither = _choice("dither", raw.get("dither", "floyd-steinberg"), {d: d for d in DITHERS})
    return AnimationRequest(keys, width, height, fit, background, durations, loop, fmt,
                            dither if fmt is Format.GIF else None)


def _keys(value: object, settings: Settings) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        raise BadParameter("keys", "must be a list of the originals' keys, e.g. [\"photos/a.jpg\", \"photos/b.jpg\"]")
    if len(value) < 2:
        raise BadParameter("keys", "name at least 2 originals")
    if len(value) > settings.max_frames:
        raise TooLarge(f"the animation would have {len(value)} frames; the limit (MAX_FRAMES) is "
                       f"{settings.max_frames}")
    keys = []
    for index, key in enumerate(value):
        try:
            keys.append(check_key(key.removeprefix("/")))
        except BadKey as error:
            raise BadParameter("keys", f"[{index}]: {error.message}") from None
    return tuple(keys)


def _integer(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadParameter(name, f"must be a whole number from {low} to {high}")
    return value


def _side(name: str, value: object, max_side: int) -> int | None:
    return None if value is None else _integer(name, value, 1, max_side)


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise BadParameter(name, "must be a string")
    return value


def _choice(name: str, value: object, choices: Mapping[str, object]) -> object:
    text = _text(name, value).strip().lower()
    if text not in choices:
        raise BadParameter(name, f"must be one of {', '.join(choices)}")
    return choices[text]


def _format(value: object, accept: str) -> Format:
    """gif, webp, or auto: WebP when the client offers it (as fm=auto), else GIF, which every client shows."""
    name = _text("format", value).strip().lower()
    if name == "auto":
        return Format.WEBP if Format.WEBP.info.accept in accepted_types(accept) else Format.GIF
    return _choice("format", name, FORMATS)  # type: ignore[return-value]


def _durations(value: object, frames: int, fmt: Format) -> tuple[int, ...]:
    """One duration per frame: the one number for all, or the list of them. GIF keeps centiseconds, so its
    durations are rounded to 10 ms here (the key then names what the file holds)."""
    given = value if isinstance(value, list) else [value] * frames
    if len(given) != frames:
        raise BadParameter("duration_ms", f"must be one number or a list of {frames} (one per frame)")
    durations = tuple(_integer("duration_ms", d, MIN_DURATION_MS, MAX_DURATION_MS) for d in given)
    return tuple((d + 5) // 10 * 10 for d in durations) if fmt is Format.GIF else durations


def create(request: AnimationRequest, store: Store, settings: Settings,
           deadline: Deadline | None = None) -> Created:
    """The stored animation of these originals' current versions: found, or rendered, stored and marked.

    OriginalNotFound when an original is missing; TooLarge, Undecodable, UnsupportedType from the render; Conflict
    when an original was replaced while the animation was made (nothing is left stored then)."""
    deadline = deadline or Deadline.unbounded()
    store = store.within(deadline)
    if request.width and request.height:
        _check_output(request.width * request.height * len(request.keys), settings)
    etags = _current_etags(request.keys, store)
    found = _stored(request, etags, store, settings)
    if found is not None:
        return found

    deadline.check("render the animation", settings.time_reserve_ms)
    blobs = _read_within(request.keys, store, settings.max_source_bytes)
    read = {key: blob.etag.strip('"') for key, blob in blobs.items()}
    if [read[k] for k in request.keys] != etags:  # replaced since the HEAD: the key names what was read
        etags = [read[k] for k in request.keys]
        found = _stored(request, etags, store, settings)
        if found is not None:
            return found
    originals = [blobs[key].data for key in request.keys]
    spec = _spec(request, originals[0], settings)
    rendered = render.render_animation(
        originals, spec, request.durations, request.loop, limits(settings),
        Deadline(deadline.remaining_ms, deadline.reserve_ms + settings.time_reserve_ms),
        DITHERS[request.dither] if request.dither else None)
    deadline.check("store the animation")
    key = _key(request, etags, settings)
    _store(key, request, etags, rendered, store, settings)
    return Created(key, _download_url(key, request.format, store, settings), rendered.frames, rendered.width,
                   rendered.height, len(rendered.data), request.format, rendered=True)


def _check_output(pixels: int, settings: Settings) -> None:
    if pixels > settings.max_output_pixels:
        raise TooLarge(f"the output would be {pixels / 1e6:.1f} MP in all frames; the limit (MAX_OUTPUT_PIXELS) "
                       f"is {settings.max_output_pixels / 1e6:.1f} MP: ask for a smaller size or fewer frames")


def _current_etags(keys: Sequence[str], store: Store) -> list[str]:
    """Each original's current ETag (one HEAD per distinct key); OriginalNotFound naming the first missing one."""
    known: dict[str, str] = {}
    for key in dict.fromkeys(keys):
        etag = store.original_etag(key)
        if etag is None:
            raise OriginalNotFound(f"no image at {key!r}", key=key)
        known[key] = etag
    return [known[key] for key in keys]


def _key(request: AnimationRequest, etags: Sequence[str], settings: Settings) -> str:
    digest = hashlib.sha256(request.canonical(etags)).hexdigest()
    return animation_key(settings.key_version, digest, request.extension)


def _stored(request: AnimationRequest, etags: Sequence[str], store: Store, settings: Settings) -> Created | None:
    """The animation as stored already (its metadata says what it is), or None."""
    key = _key(request, etags, settings)
    meta = store.variant_metadata(key)
    if meta is None:
        return None
    try:
        frames, width, height, size = (int(meta[name]) for name in ("frames", "width", "height", "bytes"))
    except (KeyError, ValueError):
        return None  # written by something else: render it again
    return Created(key, _download_url(key, request.format, store, settings), frames, width, height, size,
                   request.format, rendered=False)


def _spec(request: AnimationRequest, first: bytes, settings: Settings) -> ResizeSpec:
    """The spec every frame is rendered with: the canvas (a missing side from the first original's aspect as
    displayed), the fit, bg, the format; enlarged, so that every frame fills the canvas whatever its size."""
    width, height = request.width, request.height
    if width is None or height is None:
        upright_w, upright_h = render.upright_size(first, limits(settings))  # an SVG's from its markup: not drawn
        if width is None:
            width = max(1, min(settings.max_output_side, round(height * upright_w / upright_h)))  # type: ignore[operator]
        else:
            height = max(1, min(settings.max_output_side, round(width * upright_h / upright_w)))
        _check_output(width * height * len(request.keys), settings)
    return canonicalize(ResizeSpec(width, height, request.fit, request.format, enlarge=True,
                                   background=request.background))


def _store(key: str, request: AnimationRequest, etags: Sequence[str], rendered: render.Rendered, store: Store,
           settings: Settings) -> None:
    """Markers first (so an overwrite's pre-warm from now on finds them), then the animation, then the originals'
    ETags once more: when one changed meanwhile, what was written is deleted and the request is a Conflict."""
    digest = key.rsplit("/", 1)[-1].split(".", 1)[0]
    markers = {animation_marker(k, settings.key_version, digest): etag for k, etag in zip(request.keys, etags,
                                                                                          strict=True)}
    written: list[str] = []
    try:
        for marker, etag in markers.items():
            written.append(marker)
            store.put_variant(marker, b"", "application/octet-stream", "no-store",
                              {SOURCE_ETAG: etag, "made-by": CREATED_VIA})
        written.append(key)
        store.put_variant(key, rendered.data, rendered.content_type, settings.variant_cache_control,
                          {"made-by": CREATED_VIA, "format": rendered.format.value,
                           "media-type": rendered.content_type, "width": str(rendered.width),
                           "height": str(rendered.height), "frames": str(rendered.frames),
                           "bytes": str(len(rendered.data))})
        if _current_etags(request.keys, store) == list(etags):
            return
        log.info("an original was replaced while the animation was made; removed", extra={"animation": key})
        reason: ImageServiceError = Conflict("an original was replaced while the animation was made: ask again")
    except ImageServiceError as error:  # StorageFault, OutOfTime, OriginalNotFound (deleted meanwhile)
        reason = error
    try:
        store.delete_variants(written)
    except ImageServiceError:
        log.error("an animation that could not be confirmed could not be deleted", extra={"animation": key})
    raise reason


def _download_url(key: str, fmt: Format, store: Store, settings: Settings) -> str:
    return store.variant_url(key, settings.presign_expires, download=f"animation.{fmt.value}")


def is_animation_path(path: str, settings: Settings) -> bool:
    """Whether a request path names a stored animation: /<version>/_animations/<name>."""
    return path.startswith(f"/{settings.key_version}/{ANIMATIONS}/")


def deliver(path: str, store: Store, settings: Settings, deadline: Deadline | None = None) -> Delivery:
    """GET of an animation's URL, served like any stored variant (inline, or a redirect when too large to answer
    inline); OriginalNotFound (404) when there is none, or no longer (an original in it changed)."""
    store = store.within(deadline or Deadline.unbounded())
    name = path.rsplit("/", 1)[-1]
    digest, _, extension = name.partition(".")
    if path != "/" + animation_key(settings.key_version, digest, extension) or extension not in \
            ANIMATION_EXTENSIONS or len(digest) != 64 or digest.strip("0123456789abcdef"):
        raise OriginalNotFound("no such animation")
    key = path.removeprefix("/")
    blob = store.get_variant(key, settings.inline_max_bytes)
    if blob is None:
        raise OriginalNotFound("no such animation (an original in it may have been replaced or deleted)")
    etag = blob.etag or strong_etag(blob.data)
    if blob.complete:
        return Delivery(CacheStatus.HIT, blob.content_type, etag, cache_control(Kind.VARIANT, settings),
                        body=blob.data, stored=True)
    location = (settings.public_cache_url + path if settings.public_cache_url
                else store.variant_url(key, settings.presign_expires))
    return Delivery(CacheStatus.HIT, blob.content_type, etag, cache_control(Kind.REDIRECT, settings),
                    location=location, stored=True)


def _read_within(keys: Sequence[str], store: Store, budget: int) -> dict[str, Blob]:
    """Every distinct original, read one after the other within one byte budget for them all (MAX_SOURCE_BYTES):
    an animation holds its originals at once, so it may not read more than one original may be."""
    blobs: dict[str, Blob] = {}
    used = 0
    for key in dict.fromkeys(keys):
        try:
            blobs[key] = store.get_original(key, budget - used)
        except TooLarge:
            raise TooLarge(f"the animation's originals pass MAX_SOURCE_BYTES ({budget} bytes) together: use fewer "
                           "or smaller pictures") from None
        used += len(blobs[key].data)
    return blobs
