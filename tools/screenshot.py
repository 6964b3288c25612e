"""Look at a page as a person would: start the app, open the page in headless Chromium, save a screenshot.

    python tools/screenshot.py cnn --start --wait 4 --out /tmp/cnn.png
    python tools/screenshot.py "" --out /tmp/home.png             # the home page
    python tools/screenshot.py cnn --url http://127.0.0.1:8501    # against a running server
    python tools/screenshot.py "cnn?lang=zh&lecture=1" --start --width 1280 --height 720 --screen --out /tmp/s.png

Lecture mode: ``?lecture=1``; Chinese: ``?lang=zh`` (quote the path in the shell). Prints any stException text
it finds (exit code 1 then).
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dlviz.browser import serve_app, shoot  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("slug", help='page url path ("" for home), e.g. cnn')
    ap.add_argument("--out", required=True)
    ap.add_argument("--start", action="store_true", help="press ▶ Start (found by its key: any language) and wait")
    ap.add_argument("--wait", type=float, default=3.0, help="seconds to wait (after Start)")
    ap.add_argument("--url", help="use a running server instead of starting one")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=1000, help="viewport height (the first screen)")
    ap.add_argument("--screen", action="store_true", help="only the first width x height screen, not the whole page")
    a = ap.parse_args()
    if a.url:
        errors = shoot(a.url, a.slug, a.out, a.start, a.wait, a.width, a.height, not a.screen)
    else:
        with serve_app() as url:
            errors = shoot(url, a.slug, a.out, a.start, a.wait, a.width, a.height, not a.screen)
    for e in errors:
        print("stException:", e[:2000])
    print("saved", a.out)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
