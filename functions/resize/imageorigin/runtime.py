"""Process-wide dependencies of the handlers, built on first use (never at import): the store and the CDN."""

from __future__ import annotations

from functools import lru_cache

from .cdn import CloudFrontInvalidator, Invalidator, NoCdn
from .config import get_settings
from .errors import StorageFault
from .storage import S3Store, Store

KEY_CACHE_SECONDS = 300  # keys fetched from SSM or Secrets Manager are kept this long (rotation takes effect then)


@lru_cache(maxsize=1)
def store() -> Store:
    settings = get_settings()
    return S3Store(settings.originals_bucket, settings.cache_bucket)


@lru_cache(maxsize=1)
def cdn() -> Invalidator:
    distribution = get_settings().distribution_id
    return CloudFrontInvalidator(distribution) if distribution else NoCdn()


def signing_keys() -> tuple[bytes, ...]:
    """Every active signing key: SIGNING_KEYS, plus those at SIGNING_KEYS_SOURCE (powertools parameters, cached)."""
    settings = get_settings()
    keys = list(settings.signing_keys)
    if settings.signing_keys_source:
        from aws_lambda_powertools.utilities import parameters  # only deployments that keep keys in AWS pay for it

        kind, _, name = settings.signing_keys_source.partition(":")
        try:
            if kind == "ssm":
                raw = parameters.get_parameter(name, decrypt=True, max_age=KEY_CACHE_SECONDS)
            else:
                raw = parameters.get_secret(name, max_age=KEY_CACHE_SECONDS)
        except parameters.exceptions.GetParameterError as error:
            raise StorageFault("the signing keys could not be read") from error
        keys += [part.strip() for part in str(raw).split(",") if part.strip()]
    return tuple(key.encode() for key in keys)


_FACTORIES = (get_settings, store, cdn)  # held here, so a test that replaces store() can still reset the real one


def reset() -> None:
    """Forget the built dependencies (tests, and settings changed at run time)."""
    for factory in _FACTORIES:
        factory.cache_clear()
