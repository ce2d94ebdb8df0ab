"""CloudFront invalidation of an original's URLs when it changes (its recording twin lives in tests/fakes.py)."""

from __future__ import annotations

import time
from typing import Protocol

from .errors import StorageFault


class Invalidator(Protocol):
    """Tells the CDN to forget paths."""

    def invalidate(self, paths: list[str]) -> None:
        """Invalidate these paths (wildcards allowed); StorageFault on failure."""


class NoCdn:
    """No distribution configured: nothing to invalidate."""

    def invalidate(self, paths: list[str]) -> None:
        return None


class CloudFrontInvalidator:
    """Invalidations on one distribution; the client is made on first use."""

    def __init__(self, distribution_id: str, client: object | None = None) -> None:
        self.distribution_id = distribution_id
        self._client = client

    @property
    def client(self) -> object:
        if self._client is None:
            import boto3

            self._client = boto3.client("cloudfront")
        return self._client

    def invalidate(self, paths: list[str]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        batch = {"Paths": {"Quantity": len(paths), "Items": paths}, "CallerReference": f"imageorigin-{time.time_ns()}"}
        try:
            self.client.create_invalidation(DistributionId=self.distribution_id, InvalidationBatch=batch)
        except (BotoCoreError, ClientError) as exc:
            raise StorageFault("CloudFront could not be asked to invalidate") from exc
