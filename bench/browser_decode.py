"""Decoding in the browser, measured in Chromium: frames while a slider is dragged, reruns, bytes.

On the Latent explorer (the app's default model: fmnist_vae_z16 where its checkpoint and data are
here, else digits_vae_z2), the mouse holds the z1 slider of the decoder component and moves it back
and forth for ``--seconds`` (default 3), one move per animation frame or so, then releases it.

- frame time: what lab_pages/decoder_component.js records per redraw (decode z -> pixel means and
  draw the canvas, ``performance.now``), over the drag; p50, p95, max. Target p95 <= 16 ms.
- server reruns during the drag (script-finished messages on the websocket), and after the release.
  Target: 0 during, 1 at the release.
- bytes: the decoder file the browser fetched for the model (once per model), and the websocket
  bytes the browser sent and received during the drag (none expected: no message per move).
- the same frame time under the pointer on the Manifold page's latent plane (``--plane``).

    .venv/bin/python -m bench.browser_decode [--seconds 3] [--plane] [--port 0]
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench._common import launch_chromium, missing_chromium
from tests.e2e.harness import VIEWPORT, drag_range, keyed, open_page, settle, start_server, wait_ready

DECODER, PLANE = "explorer_decoder", "manifold_plane"


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def frames(page) -> list[float]:
    """Redraw times (ms) the component recorded since the last :func:`reset_frames`."""
    return page.evaluate("() => (globalThis.__vaeLabDecodeFrames || []).slice()")


def reset_frames(page) -> None:
    page.evaluate("() => { globalThis.__vaeLabDecodeFrames = []; }")


def drag(page, seconds: float) -> int:
    """Hold z1's slider and sweep it back and forth for ``seconds`` (button still down); the number of moves."""
    drag_range(page, DECODER, 0, [0.5], release=False)
    box = page.locator(f"{keyed(DECODER)} input[type=range][data-dim='0']").first.bounding_box()
    y, n, t_end = box["y"] + box["height"] / 2, 0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        f = 0.5 + 0.4 * ((n % 40) / 20 - 1 if (n // 40) % 2 == 0 else 1 - (n % 40) / 20)
        page.mouse.move(box["x"] + 8 + f * (box["width"] - 16), y)
        n += 1
        page.wait_for_timeout(16)
    return n


def summary(name: str, ms: list[float]) -> str:
    if not ms:
        return f"{name}: no frames recorded"
    return (
        f"{name}: {len(ms)} frames, p50 {statistics.median(ms):.2f} ms, p95 {pct(ms, 0.95):.2f} ms, "
        f"max {max(ms):.2f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="length of the drag (s)")
    ap.add_argument("--plane", action="store_true", help="also time the Manifold page's latent plane")
    ap.add_argument("--port", type=int, default=0, help="server port (0: a free one)")
    args = ap.parse_args(argv)
    reason = missing_chromium()
    if reason:
        print(f"skipped: {reason}")
        return 0
    from playwright.sync_api import sync_playwright
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    server = start_server(port=args.port or None)
    try:
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_context(viewport=VIEWPORT).new_page()
            runs: list[int] = []
            ws_bytes = {"sent": 0, "received": 0}
            weights: list[tuple[str, int]] = []

            def on_ws(ws) -> None:
                def got(payload) -> None:
                    ws_bytes["received"] += len(payload)
                    if isinstance(payload, bytes):
                        msg = ForwardMsg.FromString(payload)
                        if msg.WhichOneof("type") == "script_finished":
                            runs.append(msg.script_finished)

                ws.on("framereceived", got)
                ws.on(
                    "framesent", lambda payload: ws_bytes.__setitem__("sent", ws_bytes["sent"] + len(payload))
                )

            page.on("websocket", on_ws)
            page.on(
                "requestfinished",
                lambda r: (
                    weights.append((r.url, r.sizes()["responseBodySize"]))
                    if "/app/static/decoders/" in r.url
                    else None
                ),
            )
            open_page(page, server.url, "explorer")
            wait_ready(page, DECODER)
            settle(page, quiet=0.5)
            model = page.locator('[data-testid="stCaptionContainer"]', has_text=" — ").first.inner_text()
            print(f"model: {model}")
            for url, size in weights:
                print(f"weights fetched: {size:,} bytes ({url.rsplit('/', 1)[-1]})")
            reset_frames(page)
            runs.clear()
            ws_bytes.update(sent=0, received=0)
            moves = drag(page, args.seconds)
            during = (len(runs), dict(ws_bytes))
            page.mouse.up()
            settle(page, quiet=0.5)
            ms = frames(page)
            print(f"drag: {args.seconds:g} s, {moves} mouse moves")
            print(summary("frame time (decode + draw)", ms))
            print(f"server reruns during the drag: {during[0]}; after the release: {len(runs) - during[0]}")
            print(
                f"websocket bytes during the drag: sent {during[1]['sent']}, received {during[1]['received']}"
            )
            print(f"decoder files fetched in all: {len(weights)}")
            if args.plane:
                open_page(page, server.url, "manifold")
                wait_ready(page, PLANE)
                canvas = page.locator(f"{keyed(PLANE)} canvas.vl-plane").first
                canvas.scroll_into_view_if_needed()
                box = canvas.bounding_box()
                reset_frames(page)
                for i in range(120):
                    f = (i % 60) / 60
                    page.mouse.move(
                        box["x"] + (0.1 + 0.8 * f) * box["width"], box["y"] + (0.9 - 0.8 * f) * box["height"]
                    )
                    page.wait_for_timeout(16)
                print(summary("latent plane, pointer moves", frames(page)))
            browser.close()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
