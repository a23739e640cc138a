"""Model artifact fetching: s3://, http(s)://, file:// and local paths, with safe .tar.gz unpacking."""

from sageport.storage.archive import UnsafeArchiveError
from sageport.storage.fetch import FetchError, fetch

__all__ = ["FetchError", "UnsafeArchiveError", "fetch"]
