"""Load built doc pages in headless Chromium and check what a reader would see.

Usage: python .ci/check_docs.py docs/_build/html

For the index page and one gallery page: the rendered page is not blank (it
has text, and its screenshot is not one flat colour), every link inside the
site points at a file that exists, and every image the page shows exists and
is not empty. Exits non-zero with one line per problem.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

from PIL import Image, ImageStat


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.images, self.text = [], [], []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag == "img" and attrs.get("src"):
            self.images.append(attrs["src"])
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.text.append(data.strip())


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return name
    raise SystemExit("check_docs: Chromium is not installed (apt-get install chromium)")


def _render(browser, page: Path, shot: Path) -> str:
    flags = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
    ]
    url = page.resolve().as_uri()
    dom = subprocess.run(
        [*flags, "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1280,900", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    return dom


def check_page(browser, root: Path, page: Path):
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        shot = Path(tmp) / "shot.png"
        parsed = _Page()
        parsed.feed(_render(browser, page, shot))
        if not shot.exists():
            problems.append(f"{page}: Chromium made no screenshot")
        else:
            with Image.open(shot) as image:
                spread = max(ImageStat.Stat(image.convert("L")).extrema[0]) - min(
                    ImageStat.Stat(image.convert("L")).extrema[0]
                )
            if spread < 50:
                problems.append(f"{page}: the rendered page is blank")
    if sum(len(t) for t in parsed.text) < 200:
        problems.append(f"{page}: the page shows almost no text")
    for href in parsed.links:
        url = urlparse(href)
        if url.scheme or href.startswith(("#", "mailto:")):
            continue
        target = (page.parent / unquote(url.path)).resolve()
        if url.path and not target.exists():
            problems.append(f"{page.name}: broken link {href}")
        elif root.resolve() not in target.parents and target != root.resolve():
            problems.append(f"{page.name}: link leaves the site: {href}")
    for src in parsed.images:
        if urlparse(src).scheme in ("data", "http", "https"):
            continue
        target = (page.parent / unquote(urlparse(src).path)).resolve()
        if not target.is_file() or target.stat().st_size == 0:
            problems.append(f"{page.name}: missing image {src}")
    return problems, parsed


def main(argv):
    root = Path(argv[1] if len(argv) > 1 else "docs/_build/html")
    browser = _chromium()
    problems = []
    index = root / "index.html"
    gallery = root / "auto_examples" / "plot_quick_start.html"
    for page in (index, gallery):
        if not page.is_file():
            problems.append(f"{page}: not built")
            continue
        found, parsed = check_page(browser, root, page)
        problems += found
        if page is gallery and not any(
            "sphx_glr_plot_quick_start" in s for s in parsed.images
        ):
            problems.append(f"{page.name}: the gallery page shows none of its figures")
    for problem in problems:
        print(f"check_docs: {problem}", file=sys.stderr)
    if not problems:
        print(
            f"check_docs: {index.name} and {gallery.name} render, links and images resolve"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
