"""A WHEP server on 127.0.0.1 built on aiortc: an independent WebRTC peer for Lucid's tests.

It answers POSTs of SDP offers the way Livepeer's and Daydream's servers do (201 with the
answer, 404/429/406/503 on request, 415 for a wrong content type) and sends a marked
picture: each frame carries its number in a strip of 16 black/white cells at the top
(the same marker the HLS test origins draw, read by tests/support).

Events go to stdout as JSON lines (listening, offer, answered, keyframe_request, dropping,
deleted) so tests assert on what the peer saw.
"""

import argparse
import asyncio
import fractions
import json
import random
import sys
import time

import aioice.ice
from aioice import stun
from aiohttp import web
from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc import rtcrtpsender
from aiortc.rtcdtlstransport import RTCDtlsTransport
import av

# Tests talk to 127.0.0.1 only: offer the loopback address as the one host candidate.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

MARKER_BITS = 16


def event(kind, **fields):
    print(json.dumps({"event": kind, "t": time.time(), **fields}), flush=True)


class MarkedTrack(VideoStreamTrack):
    """Grey frames with the frame number in the top strip, at a fixed rate."""

    def __init__(self, width, height, fps):
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self.n = 0
        self.start = None

    async def recv(self):
        if self.start is None:
            self.start = time.time()
            # Frame n is made at start + n / fps: benchmarks measure from here.
            event("capture_start", fps=self.fps)
        due = self.start + self.n / self.fps
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        strip = max(int(self.height / 15.0), 4)
        y = frame.planes[0]
        row_bytes = bytearray()
        cell = self.width / MARKER_BITS
        for x in range(y.line_size):
            bit = min(int(x / cell), MARKER_BITS - 1) if x < self.width else 0
            on = x < self.width and (self.n >> bit) & 1
            row_bytes.append(235 if on else 16)
        body = bytearray([60 + (self.n * 3) % 120]) * y.line_size
        y.update(bytes(row_bytes) * strip + bytes(body) * (self.height - strip))
        for plane in frame.planes[1:]:
            plane.update(bytes([128]) * (plane.line_size * (self.height // 2)))
        frame.pts = self.n * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        self.n += 1
        return frame


class Dropper:
    """Drops every outgoing RTP packet in a window of time and never retransmits them
    (NACKs for them go unanswered), so the receiver sees a real gap and must ask for a
    keyframe."""

    def __init__(self, at, length, jitter):
        self.at, self.length = at, length
        self.jitter = jitter
        self.started = None
        self.dropped = 0
        self.lost = set()

    def install(self):
        original = RTCDtlsTransport._send_rtp
        original_retransmit = rtcrtpsender.RTCRtpSender._retransmit
        dropper = self

        async def send_rtp(transport, data):
            is_rtcp = len(data) > 1 and 192 <= data[1] <= 223
            if not is_rtcp and dropper.dropping():
                dropper.dropped += 1
                dropper.lost.add(int.from_bytes(data[2:4], "big"))
                if dropper.dropped == 1:
                    event("dropping")
                return
            if dropper.jitter and not is_rtcp:
                # Network jitter: each packet late by a random 0..jitter seconds (so they
                # also arrive out of order).
                delay = random.uniform(0, dropper.jitter)
                asyncio.get_running_loop().call_later(
                    delay, lambda: asyncio.ensure_future(original(transport, data)))
                return
            await original(transport, data)

        async def retransmit(sender, seq):
            if seq in dropper.lost:
                return
            await original_retransmit(sender, seq)

        RTCDtlsTransport._send_rtp = send_rtp
        rtcrtpsender.RTCRtpSender._retransmit = retransmit

    def dropping(self):
        if self.at is None:
            return False
        if self.started is None:
            self.started = time.time()
        elapsed = time.time() - self.started
        return self.at <= elapsed < self.at + self.length


def count_keyframe_requests():
    original = rtcrtpsender.RTCRtpSender._send_keyframe

    def send_keyframe(sender):
        event("keyframe_request")
        original(sender)

    rtcrtpsender.RTCRtpSender._send_keyframe = send_keyframe


class StunResponder(asyncio.DatagramProtocol):
    """A STUN server (aioice's own message code) that answers Binding requests with the
    sender's address, its port moved by one, as a NAT would map it."""

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        try:
            request = stun.parse_message(data)
        except ValueError:
            return
        if request.message_method != stun.Method.BINDING:
            return
        event("stun_binding")
        response = stun.Message(
            message_method=stun.Method.BINDING,
            message_class=stun.Class.RESPONSE,
            transaction_id=request.transaction_id,
        )
        response.attributes["XOR-MAPPED-ADDRESS"] = (addr[0], addr[1] + 1)
        self.transport.sendto(bytes(response), addr)


def vp8_only(sdp):
    """The answer with its video section's codecs replaced by VP8 alone."""
    out, in_video = [], False
    for line in sdp.splitlines():
        if line.startswith("m="):
            if in_video:
                out.append("a=rtpmap:96 VP8/90000")
            in_video = line.startswith("m=video")
            if in_video:
                line = " ".join(line.split()[:3] + ["96"])
        elif in_video and line.startswith(("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:")):
            continue
        out.append(line)
    if in_video:
        out.append("a=rtpmap:96 VP8/90000")
    return "\r\n".join(out) + "\r\n"


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/whep")
    p.add_argument("--size", default="320x180")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--statuses", default="", help="comma-separated statuses for the first POSTs")
    p.add_argument("--refuse", type=int, default=0, help="answer every POST with this status")
    p.add_argument("--location", action="store_true", help="send Location and accept DELETE")
    p.add_argument("--drop-at", type=float, default=None, help="seconds after the first RTP")
    p.add_argument("--drop-for", type=float, default=0.4)
    p.add_argument("--jitter-ms", type=float, default=0, help="delay each RTP packet by 0..N ms")
    p.add_argument("--stun-port", type=int, default=0, help="also run a STUN server here")
    p.add_argument("--answer-vp8", action="store_true",
                   help="rewrite the answer's video to VP8 only (a server that ignores the offer)")
    args = p.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    statuses = [int(s) for s in args.statuses.split(",") if s]
    Dropper(args.drop_at, args.drop_for, args.jitter_ms / 1000).install()
    count_keyframe_requests()
    peers = set()

    async def offer(request):
        event("offer", content_type=request.content_type)
        if request.content_type != "application/sdp":
            return web.Response(status=415, text="body must be application/sdp")
        body = await request.text()
        event("candidates", types=sorted(set(
            line.split(" typ ")[1].split()[0] for line in body.splitlines() if " typ " in line)))
        if args.refuse:
            return web.Response(status=args.refuse, text="refused by the test peer")
        if statuses:
            status = statuses.pop(0)
            return web.Response(status=status, text=f"scripted {status}")
        pc = RTCPeerConnection()
        peers.add(pc)
        pc.addTrack(MarkedTrack(width, height, args.fps))
        await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        # aiortc gathers before it returns the local description: the answer is complete.
        event("answered")
        headers = {"Content-Type": "application/sdp"}
        if args.location:
            headers["Location"] = f"{args.path}/session/{id(pc)}"
        sdp = pc.localDescription.sdp
        if args.answer_vp8:
            sdp = vp8_only(sdp)
        return web.Response(status=201, text=sdp, headers=headers)

    async def delete(request):
        event("deleted", path=request.path)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post(args.path, offer)
    app.router.add_delete(args.path + "/session/{id}", delete)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port)
    await site.start()
    if args.stun_port:
        await asyncio.get_running_loop().create_datagram_endpoint(
            StunResponder, local_addr=("127.0.0.1", args.stun_port))
    event("listening", port=args.port)
    try:
        while True:
            await asyncio.sleep(3600)
    finally:
        for pc in peers:
            await pc.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
