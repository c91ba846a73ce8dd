"""Drives a real headless Chromium through the DevTools protocol (over aiohttp's websocket,
already in the WebRTC peer's venv): opens Lucid's web remote, waits for it to show the
show, reads the thumbnail's centre pixel, moves the first effect's `amount` slider to the
top and clicks Freeze, then waits for the thumbnail to change. Prints one JSON line of what
it saw. Every request carries the Authorization header the test gives (a browser's Basic
login), set through the protocol as a browser's login prompt would.

Usage: python browser.py URL AUTHORIZATION
"""
import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time

import aiohttp

CENTRE_RED = """(() => {
  const img = document.getElementById('thumb');
  if (!img.naturalWidth) return -1;
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d');
  g.drawImage(img, 0, 0);
  return g.getImageData(c.width / 2, c.height / 2, 1, 1).data[0];
})()"""


async def main():
    url, auth = sys.argv[1], sys.argv[2]
    profile = tempfile.mkdtemp()
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    proc = subprocess.Popen(
        [chrome, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        deadline = time.time() + 30
        while port is None and time.time() < deadline:
            line = proc.stderr.readline()
            m = re.search(r"ws://127\.0\.0\.1:(\d+)/", line)
            if m:
                port = int(m.group(1))
        if port is None:
            sys.exit("Chromium did not open its DevTools port")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                targets = await r.json()
            page = next(t for t in targets if t["type"] == "page")
            async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                ids = iter(range(1, 1_000_000))

                async def send(method, params=None):
                    n = next(ids)
                    await ws.send_json({"id": n, "method": method, "params": params or {}})
                    while True:
                        msg = await asyncio.wait_for(ws.receive_json(), 20)
                        if msg.get("id") == n:
                            if "error" in msg:
                                raise RuntimeError(f"{method}: {msg['error']}")
                            return msg.get("result", {})

                async def evaluate(js):
                    result = await send("Runtime.evaluate", {
                        "expression": js, "returnByValue": True, "awaitPromise": True})
                    return result.get("result", {}).get("value")

                async def until(js, seconds, what):
                    end = time.time() + seconds
                    while time.time() < end:
                        value = await evaluate(js)
                        if value:
                            return value
                        await asyncio.sleep(0.2)
                    sys.exit(f"timed out waiting for {what}")

                await send("Network.enable")
                await send("Network.setExtraHTTPHeaders", {"headers": {"Authorization": auth}})
                await send("Page.enable")
                await send("Page.navigate", {"url": url})
                state = await until(
                    "document.getElementById('state').textContent.includes('playing')"
                    " && document.getElementById('state').textContent", 30, "the state")
                await until("document.getElementById('thumb').naturalWidth > 0", 30, "the thumbnail")
                sliders = await until(
                    "document.querySelector('input[data-osc=\"/lucid/effect/0/amount\"]')"
                    " && document.querySelectorAll('#chain input[type=range]').length", 30,
                    "the chain's sliders")
                red_before = await evaluate(CENTRE_RED)
                await evaluate("""(() => {
                  const i = document.querySelector('input[data-osc="/lucid/effect/0/amount"]');
                  i.value = 1;
                  i.dispatchEvent(new Event('change'));
                  return true;
                })()""")
                await asyncio.sleep(0.5)
                await evaluate("document.getElementById('freeze').click(), true")
                red_after = await until(
                    f"(() => {{ const r = {CENTRE_RED}; return r > {red_before} + 20 ? r : 0; }})()",
                    20, "the thumbnail to show the tint")
                freeze_on = await until(
                    "document.getElementById('freeze').classList.contains('on')", 10,
                    "the Freeze button to say it is on")
                print(json.dumps({"state": state, "sliders": sliders, "red_before": red_before,
                                  "red_after": red_after, "freeze_on": freeze_on}), flush=True)
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
