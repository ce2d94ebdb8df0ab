"""Process-wide dependencies of the handlers, built on first use (never at import): the store and the CDN."""

from __future__ import annotations

from functools import lru_cache

from .cdn import CloudFrontInvalidator, Invalidator, NoCdn
from .config import get_settings
from .storage import S3Store, Store


@lru_cache(maxsize=1)
def store() -> Store:
    settings = get_settings()
    return S3Store(settings.originals_bucket, settings.cache_bucket)


@lru_cache(maxsize=1)
def cdn() -> Invalidator:
    distribution = get_settings().distribution_id
    return CloudFrontInvalidator(distribution) if distribution else NoCdn()


_FACTORIES = (get_settings, store, cdn)  # held here, so a test that replaces store() can still reset the real one


def reset() -> None:
    """Forget the built dependencies (tests, and settings changed at run time)."""
    for factory in _FACTORIES:
        factory.cache_clear()
