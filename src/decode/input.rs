//! Opening the input FFmpeg demuxes: HLS segment bytes (locked down to MPEG-TS and fMP4,
//! no protocols), any FFmpeg URL or file, or the built-in test pattern.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ffmpeg_next as ff;

use super::DecodeError;
use crate::error::Result;
use crate::redact::Redacted;
use crate::source::hls::{HlsStream, SegmentReader};

/// Demuxers allowed on HLS segment bytes: MPEG-TS and ISO BMFF (fMP4), nothing else. A
/// "segment" that is itself a playlist, an ffconcat list or an SDP file never gets a
/// demuxer that opens files or URLs of its choosing.
const SEGMENT_FORMATS: &str = "mpegts,mp4";
/// Protocols segment demuxers may open by themselves: none (the bytes come from Lucid's
/// HLS client through custom IO). FFmpeg has no protocol of this name.
const SEGMENT_PROTOCOLS: &str = "lucid-none";

/// Inputs read through an FFmpeg demuxer.
pub(super) enum DemuxInput {
    Hls(HlsStream),
    Ffmpeg(String),
    /// A lavfi graph: the test pattern, a generator's black canvas.
    Lavfi(String),
}

/// Opens a demuxer on the HLS byte stream, restricted to the segment formats HLS allows
/// and to no protocols at all. A network failure while probing explains more than
/// FFmpeg's end-of-file, so it wins.
pub(super) fn open_hls_demuxer(
    source: &Redacted,
    reader: SegmentReader,
    hint: &str,
    stop: &Arc<AtomicBool>,
) -> Result<ff::format::context::Input> {
    let handle = reader.handle();
    let io = ff::format::context::StreamIo::from_read(reader).map_err(|e| DecodeError::Open {
        source_name: source.clone(),
        source: e,
    })?;
    let mut options = ff::Dictionary::new();
    options.set("format_whitelist", SEGMENT_FORMATS);
    options.set("protocol_whitelist", SEGMENT_PROTOCOLS);
    let stop = stop.clone();
    ff::format::input_from_stream_with_interrupt(io, Some(hint), Some(options), move || {
        stop.load(Ordering::Relaxed)
    })
    .map_err(|e| match handle.take_failure() {
        Some(failure) => failure.into(),
        None => DecodeError::Unplayable {
            source_name: source.clone(),
            reason: format!("segments could not be demuxed ({e})"),
        }
        .into(),
    })
}

/// The file name hint for FFmpeg's probe, matching the demuxer already in use.
pub(super) fn hls_hint(demuxer: &ff::format::context::Input) -> &'static str {
    if demuxer.format().name().contains("mp4") {
        "stream.mp4"
    } else {
        "stream.ts"
    }
}

pub(super) type OpenedInput = (
    ff::format::context::Input,
    bool,
    Option<String>,
    Option<SegmentReader>,
);

pub(super) fn open_input(
    source: &Redacted,
    input: DemuxInput,
    stop: &Arc<AtomicBool>,
) -> Result<OpenedInput> {
    let open_err = |e: ff::Error| DecodeError::Open {
        source_name: source.clone(),
        source: e,
    };
    match input {
        DemuxInput::Hls(stream) => {
            let handle = stream.reader.handle();
            let hint = if stream.fmp4 {
                "stream.mp4"
            } else {
                "stream.ts"
            };
            let demuxer = open_hls_demuxer(source, stream.reader, hint, stop)?;
            let rendition = stream.rendition.map(|r| r.to_string());
            Ok((demuxer, stream.live, rendition, Some(handle)))
        }
        DemuxInput::Ffmpeg(url) => {
            let demuxer = ff::format::input(&url).map_err(open_err)?;
            let live = ["rtmp", "rtmps", "rtsp", "srt", "udp", "tcp", "rtp"]
                .iter()
                .any(|s| url.starts_with(&format!("{s}://")));
            Ok((demuxer, live, None, None))
        }
        DemuxInput::Lavfi(graph) => {
            let lavfi = ff::device::input::video()
                .find(|f| f.name() == "lavfi")
                .ok_or_else(|| open_err(ff::Error::DemuxerNotFound))?;
            let ctx = ff::format::open(&graph, &lavfi).map_err(open_err)?;
            Ok((ctx.input(), false, None, None))
        }
    }
}
