"""Loading MNIST and digit images.

:func:`fetch_mnist` reads MNIST from a local file, a cache or a download;
:func:`read_digit_image` reads a photo or drawing of one digit as MNIST's
digits look.
"""

from ._fetch import fetch_mnist
from ._images import read_digit_image

__all__ = ["fetch_mnist", "read_digit_image"]
