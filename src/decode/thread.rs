//! The decode thread itself: opens the source, decodes on its own thread and hands
//! frames over the bounded queue, then says once how the stream ended.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};
use ffmpeg_next as ff;
use tracing::{info, warn};

use super::audio::AudioDecoder;
use super::decoder::VideoDecoder;
use super::frame::{FrameReceiver, QueuePolicy, frame_queue};
use super::input::{DemuxInput, hls_hint, open_hls_demuxer, open_input};
use super::{DecodeError, DecodeOptions, FRAME_QUEUE, SourceEnd, StreamInfo};
use crate::error::{LucidError, Result};
use crate::lifecycle::Lifecycle;
use crate::redact::Redacted;
use crate::source::whep::lipsync::AUDIO_CLOCK_RATE;
use crate::source::whep::{SoundPacket, WhepStream};
use crate::source::{NetworkStream, SourceSpec, open_network};

/// The running decode thread and its outputs.
pub struct DecodeThread {
    /// What the stream is.
    pub info: StreamInfo,
    /// Decoded frames, in order.
    pub frames: FrameReceiver,
    /// Receives exactly one message when the stream ends.
    pub end: Receiver<SourceEnd>,
    /// The thread itself, joined when this is dropped.
    pub handle: DecodeJoin,
}

/// How long dropping a [`DecodeJoin`] waits for its thread.
const DECODE_JOIN_GRACE: Duration = Duration::from_secs(3);

/// A decode thread that is waited for (up to [`DECODE_JOIN_GRACE`]) when this is dropped,
/// so the decoder and its hardware context are gone before the process exits. Left to run
/// into the exit, FFmpeg's CUDA context was destroyed after the driver's own exit handlers
/// (`cuCtxDestroy failed`), and on an H200 the exit then hung, 2 runs in 3. Whoever holds
/// the frame queue drops it first (declare this field after it): a thread blocked on a
/// full queue ends when its receiver goes.
#[derive(Debug)]
pub struct DecodeJoin(Option<JoinHandle<()>>);

impl Drop for DecodeJoin {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take()
            && !crate::lifecycle::join_by(handle, Instant::now() + DECODE_JOIN_GRACE)
        {
            warn!("a decode thread did not end in time; leaving it behind");
        }
    }
}

impl DecodeThread {
    /// Opens `spec` and starts decoding. Returns once the stream's format is known, or with
    /// the error that makes it unplayable; [`DecodeError::Stopped`] when a stop request cut
    /// the opening short (FFmpeg's probe is interrupted, whatever it then reports).
    pub fn spawn(
        spec: &SourceSpec,
        options: DecodeOptions,
        lifecycle: &Lifecycle,
    ) -> Result<DecodeThread> {
        match Self::open(spec, options, lifecycle) {
            Err(e) if lifecycle.stopping() && !matches!(e, LucidError::Internal { .. }) => {
                Err(DecodeError::Stopped.into())
            }
            opened => opened,
        }
    }

    fn open(
        spec: &SourceSpec,
        options: DecodeOptions,
        lifecycle: &Lifecycle,
    ) -> Result<DecodeThread> {
        ff::init().map_err(DecodeError::Init)?;
        ff::device::register_all();
        ff::util::log::set_level(ff::util::log::Level::Error);

        let source = spec.display_name();
        let mut protocol = (None, None);
        let input = match open_network(spec, &options.source, lifecycle)? {
            Some(opened) => {
                protocol = (Some(opened.protocol), opened.why);
                match opened.stream {
                    NetworkStream::Hls(s) => InputKind::Demux(DemuxInput::Hls(s)),
                    NetworkStream::Whep(s) => InputKind::Whep(s),
                }
            }
            None => match spec {
                SourceSpec::Ffmpeg(s) => InputKind::Demux(DemuxInput::Ffmpeg(s.clone())),
                SourceSpec::Canvas {
                    width,
                    height,
                    rate,
                } => InputKind::Demux(DemuxInput::Lavfi(format!(
                    "color=c=black:size={width}x{height}:rate={rate},format=yuv420p"
                ))),
                _ => InputKind::Demux(DemuxInput::Lavfi(super::TEST_PATTERN.into())),
            },
        };
        let (info_tx, info_rx) = bounded(1);
        let (end_tx, end_rx) = bounded(1);
        let stop = lifecycle.stop_flag();
        let handle = lifecycle.spawn("lucid-decode", move || match input {
            InputKind::Whep(stream) => {
                decode_whep(source, stream, &options, &stop, info_tx, end_tx)
            }
            InputKind::Demux(input) => decode_main(source, input, &options, stop, info_tx, end_tx),
        });
        match info_rx.recv() {
            Ok(Ok((mut info, frames))) => {
                (info.protocol, info.protocol_why) = protocol;
                Ok(DecodeThread {
                    info,
                    frames,
                    end: end_rx,
                    handle: DecodeJoin(Some(handle)),
                })
            }
            Ok(Err(e)) => Err(e),
            // The thread panicked before it said anything: its error is in the lifecycle.
            Err(_) => Err(lifecycle.take_error().unwrap_or(LucidError::Internal {
                thread: "lucid-decode".into(),
                message: "ended while opening the input".into(),
            })),
        }
    }
}

/// What the decode thread reads: a demuxer's packets, or WebRTC's access units.
enum InputKind {
    Demux(DemuxInput),
    Whep(WhepStream),
}

type Opened = std::result::Result<(StreamInfo, FrameReceiver), LucidError>;

fn decode_main(
    source: Redacted,
    input: DemuxInput,
    options: &DecodeOptions,
    stop: Arc<AtomicBool>,
    info_tx: Sender<Opened>,
    end_tx: Sender<SourceEnd>,
) {
    let (edge, segment_duration) = match &input {
        DemuxInput::Hls(s) if s.live => (Some(s.edge.clone()), Some(s.target_duration)),
        _ => (None, None),
    };
    let (mut demuxer, live, rendition, hls) = match open_input(&source, input, &stop) {
        Ok(v) => v,
        Err(e) => {
            let _ = info_tx.send(Err(e));
            return;
        }
    };
    let mut decoder = match VideoDecoder::open(&source, &demuxer, options.force_cpu) {
        Ok(d) => d,
        Err(e) => {
            let _ = info_tx.send(Err(e));
            return;
        }
    };
    let (mut audio, audio_feed) = match options
        .audio
        .then(|| AudioDecoder::open(&demuxer, live))
        .flatten()
    {
        Some((decoder, feed)) => {
            info!(
                "sound: {} {} Hz, {} channel(s)",
                feed.info.codec, feed.info.sample_rate, feed.info.channels
            );
            (Some(decoder), Some(feed))
        }
        None => (None, None),
    };
    let policy = if live {
        QueuePolicy::DropOldest {
            patience: Duration::from_millis(500),
        }
    } else {
        QueuePolicy::Block
    };
    let (tx, rx) = frame_queue(FRAME_QUEUE, policy, stop.clone());
    // The container's duration (AV_TIME_BASE units), for progress; live inputs have none.
    let duration = (!live && demuxer.duration() > 0)
        .then(|| Duration::try_from_secs_f64(demuxer.duration() as f64 / 1e6).ok())
        .flatten();
    let info = StreamInfo {
        source: source.to_string(),
        width: decoder.width,
        height: decoder.height,
        frame_rate: decoder.frame_rate,
        duration,
        decoder: decoder.describe(),
        live,
        rendition,
        live_edge: edge,
        segment_duration,
        protocol: None,
        protocol_why: None,
        webrtc: None,
        paced_upstream: false,
        audio: audio_feed,
    };
    info!("decoder: {}", info.decoder);
    if info_tx.send(Ok((info, rx))).is_err() {
        return;
    }
    let result = loop {
        if let Err(e) = decoder.run(&mut demuxer, &tx, audio.as_mut(), &stop) {
            break Err(e);
        }
        // An HLS timeline break ends one demuxer's input; the stream goes on in a new one.
        let Some(next) = hls.as_ref().and_then(|h| h.next_timeline()) else {
            break Ok(());
        };
        let (next, gap) = next;
        info!(
            "timeline break (discontinuity, new session, skipped segments or a gap): reopening the demuxer"
        );
        match open_hls_demuxer(&source, next, hls_hint(&demuxer), &stop)
            .and_then(|d| decoder.switch_timeline(&d, gap).map(|()| d))
        {
            Ok(d) => {
                if let Some(a) = audio.as_mut() {
                    a.switch_timeline(&d);
                }
                demuxer = d;
            }
            Err(e) => break Err(e),
        }
    };
    // Whatever ended decoding, the network thread stops fetching now.
    if let Some(h) = &hls {
        h.close();
    }
    let end = match result {
        Err(e) => SourceEnd::Failed(e),
        Ok(()) => match hls.and_then(|h| h.take_failure()) {
            Some(e) => SourceEnd::Failed(e.into()),
            None => SourceEnd::Finished,
        },
    };
    if tx.dropped() > 0 {
        info!(
            "decoder dropped {} frame(s) the renderer did not take in time",
            tx.dropped()
        );
    }
    let _ = end_tx.send(end);
}

/// How long the WebRTC decode loop waits for a unit before looking at the stop flag.
const UNIT_POLL: Duration = Duration::from_millis(50);

/// Decodes WebRTC's access units. The picture size is known only once the first keyframe
/// is decoded, so the stream counts as open from then (or fails after `--wait`).
fn decode_whep(
    source: Redacted,
    stream: WhepStream,
    options: &DecodeOptions,
    stop: &Arc<AtomicBool>,
    info_tx: Sender<Opened>,
    end_tx: Sender<SourceEnd>,
) {
    let mut decoder = match VideoDecoder::for_access_units(&source, options.force_cpu) {
        Ok(d) => d,
        Err(e) => {
            let _ = info_tx.send(Err(e));
            return;
        }
    };
    // Frames go out as the jitter buffer releases them: the renderer never holds the
    // network back, it skips instead.
    let (tx, rx) = frame_queue(
        FRAME_QUEUE,
        QueuePolicy::DropOldest {
            patience: Duration::from_millis(100),
        },
        stop.clone(),
    );
    let mut opening = Some((info_tx, rx));
    let give_up = Instant::now() + options.source.wait;
    let mut decoded = ff::frame::Video::empty();
    // The sound, when an output carries it: Opus packets already placed on the picture's
    // timeline by the session's lip sync.
    let (mut audio, mut audio_feed) = match options.audio.then(AudioDecoder::opus).flatten() {
        Some((decoder, feed)) => (Some(decoder), Some(feed)),
        None => (None, None),
    };
    let result = loop {
        if stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        let unit = crossbeam_channel::select! {
            recv(stream.units) -> unit => unit,
            recv(stream.sound) -> packet => {
                // Placed on the pictures' timeline from the first picture on (sound
                // before it is cut: nothing carries it yet).
                if let (Ok(packet), Some(a)) = (packet, audio.as_mut())
                    && !a.decode(&opus_packet(&packet), decoder.origin(), stop)
                {
                    audio = None;
                }
                continue;
            }
            default(UNIT_POLL) => {
                if opening.is_some() && Instant::now() > give_up {
                    break Err(decoder.unplayable(format!(
                        "no decodable picture arrived within {:.0} s",
                        options.source.wait.as_secs_f64()
                    )));
                }
                continue;
            }
        };
        let Ok(unit) = unit else {
            break stream.failure.try_recv().map_or(Ok(()), |e| Err(e.into()));
        };
        match decoder.decode_unit(&unit, &mut decoded, &tx) {
            Ok(true) => {}
            Ok(false) => break Ok(()),
            Err(e) => break Err(e),
        }
        if decoder.index > 0
            && let Some((info_tx, rx)) = opening.take()
        {
            let info = StreamInfo {
                source: source.to_string(),
                width: decoder.width,
                height: decoder.height,
                frame_rate: None,
                duration: None,
                decoder: decoder.describe(),
                live: true,
                rendition: None,
                live_edge: None,
                segment_duration: None,
                protocol: None,
                protocol_why: None,
                webrtc: Some(stream.stats.clone()),
                paced_upstream: true,
                audio: audio_feed.take(),
            };
            info!("decoder: {}", info.decoder);
            if let Some(feed) = &info.audio {
                info!(
                    "sound: {} {} Hz, {} channel(s)",
                    feed.info.codec, feed.info.sample_rate, feed.info.channels
                );
            }
            if info_tx.send(Ok((info, rx))).is_err() {
                return;
            }
        }
    };
    if let Some((info_tx, _)) = opening {
        let _ = info_tx.send(Err(result
            .err()
            .unwrap_or_else(|| DecodeError::Stopped.into())));
        return;
    }
    let end = match result {
        Ok(()) => SourceEnd::Finished,
        Err(e) => SourceEnd::Failed(e),
    };
    let _ = end_tx.send(end);
}

/// A WebRTC Opus packet for FFmpeg's decoder: its time in samples at 48 kHz.
fn opus_packet(sound: &SoundPacket) -> ff::Packet {
    let mut packet = ff::Packet::copy(&sound.data);
    let samples = (sound.pts.as_secs_f64() * f64::from(AUDIO_CLOCK_RATE)).round() as i64;
    packet.set_pts(Some(samples));
    packet.set_dts(Some(samples));
    packet
}
