"""Local development: the service on an embedded S3, and single-event invocation."""
