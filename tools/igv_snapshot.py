"""Render a seq-unet IGV session with igv.js in headless Chromium and save a PNG.

    python tools/igv_snapshot.py results/sacCer3/browser/igv_session.xml chrIV docs/igv_chrIV.png

The session is opened exactly as written (relative paths, shared fixed scales,
overlays); files are served from the repository folder over a local HTTP
server and nothing is fetched from the network. Needs what the browser test
needs: `make browser-deps` (Chromium, igv.js) and playwright (the test extra).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.igv_helpers import CHROMIUM_ARGS, IGV_DIST, OFFLINE, PAGE, RangeHandler, chromium_path  # noqa: E402


def main() -> None:
    import functools
    import http.server
    import threading

    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("session", type=Path)
    ap.add_argument("locus", help="e.g. chrIV or chrIV:1-400000")
    ap.add_argument("png", type=Path)
    ap.add_argument("--width", type=int, default=1400)
    args = ap.parse_args()
    session = args.session.resolve()
    page_dir = "/" + str(session.parent.relative_to(REPO)) + "/"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(RangeHandler, directory=str(REPO)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    config = {**OFFLINE, "sessionURL": session.name}
    html = PAGE.replace('style="width: 1000px"', f'style="width: {args.width}px"') % {"config": json.dumps(config)}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": args.width + 40, "height": 900})
            page.route(base + page_dir + "snapshot.html", lambda r: r.fulfill(body=html, content_type="text/html"))
            page.route(base + page_dir + "igv/**", lambda r: r.fulfill(
                path=str(IGV_DIST / r.request.url.split("/igv/", 1)[1])))
            page.route(lambda url: not url.startswith(base), lambda r: r.abort())
            page.goto(base + page_dir + "snapshot.html")
            page.wait_for_function("() => window.igvBrowser || window.igvError", timeout=60_000)
            error = page.evaluate("() => window.igvError || null")
            if error:
                sys.exit(f"igv.js could not open {session}: {error}")
            page.evaluate("locus => igvBrowser.search(locus)", args.locus)
            page.wait_for_timeout(4000)  # let every track fetch and paint
            args.png.parent.mkdir(parents=True, exist_ok=True)
            page.locator("#igv").screenshot(path=str(args.png))
            browser.close()
    finally:
        server.shutdown()
    print(f"{args.png}: {args.locus} from {session}")


if __name__ == "__main__":
    main()
