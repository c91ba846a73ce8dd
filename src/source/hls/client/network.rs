//! The network thread: follows the live playlist (or walks a VOD), fetches each segment
//! (and its init segment) against its cap, and hands the bytes to the decoder's reader.

use super::*;

/// The init segment a media segment depends on: URI plus its byte range.
type MapKey = (Url, Option<(u64, Option<u64>)>);

pub(super) struct NetworkThread {
    pub(super) http: HlsSource,
    /// The URL the user gave (master or media): where a reconnect starts over.
    pub(super) entry: Url,
    /// How long an outage may last before the stream counts as gone.
    pub(super) wait: Duration,
    /// Set when a reconnect switched to another media playlist (a new timeline).
    pub(super) reconnected: bool,
    /// The rendition's declared bandwidth, for the segment size cap.
    pub(super) bandwidth: Option<u64>,
    pub(super) url: Url,
    pub(super) tx: Sender<Chunk>,
    /// Where a fatal error is left for the decoder to report.
    pub(super) failure: FailureSlot,
    pub(super) loaded_map: Option<MapKey>,
    /// False until the first media segment went out (a break before it means nothing).
    pub(super) sent_any: bool,
    pub(super) edge: LiveEdge,
    /// Stream time at the end of the last segment sent, gaps included (skipped segments
    /// do not count: the decoder carries time on across a break).
    pub(super) sent_end: Duration,
    /// Gap time not yet announced to the decoder (sent with the next break).
    pub(super) pending_gap: Duration,
}

impl NetworkThread {
    pub(super) fn run(mut self, first: MediaPlaylist) {
        match self.play(first) {
            Ok(()) | Err(HlsError::Stopped) => {}
            Err(e) => {
                warn!("HLS stream stopped: {e}");
                if let Ok(mut slot) = self.failure.lock() {
                    *slot = Some(e);
                }
            }
        }
        // Dropping `tx` ends the decoder's input.
    }

    pub(super) fn play(&mut self, mut media: MediaPlaylist) -> Result<()> {
        let mut window = LiveWindow::new(&media);
        let mut loaded_at = Instant::now();
        let mut last_new_segment = Instant::now();
        let mut in_outage = false;
        let mut reloads = ReloadPlan::default();
        // When the last load started, if it listed nothing new.
        let mut missed_at = None;
        loop {
            let step = window.observe(&media, std::mem::take(&mut self.reconnected));
            match step {
                WindowStep::Restarted => {
                    info!(
                        "media sequence restarted at {}: new session, following it",
                        media.media_sequence
                    );
                    self.send_break()?;
                }
                WindowStep::Skipped(n) => {
                    warn!("fell {n} segment(s) behind the live window; skipping ahead");
                    self.send_break()?;
                }
                WindowStep::Continues => {}
            }
            let target = playlist::target_secs(&media);
            let newest = media.segments.last().map(playlist::segment_secs);
            self.edge.update(
                self.sent_end + window.unsent(&media),
                newest.unwrap_or(target),
                target,
                step != WindowStep::Continues,
                Sighting {
                    at: Instant::now(),
                    missed_at,
                },
            );
            let before = window.next_seq();
            self.fetch_new_segments(&media, &mut window)?;
            if playlist::is_finite(&media) {
                info!("playlist ended (ENDLIST or PLAYLIST-TYPE:VOD)");
                return Ok(());
            }
            let changed = window.next_seq() != before;
            missed_at = (!changed).then_some(loaded_at);
            if changed {
                last_new_segment = Instant::now();
                if std::mem::take(&mut in_outage) {
                    info!("stream resumed");
                }
            } else if last_new_segment.elapsed() > target.saturating_mul(3) {
                // An outage, not an end (that would say ENDLIST): the last frame stays up
                // while we look for the stream again, for up to --wait.
                let silent = last_new_segment.elapsed();
                if !std::mem::replace(&mut in_outage, true) {
                    warn!(
                        "no new segment for {:.0}s: outage; holding the last frame and reconnecting",
                        silent.as_secs_f64()
                    );
                }
                if silent > self.outage_limit(target) {
                    return Err(HlsError::Unplayable {
                        url: Redacted::url(&self.entry),
                        reason: format!("no new segment for {:.0}s", silent.as_secs_f64()),
                    });
                }
                if let Some(m) = self.try_reconnect(&media) {
                    media = m;
                    loaded_at = Instant::now();
                    continue;
                }
            }
            let wake = reloads.next(
                Instant::now(),
                loaded_at,
                playlist::reload_delay(&media, changed),
                changed,
                self.edge.next_publication(),
                target,
            );
            debug!(
                "playlist: {}; live edge at {:.2} s; next reload in {:.0} ms",
                if changed { "new segment" } else { "unchanged" },
                self.edge.now().unwrap_or_default().as_secs_f64(),
                wake.saturating_duration_since(Instant::now()).as_secs_f64() * 1000.0
            );
            self.http.sleep_until(wake)?;
            loaded_at = Instant::now();
            media = self.reload(&media)?;
        }
    }

    /// Queues a chunk for the decoder, waiting for room. `Err(Stopped)` once the decoder
    /// is gone or Lucid is stopping, so a full queue never hangs this thread.
    pub(super) fn send(&self, mut chunk: Chunk) -> Result<()> {
        loop {
            match self.tx.send_timeout(chunk, STOP_POLL) {
                Ok(()) => return Ok(()),
                Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => {
                    return Err(HlsError::Stopped);
                }
                Err(crossbeam_channel::SendTimeoutError::Timeout(back)) => {
                    if self.http.stopped() {
                        return Err(HlsError::Stopped);
                    }
                    chunk = back;
                }
            }
        }
    }

    /// Tells the decoder the timeline breaks here (a no-op before the first segment), with
    /// any gap time that passed since the last segment.
    pub(super) fn send_break(&mut self) -> Result<()> {
        // A gap before the first segment means nothing: it is dropped with the break.
        let gap = std::mem::take(&mut self.pending_gap);
        if !self.sent_any {
            return Ok(());
        }
        self.sent_any = false;
        // A new demuxer needs the init segment again.
        self.loaded_map = None;
        self.send(Chunk::Break { gap })
    }

    /// Sends every segment not sent yet. GAP segments are never fetched: their time is
    /// passed on with the next break, so the picture holds for as long as they last.
    pub(super) fn fetch_new_segments(
        &mut self,
        media: &MediaPlaylist,
        window: &mut LiveWindow,
    ) -> Result<()> {
        let mut map: Option<MapKey> = None;
        for (i, seg) in media.segments.iter().enumerate() {
            // EXT-X-MAP applies to every following segment until the next one.
            if let Some(m) = &seg.map {
                map = Some((
                    playlist::resolve(&self.url, &m.uri)?,
                    m.byte_range.as_ref().map(|r| (r.length, r.offset)),
                ));
            }
            let seq = media.media_sequence.saturating_add(i as u64);
            if seq < window.next_seq() {
                continue;
            }
            let duration = playlist::segment_secs(seg);
            window.advance_past(seq);
            if self.http.stopped() {
                return Err(HlsError::Stopped);
            }
            if playlist::is_gap(seg) {
                debug!("segment {seq} is a gap ({:.1}s)", duration.as_secs_f64());
                self.pending_gap += duration;
                self.sent_end += duration;
                continue;
            }
            if seg.discontinuity || !self.pending_gap.is_zero() {
                self.send_break()?;
            }
            let limit = playlist::segment_limit(self.bandwidth, duration);
            if let Some((uri, range)) = map.clone().filter(|m| self.loaded_map.as_ref() != Some(m))
            {
                let range = range.map(|(length, offset)| ByteRange { length, offset });
                let (_, init) = self.http.get_retrying(
                    &uri,
                    range.as_ref(),
                    limit,
                    RetryPolicy::STARTUP,
                    "init segment",
                )?;
                self.send(Chunk::Data(init))?;
                self.loaded_map = map.clone();
            }
            let uri = playlist::resolve(&self.url, &seg.uri)?;
            match self.http.get_retrying(
                &uri,
                seg.byte_range.as_ref(),
                limit,
                RetryPolicy::SEGMENT,
                "segment",
            ) {
                Ok((_, bytes)) => {
                    debug!("segment {seq}: {} bytes", bytes.len());
                    self.send(Chunk::Data(bytes))?;
                    self.sent_any = true;
                    self.sent_end += duration;
                }
                Err(HlsError::Stopped) => return Err(HlsError::Stopped),
                Err(e) => {
                    warn!("skipping segment {seq}: {e}");
                    self.edge.shift_back(duration);
                    // What follows is later than what came before: a new timeline.
                    self.send_break()?;
                }
            }
        }
        Ok(())
    }

    /// Starts over from the user's URL (the master may now point at another media playlist,
    /// as after a broadcaster reconnect). Returns the new playlist when it is another one,
    /// or the same one restarted.
    pub(super) fn try_reconnect(&mut self, current: &MediaPlaylist) -> Option<MediaPlaylist> {
        let (rendition, url, media) = self.http.resolve_media(&self.entry).ok()?;
        let switched = url != self.url || media.media_sequence < current.media_sequence;
        if !switched || media.segments.is_empty() {
            return None;
        }
        info!("reconnected: {}", Redacted::url(&url));
        self.url = url;
        if let Some(r) = rendition {
            self.bandwidth = Some(r.bandwidth);
        }
        self.reconnected = true;
        Some(media)
    }

    /// Reloads the media playlist, retrying with backoff and, after a few target durations,
    /// reconnecting from the user's URL; a playlist that stays unreachable for --wait (and
    /// at least six target durations) ends the stream with an error.
    pub(super) fn reload(&mut self, previous: &MediaPlaylist) -> Result<MediaPlaylist> {
        let target = playlist::target_secs(previous);
        let give_up = self.outage_limit(target);
        let started = Instant::now();
        let mut delay = Duration::from_millis(500);
        loop {
            match self.http.get_media(&self.url).map(|(_, m)| m) {
                Ok(m) => return Ok(m),
                Err(HlsError::Stopped) => return Err(HlsError::Stopped),
                Err(e) if started.elapsed() >= give_up => return Err(e),
                Err(_)
                    if started.elapsed() > target.saturating_mul(3)
                        && let Some(m) = self.try_reconnect(previous) =>
                {
                    return Ok(m);
                }
                Err(e) => {
                    self.edge.note_retry();
                    warn!(
                        "reloading playlist: {}; retrying in {:.1}s",
                        e.short_reason(),
                        delay.as_secs_f64()
                    );
                    self.http.sleep_until(Instant::now() + delay)?;
                    delay = (delay * 2).min(Duration::from_secs(4));
                }
            }
        }
    }

    /// How long a live stream may go without new segments (or without a playlist) before
    /// it counts as gone: --wait, and never less than six target durations.
    pub(super) fn outage_limit(&self, target: Duration) -> Duration {
        self.wait.max(target.saturating_mul(6))
    }
}
