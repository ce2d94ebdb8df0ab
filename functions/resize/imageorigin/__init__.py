"""Serverless image origin: resize, re-encode and cache images from S3 with Pillow."""
