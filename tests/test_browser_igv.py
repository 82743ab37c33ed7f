"""seq_unet's bigWigs and IGV session, opened by igv.js in headless Chromium.

pyBigWig reading back what pyBigWig wrote cannot catch a file that a genome
browser draws wrongly or refuses; igv.js (the engine of igv.org and of
IGV-based notebooks) is an independent reader. Everything is served from a
local HTTP server and any request leaving it is blocked, so the test needs no
network: the genome is a local indexed FASTA.

Needs Chromium and the pinned igv.js (`make browser-deps`) and the Python
package playwright (`pip install -e ".[test]"`); without them the tests skip,
or fail where SEQ_UNET_REQUIRE_BROWSER=1 (CI). SEQ_UNET_CHROMIUM overrides the
Chromium binary.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from tests.igv_helpers import CHROMIUM_ARGS, IGV_DIST, OFFLINE, PAGE, REPO, chromium_path, serve

pytestmark = pytest.mark.browser

SIZES = {"chrA": 30_000, "chrB": 12_000}
PRECISION = 0.01
TIMEOUT_S = 60


def _missing_browser_deps() -> str | None:
    """What is missing to run igv.js, and how to get it; None when nothing is."""
    missing = []
    chromium = chromium_path()
    if chromium is None:
        where = os.environ.get("SEQ_UNET_CHROMIUM") or "/usr/bin/chromium or on PATH"
        missing.append(f"Chromium ({where}) not found: run `make browser-deps` (apt-get install chromium)")
    if not (IGV_DIST / "igv.min.js").is_file():
        missing.append(f"igv.js not found in {IGV_DIST.parent.relative_to(REPO)}: run `make browser-deps` (npm ci)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("Python package playwright not installed: run `make install` (pip install -e '.[test]')")
    return "; ".join(missing) or None


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium for the module (starting it is most of the cost)."""
    missing = _missing_browser_deps()
    if missing:
        if os.environ.get("SEQ_UNET_REQUIRE_BROWSER") == "1":
            pytest.fail(f"SEQ_UNET_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class IgvPage:
    """A page running igv.js, with every error it reports collected in ``errors``."""

    def __init__(self, chromium, base: str, root: Path, config: dict):
        (root / "index.html").write_text(PAGE % {"config": json.dumps(config)})
        self.errors: list[str] = []
        self.page = chromium.new_page(viewport={"width": 1200, "height": 800})
        self.page.set_default_timeout(TIMEOUT_S * 1000)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("console", self._console)
        self.page.route(lambda url: not url.startswith(base), self._block)
        self.page.goto(base + "index.html")
        self.wait_for("() => window.igvBrowser || window.igvError", what="igv.createBrowser")
        error = self.page.evaluate("() => window.igvError || null")
        assert error is None, f"igv.createBrowser failed: {error}; {self.errors}"

    def _console(self, msg):
        if msg.type == "error" and "favicon" not in (msg.location or {}).get("url", ""):
            self.errors.append(f"console error: {msg.text}")

    def _block(self, route):
        self.errors.append(f"request outside the local server: {route.request.url}")
        route.abort()

    def wait_for(self, js: str, arg=None, what: str = ""):
        """Poll ``js`` until it returns something truthy, failing at the first
        reported error instead of waiting out the timeout."""
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            if self.errors:
                pytest.fail(f"errors while waiting for {what}:\n" + "\n".join(self.errors))
            shown = self.page.evaluate("() => alerts()")
            if shown:
                pytest.fail(f"igv.js alert while waiting for {what}: {shown}")
            value = self.page.evaluate(js, arg)
            if value:
                return value
            self.page.wait_for_timeout(100)
        pytest.fail(f"no {what} after {TIMEOUT_S} s")

    def painted(self, track: str, chr: str) -> dict:
        return self.wait_for("([t, c]) => { const p = painted(t); return p && p.chr === c && p; }",
                             [track, chr], what=f"track {track!r} painted on {chr}")

    def assert_clean(self):
        assert self.errors == []
        assert self.page.evaluate("() => alerts()") == []


# ---------------------------------------------------------------- data


def _write_genome(root: Path, rng: np.random.Generator) -> Path:
    from pyfaidx import Faidx

    fasta = root / "genome.fa"
    with open(fasta, "w") as fh:
        for name, size in SIZES.items():
            seq = "".join(np.array(list("ACGT"))[rng.integers(0, 4, size)])
            fh.write(f">{name}\n" + "".join(seq[i : i + 60] + "\n" for i in range(0, size, 60)))
    Faidx(str(fasta)).close()  # writes genome.fa.fai
    assert (root / "genome.fa.fai").is_file()
    return fasta


def _signals(rng: np.random.Generator, scale: float = 1.0) -> dict[str, np.ndarray]:
    """chrA: smooth with steps and a gap (runs of ~10 bases, stored as runs);
    chrB: noisy, a new value nearly every base (stored as fixed steps), with a gap."""
    x = np.arange(SIZES["chrA"])
    a = 1.5 + 0.5 * np.sin(2 * np.pi * x / 3000) + 0.25 * ((x // 2500) % 2)
    a[12_000:12_600] = np.nan
    b = 1.0 + rng.random(SIZES["chrB"])
    b[5_000:5_300] = np.nan
    return {"chrA": (scale * a).astype(np.float32), "chrB": (scale * b).astype(np.float32)}


def _write_bigwig(path: Path, values: dict[str, np.ndarray]) -> Path:
    from seq_unet.io.bigwig_write import BigWigWriter

    with BigWigWriter(path, SIZES, precision=PRECISION) as w:
        for chrom in SIZES:
            w.add(chrom, values[chrom])
    return path


def _per_base(entries: list, size: int) -> np.ndarray:
    """Per-base values from [start, end, value] entries (NaN where none)."""
    out = np.full(size, np.nan)
    covered = np.zeros(size, dtype=int)
    for start, end, value in entries:
        out[start:end] = value
        covered[start:end] += 1
    assert covered.max() <= 1, "igv.js returned overlapping entries"
    return out


# ---------------------------------------------------------------- tests


def test_igv_draws_bigwig_and_decodes_written_values(chromium, tmp_path):
    rng = np.random.default_rng(7)
    _write_genome(tmp_path, rng)
    values = _signals(rng)
    _write_bigwig(tmp_path / "signal.bw", values)

    with serve(tmp_path) as base:
        config = {
            **OFFLINE,
            "reference": {"id": "test", "name": "test", "fastaURL": base + "genome.fa",
                          "indexURL": base + "genome.fa.fai"},
            "locus": "chrA:1001-9000",
            "tracks": [{"name": "signal", "type": "wig", "format": "bigwig", "url": base + "signal.bw"}],
        }
        igv = IgvPage(chromium, base, tmp_path, config)

        shown = igv.painted("signal", "chrA")
        assert shown["inked"] > 0.1 * shown["total"], f"track canvas nearly blank: {shown}"

        for chrom, size in SIZES.items():
            entries = igv.page.evaluate("([c, n]) => rawEntries('signal', c, 0, n)", [chrom, size])
            decoded = _per_base(entries, size)
            written = values[chrom].astype(float)
            np.testing.assert_array_equal(np.isnan(decoded), np.isnan(written),
                                          err_msg=f"{chrom}: no-data bases differ")
            ok = ~np.isnan(written)
            err = np.abs(decoded[ok] - written[ok]).max()
            assert err <= PRECISION / 2 + 1e-6, f"{chrom}: igv.js decodes values up to {err} off"

        assert igv.page.evaluate("() => igvBrowser.search('chrB')") is True
        shown = igv.painted("signal", "chrB")
        assert shown["inked"] > 0.1 * shown["total"], f"track canvas nearly blank on chrB: {shown}"
        igv.assert_clean()


def test_igv_loads_seq_unet_session(chromium, tmp_path):
    from seq_unet.predict.browser import write_igv_session

    rng = np.random.default_rng(11)
    fasta = _write_genome(tmp_path, rng)
    tracks = tmp_path / "tracks"  # the session names them by paths relative to itself
    tracks.mkdir()
    pred = _write_bigwig(tracks / "rt.pred.bw", _signals(rng))
    meas = _write_bigwig(tracks / "rt.meas.bw", _signals(rng))
    sd = _write_bigwig(tracks / "rt.sd.bw", _signals(rng, scale=0.05))
    # igv.js resolves session paths against the page, not the session file:
    # the session sits beside the page, as IGV desktop users open it from the results folder
    write_igv_session(tmp_path / "session.xml", fasta, {"rt": str(pred)}, measured={"rt": str(meas)},
                      locus="chrB:2001-6000", uncertainty={"rt": str(sd)})

    with serve(tmp_path) as base:
        # createBrowser with sessionURL is igv.js's browser.loadSession({url}) on a new browser
        config = {**OFFLINE, "sessionURL": "session.xml"}
        igv = IgvPage(chromium, base, tmp_path, config)

        genome = igv.page.evaluate(
            "() => ({chrs: igvBrowser.genome.chromosomeNames, locus: igvBrowser.referenceFrameList[0].chr})")
        assert genome == {"chrs": list(SIZES), "locus": "chrB"}
        loaded = igv.page.evaluate(
            "() => igvBrowser.tracks.filter(t => t.type === 'wig' || t.type === 'merged')"
            ".map(t => [t.name, t.type, (t.tracks || []).map(s => [s.name, s.autoscale, s.dataRange])])")
        overlay = "rt: predicted (red) vs measured (black)"
        assert sorted(n for n, *_ in loaded) == sorted([overlay, "rt uncertainty (sd)"])
        merged = next(x for x in loaded if x[0] == overlay)
        assert merged[1] == "merged" and [s[0] for s in merged[2]] == ["rt predicted", "rt measured"]
        assert all(s[1] is False for s in merged[2])  # a fixed scale, shared by both
        assert merged[2][0][2] == merged[2][1][2]
        for name in (overlay, "rt uncertainty (sd)"):
            shown = igv.painted(name, "chrB")
            assert shown["inked"] > 0.1 * shown["total"], f"{name}: track canvas nearly blank: {shown}"
        igv.assert_clean()
