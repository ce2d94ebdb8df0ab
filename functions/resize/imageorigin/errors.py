"""The service's exception tree: every class carries its HTTP status, a stable code and a public message."""

from __future__ import annotations

from http import HTTPStatus


class ImageServiceError(Exception):
    """Base of every error the service answers with; never raised itself."""

    status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR
    code: str = "internal_error"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_body(self) -> dict[str, object]:
        """The JSON body sent to the client: code, public message and any public details."""
        return {"code": self.code, "message": self.message, **self.details}


class BadParameter(ImageServiceError):
    """A query parameter or path segment is unknown, repeated or out of range."""

    status = HTTPStatus.BAD_REQUEST
    code = "bad_parameter"

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}", parameter=parameter)


class BadKey(ImageServiceError):
    """The image key in the path is empty, malformed or unsafe."""

    status = HTTPStatus.BAD_REQUEST
    code = "bad_key"


class BadSignature(ImageServiceError):
    """The URL's signature was made with none of the active keys (or the URL was changed after signing)."""

    status = HTTPStatus.FORBIDDEN
    code = "bad_signature"


class SignatureExpired(ImageServiceError):
    """The signature is genuine but its exp= time has passed."""

    status = HTTPStatus.FORBIDDEN
    code = "signature_expired"


class SignatureRequired(ImageServiceError):
    """This service only renders signed URLs (or presets, or allowed sizes) and this one is not."""

    status = HTTPStatus.FORBIDDEN
    code = "signature_required"


class OriginalNotFound(ImageServiceError):
    """No original exists at the requested key."""

    status = HTTPStatus.NOT_FOUND
    code = "not_found"


class MethodNotAllowed(ImageServiceError):
    """Only GET and HEAD read images."""

    status = HTTPStatus.METHOD_NOT_ALLOWED
    code = "method_not_allowed"


class Conflict(ImageServiceError):
    """The request's originals changed while it was being served; asking again will do."""

    status = HTTPStatus.CONFLICT
    code = "conflict"


class TooLarge(ImageServiceError):
    """The original exceeds a configured limit (bytes, pixels, frames)."""

    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    code = "too_large"


class UnsupportedType(ImageServiceError):
    """The original is not one of the allow-listed image formats."""

    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    code = "unsupported_type"


class Undecodable(ImageServiceError):
    """The original claims an allowed format but is truncated or corrupt."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "undecodable"


class StorageFault(ImageServiceError):
    """S3 failed, throttled or refused; nothing was written."""

    status = HTTPStatus.BAD_GATEWAY
    code = "storage_fault"


class OutOfTime(ImageServiceError):
    """The invocation's remaining time is too short to finish safely."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "out_of_time"
