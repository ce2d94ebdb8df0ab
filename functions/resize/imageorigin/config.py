"""Settings read from the environment in one place, validated once, every problem reported together."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from types import MappingProxyType
from typing import Any

MIB = 1024 * 1024


class ConfigError(ValueError):
    """One or more settings are missing or malformed; the message lists them all."""


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _text(raw: str) -> str:
    return raw.strip()


def _widths(raw: str) -> tuple[int, ...]:
    widths = tuple(sorted({_positive_int(part) for part in raw.split(",") if part.strip()}, reverse=True))
    if not widths:
        raise ValueError("must list at least one width, e.g. 540,1080")
    return widths


def _formats(raw: str) -> tuple[str, ...]:
    from .formats import OUTPUTS

    known = [f.name for f in OUTPUTS.values()] + ["original"]
    names = tuple(dict.fromkeys(part.strip().lower() for part in raw.split(",") if part.strip()))
    unknown = set(names) - set(known)
    if not names or unknown:
        raise ValueError(f"must list formats among {', '.join(known)}; got {sorted(unknown)}")
    return names


def _presets(raw: str) -> Mapping[str, str]:
    presets = json.loads(raw)
    if not isinstance(presets, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in
                                                 presets.items()):
        raise ValueError('must be a JSON object of name -> query, e.g. {"thumb": "w=150&h=150&fit=cover"}')
    return MappingProxyType(presets)


DEFAULT_PRESETS = MappingProxyType({
    "placeholder": "w=30",
    "thumb": "w=150&h=150&fit=cover",
    "small": "w=540",
    "medium": "w=768",
    "large": "w=1080",
    "xlarge": "w=1200",
})


def _secrets(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _signatures(raw: str) -> str:
    mode = raw.strip().lower()
    if mode not in ("auto", "required", "optional"):
        raise ValueError("must be auto, required or optional")
    return mode


def _key_source(raw: str) -> str:
    raw = raw.strip()
    if raw and not raw.startswith(("ssm:", "secretsmanager:")):
        raise ValueError("must be ssm:<parameter name> or secretsmanager:<secret id>")
    return raw


def _sizes(raw: str) -> tuple[int, ...]:
    return tuple(sorted({_positive_int(part) for part in raw.split(",") if part.strip()}))


def _step(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be 0 (off) or a positive number of pixels")
    return value


def _enabled(raw: str) -> bool:
    if raw.strip().lower() not in ("true", "false", "1", "0"):
        raise ValueError("must be true or false")
    return raw.strip().lower() in ("true", "1")


def _base_url(raw: str) -> str:
    raw = raw.strip().rstrip("/")
    if raw and not raw.startswith(("https://", "http://")):
        raise ValueError("must start with https:// or http://")
    return raw


def _setting(env: str, default: Any, parse: Callable[[str], Any], doc: str) -> Any:
    metadata = {"env": env, "parse": parse, "doc": doc, "default": default}
    if isinstance(default, Mapping):  # unhashable: a dataclass needs a factory for it
        return field(default_factory=lambda: default, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with the environment variable each field is read from."""

    originals_bucket: str = _setting("ORIGINALS_BUCKET", "", _text, "S3 bucket the originals are read from")
    cache_bucket: str = _setting("CACHE_BUCKET", "", _text, "S3 bucket variants are written to and served from")
    max_output_side: int = _setting("MAX_OUTPUT_SIDE", 4096, _positive_int, "largest width or height rendered, px")
    max_source_bytes: int = _setting("MAX_SOURCE_BYTES", 25 * MIB, _positive_int, "largest original read, bytes")
    max_source_pixels: int = _setting(
        "MAX_SOURCE_PIXELS", 40_000_000, _positive_int, "largest original decoded, pixels (width x height)"
    )
    inline_max_bytes: int = _setting(
        "INLINE_MAX_BYTES", 4_500_000, _positive_int, "largest image answered inline (base64); larger ones get a 302"
    )
    public_cache_url: str = _setting(
        "PUBLIC_CACHE_URL", "", _base_url, "base URL the cache bucket is public at (302 target); presigned if empty"
    )
    presign_expires: int = _setting("PRESIGN_EXPIRES", 3600, _positive_int, "lifetime of presigned 302 URLs, s")
    variant_cache_control: str = _setting(
        "VARIANT_CACHE_CONTROL", "public, max-age=31536000, immutable", _text, "Cache-Control of variants"
    )
    original_cache_control: str = _setting(
        "ORIGINAL_CACHE_CONTROL", "public, max-age=86400", _text, "Cache-Control of originals served as they are"
    )
    error_cache_control: str = _setting(
        "ERROR_CACHE_CONTROL", "public, max-age=10", _text, "Cache-Control of 4xx answers (5xx are never cached)"
    )
    time_reserve_ms: int = _setting(
        "TIME_RESERVE_MS", 3000, _positive_int,
        "kept back after a render to store and answer: a render starts only with its estimate plus this left; else 503",
    )
    max_frames: int = _setting("MAX_FRAMES", 100, _positive_int, "most frames in an animated original")
    max_animation_pixels: int = _setting(
        "MAX_ANIMATION_PIXELS", 100_000_000, _positive_int, "most pixels in all frames of an animation together"
    )
    max_output_pixels: int = _setting(
        "MAX_OUTPUT_PIXELS", 50_000_000, _positive_int,
        "most pixels one render may write, all frames together (bounds memory); larger is 413",
    )
    max_work_ms: int = _setting(
        "MAX_WORK_MS", 6000, _positive_int,
        "most work one render may imply, in single-core ms estimated before decoding (bounds time); larger is 413",
    )
    ladder_widths: tuple[int, ...] = _setting(
        "LADDER_WIDTHS", (1200, 1080, 768, 540, 30), _widths, "widths pre-warmed on upload (and in ?picture)"
    )
    ladder_formats: tuple[str, ...] = _setting(
        "LADDER_FORMATS", ("avif", "webp", "original"), _formats, "formats of each pre-warmed width"
    )
    presets: Mapping[str, str] = _setting(
        "PRESETS", DEFAULT_PRESETS, _presets, "named specs for ?preset=NAME, as JSON name -> query string"
    )
    distribution_id: str = _setting(
        "DISTRIBUTION_ID", "", _text, "CloudFront distribution whose paths are invalidated when an original changes"
    )
    cors_allow_origin: str = _setting(
        "CORS_ALLOW_ORIGIN", "*", _text, "Access-Control-Allow-Origin for browsers' cross-origin reads; empty = no CORS"
    )
    signing_keys: tuple[str, ...] = _setting(
        "SIGNING_KEYS", (), _secrets, "URL signing keys, comma-separated, all accepted (rotation); local use"
    )
    signing_keys_source: str = _setting(
        "SIGNING_KEYS_SOURCE", "", _key_source,
        "where AWS keeps more keys: ssm:<SecureString parameter> or secretsmanager:<secret>, comma-separated",
    )
    signatures: str = _setting(
        "SIGNATURES", "auto", _signatures, "auto (required when a key is configured), required or optional"
    )
    allow_unsafe: bool = _setting(
        "ALLOW_UNSAFE", False, _enabled, "true: thumbor /unsafe/ URLs are served even when signatures are required"
    )
    presets_only: bool = _setting(
        "PRESETS_ONLY", False, _enabled, "true: unsigned requests may only ask for presets (any format)"
    )
    allowed_widths: tuple[int, ...] = _setting(
        "ALLOWED_WIDTHS", (), _sizes, "widths unsigned requests may ask for, comma-separated; empty = any"
    )
    allowed_heights: tuple[int, ...] = _setting(
        "ALLOWED_HEIGHTS", (), _sizes, "heights unsigned requests may ask for, comma-separated; empty = any"
    )
    size_step: int = _setting(
        "SIZE_STEP", 0, _step, "unsigned widths and heights are rounded up to a multiple of this; 0 = off"
    )
    tracing_disabled: bool = _setting(
        "POWERTOOLS_TRACE_DISABLED", False, _enabled, "true: no X-Ray tracing, and its SDK is never imported"
    )
    public_base_url: str = _setting(
        "PUBLIC_BASE_URL", "", _base_url,
        "base URL ?picture links start with (e.g. https://img.example.com); empty = the request's scheme and host",
    )
    playground: bool = _setting("PLAYGROUND", False, _enabled, "true: serves the playground at /_playground")
    key_version: str = _setting(
        "KEY_VERSION", "v1", _text, "first segment of every variant key; change it to retire all variants at once"
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every field from the environment; raise ConfigError naming every bad one."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        problems: list[str] = []
        for f in fields(cls):
            env = f.metadata["env"]
            raw = environ.get(env)
            if raw is None or raw == "":
                continue
            try:
                values[f.name] = f.metadata["parse"](raw)
            except ValueError as exc:
                problems.append(f"{env}={raw!r}: {exc}")
        if problems:
            raise ConfigError("invalid settings: " + "; ".join(problems))
        return cls(**values)

    @classmethod
    def env_names(cls) -> list[str]:
        """Every environment variable this module reads."""
        return [f.metadata["env"] for f in fields(cls)]

    @classmethod
    def documented(cls) -> list[tuple[str, object, str]]:
        """(variable, default, description) for each setting, for the README's configuration table."""
        return [(f.metadata["env"], _shown(f.metadata["default"]), f.metadata["doc"]) for f in fields(cls)]


def _shown(value: object) -> object:
    """A default as it would be written in the environment."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, Mapping):
        return json.dumps(dict(value), separators=(",", ":"))
    return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read on first use (never at import)."""
    return Settings.from_env()
