"""mirror: keep Docker Hub images mirrored in Amazon ECR."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mirror")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
