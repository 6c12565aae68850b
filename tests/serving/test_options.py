"""ServeOptions: the defaults in bounds, each bound named, JSON both ways."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from sk_mnist.serving._options import OptionError, ServeOptions, max_threads


def test_the_defaults_are_in_bounds_and_survive_json():
    options = ServeOptions().check()
    assert ServeOptions.from_json(options.to_json()) == options
    changed = dataclasses.replace(options, max_batch_size=64, port=0, workers=2)
    assert ServeOptions.from_json(changed.to_json()) == changed


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("threads", max_threads() + 1),
        ("workers", 0),
        ("threads", True),  # a bool is not a count
        ("port", 65536),
        ("max_latency_ms", math.inf),
        ("max_latency_ms", math.nan),
        ("max_latency_ms", 1e308),
        ("timeout", 0),
        ("read_timeout", -1.0),
        ("keep_alive_timeout", 0.0),
        ("graceful_shutdown_timeout", 601),
        ("max_connections", 0),
        ("max_batch_size", 0),
        ("max_batch_size", 1_000_001),
        ("memory_budget_bytes", 1024),
        ("host", ""),
        ("host", "[::1]"),
        ("host", "a b"),
        ("name", "a/b"),
        ("name", ".."),
        ("name", "é"),
    ],
)
def test_a_value_out_of_bounds_is_named_with_what_is_expected(field, value):
    with pytest.raises(OptionError) as refused:
        ServeOptions(**{field: value}).check()
    assert refused.value.option == field
    assert str(refused.value).startswith(f"{field} must be ")
    assert f"got {value!r}" in str(refused.value)


def test_a_lower_max_images_keeps_the_default_batch_size_valid():
    # A batch combines requests; one larger than a batch runs alone, so the
    # default batch size (64) stays valid under --max-images 3.
    options = ServeOptions(max_images=3).check()
    assert (options.max_images, options.max_batch_size) == (3, 64)


def test_options_from_json_are_checked_again():
    text = json.dumps({**json.loads(ServeOptions().to_json()), "threads": 10**5})
    with pytest.raises(OptionError, match=r"threads must be a whole number"):
        ServeOptions.from_json(text)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.0.2.1", False),
        ("example.org", False),
    ],
)
def test_is_loopback(host, loopback):
    assert ServeOptions(host=host).is_loopback is loopback
