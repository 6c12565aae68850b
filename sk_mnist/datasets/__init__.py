"""Loading MNIST: :func:`fetch_mnist`, from a local file, a cache or a download."""

from ._fetch import fetch_mnist

__all__ = ["fetch_mnist"]
