"""A WHEP server on 127.0.0.1 built on aiortc: an independent WebRTC peer for Lucid's tests.

It answers POSTs of SDP offers the way Livepeer's and Daydream's servers do (201 with the
answer, 404/429/406/503 on request, 415 for a wrong content type) and sends a marked
picture: each frame carries its number in a strip of 16 black/white cells at the top
(the same marker the HLS test origins draw, read by tests/support). With --sound-clicks it
also sends Opus sound: silence with a 4 ms 2 kHz click at the capture time of every 45th
frame (0, 45, 90, ...: the clicks the HLS tests' clips carry), so a recording shows how far
each click lands from the frame that carries its marker.

Events go to stdout as JSON lines (listening, offer, answered, keyframe_request, dropping,
deleted) so tests assert on what the peer saw.
"""

import argparse
import asyncio
import contextvars
import datetime
import fractions
import json
import math
import random
import struct
import sys
import time

import aioice.ice
from aioice import stun
from aiohttp import web
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc import clock as aiortc_clock
from aiortc import rtcrtpsender
from aiortc.rtcdtlstransport import RTCDtlsTransport
import av

# Tests talk to 127.0.0.1 only: offer the loopback address as the one host candidate.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

MARKER_BITS = 16


def event(kind, **fields):
    print(json.dumps({"event": kind, "t": time.time(), **fields}), flush=True)


class CaptureClock:
    """When capture started, shared by the picture and the sound, so that frame n and the
    sound at n / fps are captured (and sent, and reported in RTCP) together."""

    def __init__(self, fps):
        self.fps = fps
        self.start = None

    def started(self):
        if self.start is None:
            self.start = time.time()
            # Frame n is made at start + n / fps: benchmarks measure from here.
            event("capture_start", fps=self.fps)
        return self.start


class MarkedTrack(VideoStreamTrack):
    """Grey frames with the frame number in the top strip, at a fixed rate."""

    def __init__(self, width, height, clock):
        super().__init__()
        self.width, self.height, self.fps = width, height, clock.fps
        self.clock = clock
        self.n = 0

    async def recv(self):
        due = self.clock.started() + self.n / self.fps
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


class ClickTrack(MediaStreamTrack):
    """48 kHz stereo sound in 20 ms frames: silence, and a 4 ms 2 kHz click at the capture
    time of frames 0, 45, 90, ... (every 1.5 s at 30 fps)."""

    kind = "audio"
    RATE = 48000
    SAMPLES = 960

    def __init__(self, clock):
        super().__init__()
        self.clock = clock
        self.k = 0

    async def recv(self):
        start = self.clock.started()
        first = self.k * self.SAMPLES
        due = start + first / self.RATE
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        every = 45 / self.clock.fps
        samples = bytearray()
        for i in range(first, first + self.SAMPLES):
            t = i / self.RATE
            since = t - every * round(t / every)
            value = 0
            if 0 <= since < 0.004:
                value = int(0.8 * 32767 * math.sin(2 * math.pi * 2000 * since))
            samples += struct.pack("<hh", value, value)
        frame = av.AudioFrame(format="s16", layout="stereo", samples=self.SAMPLES)
        frame.planes[0].update(bytes(samples))
        frame.sample_rate = self.RATE
        frame.pts = first
        frame.time_base = fractions.Fraction(1, self.RATE)
        self.k += 1
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


# The capture time of the frame a sender task is sending (see report_capture_time).
CAPTURED = contextvars.ContextVar("captured", default=None)


def report_capture_time():
    """Sender reports that pair each RTP timestamp with its capture time.

    aiortc pairs an SR's RTP timestamp with the time its packet was *sent*, so each
    stream's encoder delay moves lip sync (its Opus resampler holds back a 20 ms frame: the
    sound would be reported ~25 ms late). RFC 3550 6.4.1 pairs the two at the same instant,
    as browsers do from capture time. Each sender task notes the capture time of the frame
    it is sending (a context variable: one per task), and the clock aiortc's sender reads
    when it sends a packet gives that time."""
    original = rtcrtpsender.RTCRtpSender._next_encoded_frame

    async def next_encoded_frame(sender, codec):
        encoded = await original(sender, codec)
        clock = getattr(sender.track, "clock", None)
        if encoded is not None and clock is not None and clock.start is not None:
            CAPTURED.set(clock.start + encoded.timestamp / codec.clockRate)
        return encoded

    class CaptureNtp:
        def __getattr__(self, name):
            return getattr(aiortc_clock, name)

        @staticmethod
        def current_ntp_time():
            at = CAPTURED.get()
            if at is None:
                return aiortc_clock.current_ntp_time()
            when = datetime.datetime.fromtimestamp(at, datetime.timezone.utc)
            return aiortc_clock.datetime_to_ntp(when)

    rtcrtpsender.RTCRtpSender._next_encoded_frame = next_encoded_frame
    rtcrtpsender.clock = CaptureNtp()


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
    p.add_argument("--sound-clicks", action="store_true",
                   help="send Opus sound: a click on every 45th frame's capture time")
    p.add_argument("--answer-vp8", action="store_true",
                   help="rewrite the answer's video to VP8 only (a server that ignores the offer)")
    args = p.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    statuses = [int(s) for s in args.statuses.split(",") if s]
    Dropper(args.drop_at, args.drop_for, args.jitter_ms / 1000).install()
    count_keyframe_requests()
    report_capture_time()
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
        clock = CaptureClock(args.fps)
        pc.addTrack(MarkedTrack(width, height, clock))
        if args.sound_clicks:
            pc.addTrack(ClickTrack(clock))
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
