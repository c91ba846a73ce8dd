//! `--record`: H.264 (libx264) in MP4 or Matroska, written by FFmpeg's muxers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ffmpeg_next as ff;

use super::OutputError;
use super::audio::AudioTrack;
use super::encode::{EncoderSettings, H264Encoder, Picture, RateGoal, TIME_BASE, timestamp};
use super::interrupt::{self, CutFlag, Interruptible};
use crate::decode::AudioChunk;
use crate::decode::audio::{SAMPLE_RATE, sample_index};
use crate::error::{LucidError, Result};

/// The FFmpeg muxer for a record path, chosen by its extension.
pub fn container_for(path: &Path) -> Result<&'static str> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("mp4") | Some("m4v") | Some("mov") => Ok("mp4"),
        Some("mkv") => Ok("matroska"),
        _ => Err(LucidError::Usage(format!(
            "--record {}: use a .mp4 or .mkv file name",
            path.display()
        ))),
    }
}

/// Checks the record path before anything starts, creating nothing: an existing file is
/// refused unless `overwrite` (`--overwrite`, like FFmpeg's `-y`), and the folder must
/// exist, so a typo fails in a second, not after the stream warmed up.
pub fn check_path(path: &Path, overwrite: bool) -> Result<()> {
    let fail = |what: &str| OutputError::plain(path, what);
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => return Err(fail("it is a folder").into()),
        Ok(_) if !overwrite => {
            return Err(fail("the file exists (pass --overwrite to replace it)").into());
        }
        _ => {}
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(fail("its folder does not exist").into());
    }
    Ok(())
}

/// Claims the record path: creates it (failing if it appeared meanwhile, unless
/// `overwrite`) and returns the name FFmpeg must open it by: `file:` and the absolute path,
/// so a name such as `pipe:1.mkv` or `http://x.mp4` is a file, never an FFmpeg protocol.
fn claim(path: &Path, overwrite: bool) -> Result<PathBuf> {
    create_file(path, overwrite).map_err(|e| {
        let what = if e.kind() == std::io::ErrorKind::AlreadyExists {
            "the file exists (pass --overwrite to replace it)"
        } else {
            "creating the file"
        };
        OutputError::new(path, what, e)
    })?;
    let absolute =
        std::path::absolute(path).map_err(|e| OutputError::new(path, "resolving the path", e))?;
    let mut name = std::ffi::OsString::from("file:");
    name.push(absolute.as_os_str());
    Ok(PathBuf::from(name))
}

/// Creates `path` for writing: replacing it with `overwrite`, else only if it does not
/// exist (atomically, so a file that appeared since the checks is never clobbered).
pub fn create_file(path: &Path, overwrite: bool) -> std::io::Result<std::fs::File> {
    let mut open = std::fs::OpenOptions::new();
    open.write(true);
    if overwrite {
        open.create(true).truncate(true);
    } else {
        open.create_new(true);
    }
    open.open(path)
}

/// An open recording. Frames must be YUV420P at the configured size.
///
/// MP4 is written fragmented (a fragment a second, the index up front and in each
/// fragment), Matroska in clusters: either file plays up to its last complete fragment or
/// cluster even when Lucid is killed or the power goes, not only after a clean stop.
pub struct Recorder(Muxer);

impl Recorder {
    /// Creates the file (see [`check_path`] for the rules) and the encoder, and writes the
    /// container header.
    pub fn create(
        path: &Path,
        overwrite: bool,
        picture: Picture,
        settings: &EncoderSettings,
        audio: bool,
    ) -> Result<Recorder> {
        let container = container_for(path)?;
        let target = claim(path, overwrite)?;
        let mut muxer_opts = ff::Dictionary::new();
        if container == "mp4" {
            muxer_opts.set("movflags", "+frag_keyframe+empty_moov+default_base_moof");
            muxer_opts.set("frag_duration", "1000000");
        }
        let open = MuxerOpen {
            target: &target,
            shown: path.to_path_buf(),
            container,
            io_options: ff::Dictionary::new(),
            muxer_options: muxer_opts,
            goal: RateGoal::File,
            // A recording is always waited for: nothing cuts its writes.
            cut: CutFlag::default(),
            audio,
        };
        Muxer::open(open, picture, settings)
            .map(Recorder)
            .inspect_err(|_| {
                // Nothing was recorded: leave no empty file behind to be mistaken for one.
                let _ = std::fs::remove_file(path);
            })
    }

    /// The encoder's name.
    pub fn encoder(&self) -> &'static str {
        self.0.encoder_name()
    }

    /// Encodes one frame at `pts` (stream time of the presented frame); returns the bytes
    /// written to the file.
    pub fn write(&mut self, frame: &mut ff::frame::Video, pts: Duration) -> Result<u64> {
        self.0.write(frame, pts)
    }

    /// Places sound on the recording's AAC track (see [`Muxer::write_audio`]).
    pub fn write_audio(&mut self, chunk: &AudioChunk) -> Result<u64> {
        self.0.write_audio(chunk)
    }

    /// Silence the sound track got in gaps so far, in samples.
    pub fn audio_filled(&self) -> u64 {
        self.0.audio_filled()
    }

    /// Flushes the encoder and writes the trailer (MP4's index): without it the file does
    /// not play. Returns the number of frames recorded.
    pub fn finish(self) -> Result<u64> {
        self.0.finish()
    }
}

/// Where and how a [`Muxer`] opens.
pub struct MuxerOpen<'a> {
    /// The name FFmpeg opens (`file:/abs/path`, `rtmp://...`).
    pub target: &'a Path,
    /// The name errors show (the user's path; a URL with its secrets masked).
    pub shown: PathBuf,
    /// FFmpeg's muxer (`mp4`, `matroska`, `flv`, `mpegts`).
    pub container: &'static str,
    /// Protocol options (timeouts, packet sizes).
    pub io_options: ff::Dictionary<'static>,
    /// Muxer options.
    pub muxer_options: ff::Dictionary<'static>,
    /// File or network rate control.
    pub goal: RateGoal,
    /// Cuts the connection's blocking I/O short when finishing gives up on it.
    pub cut: CutFlag,
    /// Carry sound: an AAC track beside the picture.
    pub audio: bool,
}

/// An H.264 encoder feeding one of FFmpeg's muxers: a file or a network connection.
pub struct Muxer {
    shown: PathBuf,
    output: Interruptible,
    encoder: H264Encoder,
    stream_time_base: ff::Rational,
    last_pts: Option<i64>,
    frames: u64,
    /// How long the connection stays open after the trailer (see [`Muxer::hold_open`]).
    close_delay: Duration,
    /// The sound, when the show has some.
    audio: Option<AudioTrack>,
    /// A file or a network output.
    goal: RateGoal,
}

impl Muxer {
    /// Keeps the connection open this long after the trailer before closing it: an SRT
    /// receiver drops what it still holds in its latency buffer when the sender closes.
    pub fn hold_open(&mut self, delay: Duration) {
        self.close_delay = delay;
    }

    /// Opens the target, the encoder, and writes the container header.
    pub fn open(
        open: MuxerOpen<'_>,
        picture: Picture,
        settings: &EncoderSettings,
    ) -> Result<Muxer> {
        let shown = open.shown;
        let fail = |what: &str, e: ff::Error| OutputError::new(&shown, what, e);
        let mut output = interrupt::open(open.target, open.container, open.io_options, &open.cut)
            .map_err(|e| fail("opening", e))?;
        let global_header = output
            .format()
            .flags()
            .contains(ff::format::Flags::GLOBAL_HEADER);
        let encoder = H264Encoder::open(settings, picture, open.goal, global_header)
            .map_err(|e| OutputError::new(&shown, "opening the encoder", e))?;
        let mut stream = output
            .add_stream(encoder.codec)
            .map_err(|e| fail("adding a stream", e))?;
        stream.set_parameters(&encoder.encoder);
        stream.set_time_base(TIME_BASE);
        let mut audio = match open.audio {
            true => Some(
                AudioTrack::add(&mut output, global_header)
                    .map_err(|e| fail("opening the AAC encoder", e))?,
            ),
            false => None,
        };
        output
            .write_header_with(open.muxer_options)
            .map_err(|e| fail("writing the header", e))?;
        if let Some(track) = audio.as_mut() {
            track.header_written(&output);
        }
        let stream_time_base = output
            .stream(0)
            .map(|s| s.time_base())
            .unwrap_or(ff::Rational::from(TIME_BASE));
        Ok(Muxer {
            shown,
            output,
            encoder,
            stream_time_base,
            last_pts: None,
            frames: 0,
            close_delay: Duration::ZERO,
            audio,
            goal: open.goal,
        })
    }

    /// Silence the sound track got in gaps so far, in samples (0 without sound).
    pub fn audio_filled(&self) -> u64 {
        self.audio.as_ref().map_or(0, AudioTrack::filled)
    }

    /// Places sound by its stream time on the AAC track (nothing without one) and encodes
    /// what is ready; returns the bytes written.
    pub fn write_audio(&mut self, chunk: &AudioChunk) -> Result<u64> {
        let Some(track) = self.audio.as_mut() else {
            return Ok(0);
        };
        track.line().push(chunk);
        let written = track.write_ready(&mut self.output);
        written.map_err(|e| self.error("writing sound", e))
    }

    /// The encoder's name.
    pub fn encoder_name(&self) -> &'static str {
        self.encoder.name
    }

    /// Encodes one frame at `pts`; returns the bytes handed to the muxer.
    pub fn write(&mut self, frame: &mut ff::frame::Video, pts: Duration) -> Result<u64> {
        let ts = timestamp(pts, self.last_pts);
        self.last_pts = Some(ts);
        frame.set_pts(Some(ts));
        frame.set_kind(ff::picture::Type::None);
        self.encoder
            .send_frame(frame)
            .map_err(|e| self.error("encoding", e))?;
        self.frames += 1;
        let mut bytes = self.write_packets()?;
        if let Some(track) = self.audio.as_mut() {
            // The sound starts with the first picture. On a network output, sound more
            // than a second behind the picture is missing (a source with no sound for a
            // while), and silence takes its place, so the muxer never holds pictures back
            // waiting for it. A file waits: a badly interleaved source's sound still comes.
            track.start(pts);
            if self.goal == RateGoal::Stream {
                let behind = sample_index(pts) - i64::from(SAMPLE_RATE);
                track.line().fill_to(behind);
            }
            let written = track.write_ready(&mut self.output);
            bytes += written.map_err(|e| self.error("writing sound", e))?;
        }
        Ok(bytes)
    }

    fn write_packets(&mut self) -> Result<u64> {
        let mut packet = ff::Packet::empty();
        let mut bytes = 0;
        while self.encoder.encoder.receive_packet(&mut packet).is_ok() {
            packet.set_stream(0);
            // Without a duration the MP4 muxer gives the last frame none, and players
            // (FFmpeg's edit-list handling included) then drop it.
            if packet.duration() <= 0 {
                packet.set_duration(self.encoder.frame_duration);
            }
            packet.rescale_ts(TIME_BASE, self.stream_time_base);
            bytes += packet.size() as u64;
            packet
                .write_interleaved(&mut self.output)
                .map_err(|e| self.error("writing", e))?;
        }
        Ok(bytes)
    }

    /// Flushes the encoder and writes the trailer. Returns the number of frames encoded.
    pub fn finish(mut self) -> Result<u64> {
        self.encoder
            .encoder
            .send_eof()
            .map_err(|e| self.error("flushing", e))?;
        self.write_packets()?;
        if let (Some(mut track), Some(last)) = (self.audio.take(), self.last_pts) {
            // As long as the picture: to the end of its last frame.
            let end = (last + self.encoder.frame_duration) as f64 / f64::from(TIME_BASE.1);
            let end = Duration::from_secs_f64(end.max(0.0));
            track
                .finish(end, &mut self.output)
                .map_err(|e| self.error("finishing the sound", e))?;
        }
        self.output
            .write_trailer()
            .map_err(|e| self.error("finalizing", e))?;
        std::thread::sleep(self.close_delay);
        Ok(self.frames)
    }

    fn error(&self, what: &str, e: ff::Error) -> LucidError {
        OutputError::new(&self.shown, what, e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_follows_extension() {
        assert_eq!(container_for(Path::new("a.MP4")).unwrap(), "mp4");
        assert_eq!(container_for(Path::new("a.mkv")).unwrap(), "matroska");
        assert!(container_for(Path::new("a.webm")).is_err());
        assert!(container_for(Path::new("noext")).is_err());
    }

    #[test]
    fn an_existing_file_is_never_replaced_without_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("show.mp4");
        std::fs::write(&path, b"last night's show").unwrap();
        assert!(check_path(&path, false).is_err());
        assert!(check_path(&path, true).is_ok());
        assert!(claim(&path, false).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"last night's show");
        let fresh = dir.path().join("pipe:1.mkv");
        let name = claim(&fresh, false).unwrap();
        assert!(fresh.is_file(), "a file named pipe:1.mkv, not stdout");
        assert!(name.to_string_lossy().starts_with("file:/"), "{name:?}");
        assert!(check_path(&dir.path().join("missing/x.mp4"), false).is_err());
    }
}
