#!/usr/bin/env python3
"""An independent WebRTC client that only decodes: aiortc as a WHEP client, for
scripts/bench.py. It posts one offer (recvonly video), decodes every frame with aiortc's
own decoder, reads the frame number from the marker strip and prints `<number> <unix time>`
per frame on stdout, for --seconds.
"""
import argparse
import asyncio
import sys
import time

import aiohttp
import aioice.ice
from aiortc import RTCPeerConnection, RTCSessionDescription

aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
BITS = 16


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--seconds", type=float, default=20)
    a = ap.parse_args()
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    async with aiohttp.ClientSession() as http:
        async with http.post(a.url, data=pc.localDescription.sdp,
                             headers={"Content-Type": "application/sdp"}) as r:
            if r.status != 201:
                sys.exit(f"WHEP answered {r.status}")
            answer = await r.text()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    track = None
    for t in pc.getReceivers():
        if t.track.kind == "video":
            track = t.track
    end = None
    while end is None or time.time() < end:
        frame = await asyncio.wait_for(track.recv(), 10)
        now = time.time()
        if end is None:
            end = now + a.seconds
        w, h = frame.width, frame.height
        y = frame.planes[0]
        row = int(max(h / 15, 4) / 2)
        line = bytes(y)[row * y.line_size: row * y.line_size + w]
        n = sum((line[int((b + 0.5) * w / BITS)] > 128) << b for b in range(BITS))
        print(n, now, flush=True)
    await pc.close()


asyncio.run(main())
