"""igv.js in headless Chromium, served from a local folder: shared by the browser test and
tools/igv_snapshot.py (no pytest here)."""

from __future__ import annotations

import functools
import http.server
import io
import os
import re
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IGV_DIST = REPO / "tests" / "browser" / "node_modules" / "igv" / "dist"
# igv.js options that keep it off the network
OFFLINE = {
    "loadDefaultGenomes": False,  # else it fetches its genome list from igv.org
    "search": False,  # else a bare name such as "chrB" is first looked up as a gene on igv.org
    "showIdeogram": False,  # a FASTA genome has no cytobands
}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    override = os.environ.get("SEQ_UNET_CHROMIUM")
    if override:
        # an explicit choice is never second-guessed with a fallback
        return override if os.access(override, os.X_OK) else None
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium")


# ---------------------------------------------------------------- serving


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files plus single byte ranges: igv.js reads bigWig and indexed
    FASTA with `Range` requests, which SimpleHTTPRequestHandler answers with the
    whole file."""

    def send_head(self):
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        path = self.translate_path(self.path)
        if m is None or m.groups() == ("", "") or not os.path.isfile(path):
            return super().send_head()
        size = os.path.getsize(path)
        first, last = m.groups()
        if first:
            start, end = int(first), min(int(last), size - 1) if last else size - 1
        else:  # "bytes=-n": the last n bytes
            start, end = max(size - int(last), 0), size - 1
        if start > end:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        with open(path, "rb") as fh:
            fh.seek(start)
            body = fh.read(end - start + 1)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        return io.BytesIO(body)  # do_GET copies it out; do_HEAD only closes it

    def log_message(self, format, *args):
        pass  # one line per range request would bury pytest's output


@contextmanager
def serve(root: Path):
    """Serve ``root`` (with igv.js under /igv/) on a free port of 127.0.0.1; yield the base URL."""
    (root / "igv").symlink_to(IGV_DIST, target_is_directory=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(RangeHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# The page keeps igv.js's own objects out of Python: helpers return plain data.
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,"></head>
<body>
<div id="igv" style="width: 1000px"></div>
<script src="igv/igv.min.js"></script>
<script>
igv.createBrowser(document.getElementById("igv"), %(config)s)
  .then(b => { window.igvBrowser = b; }, e => { window.igvError = String((e && e.message) || e); });

function viewportOf(name) {
  const track = igvBrowser.findTracks("name", name)[0];
  return track && track.trackView.viewports[0];
}

// The chromosome a track's canvas shows and how many of its pixels were
// painted (neither transparent nor white); null until the first paint.
function painted(name) {
  const vp = viewportOf(name);
  if (!vp || !vp.canvas || !vp.featureCache) return null;
  const c = vp.canvas;
  const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let inked = 0;
  for (let i = 0; i < px.length; i += 4) {
    if (px[i + 3] > 0 && (px[i] < 250 || px[i + 1] < 250 || px[i + 2] < 250)) inked++;
  }
  return {chr: vp.featureCache.chr, inked: inked, total: c.width * c.height};
}

// Full-resolution entries as [start, end, value]: windowFunction "none"
// makes the bigWig reader skip the zoom levels whatever bpPerPixel says.
async function rawEntries(name, chr, start, end) {
  const track = igvBrowser.findTracks("name", name)[0];
  const features = await track.featureSource.getFeatures(
    {chr: chr, start: start, end: end, bpPerPixel: 1, windowFunction: "none"});
  return features.map(f => [f.start, f.end, f.value]);
}

// igv.js reports some load failures only in its alert dialog.
function alerts() {
  return [...document.querySelectorAll(".igv-ui-alert-dialog-container")]
    .filter(d => d.style.display !== "none").map(d => d.textContent.trim());
}
</script>
</body></html>
"""
