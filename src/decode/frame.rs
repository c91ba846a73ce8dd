//! Decoded frames and the bounded queue that carries them to the render side.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, bounded};

/// YUV -> RGB matrix of a frame, as the stream tags it (or as its size implies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorMatrix {
    /// ITU-R BT.601 (SD).
    Bt601,
    /// ITU-R BT.709 (HD).
    Bt709,
}

impl ColorMatrix {
    /// The matrix a picture of this height uses when nothing says otherwise (mpv's
    /// convention: BT.709 from 720 lines up, BT.601 below). Lucid reads untagged video and
    /// writes its own outputs by this rule.
    pub fn conventional(height: u32) -> ColorMatrix {
        if height >= 720 {
            ColorMatrix::Bt709
        } else {
            ColorMatrix::Bt601
        }
    }
}

/// A decoded frame, ready to upload: its pixels tightly packed (FFmpeg's row padding
/// stripped).
#[derive(Debug, Clone)]
pub struct VideoFrame {
    /// Position in decode order, from 0.
    pub index: u64,
    /// Presentation time relative to the first frame of the stream.
    pub pts: Duration,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The pixels.
    pub picture: Picture,
}

/// A frame's pixels: Y'CbCr stays Y'CbCr, RGB stays RGB.
#[derive(Debug, Clone)]
pub enum Picture {
    /// 4:2:0 in three planes, uploaded as three single-channel textures.
    Yuv420 {
        /// Luma, `width * height` bytes.
        y: Vec<u8>,
        /// Cb, [`chroma_size`] bytes.
        u: Vec<u8>,
        /// Cr, [`chroma_size`] bytes.
        v: Vec<u8>,
        /// Which conversion matrix applies.
        matrix: ColorMatrix,
        /// True for full-range (0-255) samples, false for limited (16-235).
        full_range: bool,
    },
    /// RGB sources (PNG and JPEG stills, RGB video): 8-bit RGBA, gamma-encoded as the
    /// source is, alpha kept; uploaded as one texture, with no trip through 4:2:0.
    Rgba(Vec<u8>),
}

/// Chroma plane size of a 4:2:0 frame of the given luma size.
pub fn chroma_size(width: u32, height: u32) -> (u32, u32) {
    (width.div_ceil(2), height.div_ceil(2))
}

/// The longest side of any texture Lucid makes (video planes, the output canvas). 8192 is
/// what every desktop GPU supports (wgpu's default limit): larger video is scaled down on
/// decode, and output sizes stay within it.
pub const MAX_TEXTURE_SIDE: u32 = 8192;

/// A side length rounded to an even number (4:2:0 encoders and YUV4MPEG2 need them) within
/// 2..=[`MAX_TEXTURE_SIDE`]. `as` saturates and maps NaN to 0, so the clamp sees any value.
pub fn even_side(v: f64) -> u32 {
    ((v / 2.0).round() as u32)
        .saturating_mul(2)
        .clamp(2, MAX_TEXTURE_SIDE)
}

/// What the producer does when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueuePolicy {
    /// Wait for room: for files, VOD and the test pattern, where nothing may be lost.
    Block,
    /// Live: wait up to `patience` for room (the consumer drains at the presentation rate),
    /// then drop the oldest queued frame, so a stalled consumer cannot make memory grow or
    /// the stream fall behind.
    DropOldest {
        /// How long a full queue is tolerated before frames are dropped.
        patience: Duration,
    },
}

/// Creates the bounded frame queue.
pub fn frame_queue(
    capacity: usize,
    policy: QueuePolicy,
    stop: Arc<AtomicBool>,
) -> (FrameSender, FrameReceiver) {
    let (tx, rx) = bounded(capacity);
    let dropped = Arc::new(AtomicU64::new(0));
    let closed = Arc::new(AtomicBool::new(false));
    (
        FrameSender {
            tx,
            oldest: rx.clone(),
            policy,
            dropped: dropped.clone(),
            stop,
            closed: closed.clone(),
        },
        FrameReceiver {
            rx,
            dropped,
            closed,
        },
    )
}

/// The decode thread's end of the queue.
pub struct FrameSender {
    tx: Sender<VideoFrame>,
    /// A receiver of our own, used only to drop the oldest frame when the queue is full.
    oldest: Receiver<VideoFrame>,
    policy: QueuePolicy,
    dropped: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    /// Set when the render side's end is dropped: `oldest` keeps the channel connected, so
    /// a disconnect alone would never tell the decode thread (and its source) to end.
    closed: Arc<AtomicBool>,
}

/// The render side's end of the queue. Dropping it ends the decode thread at its next
/// frame (a removed layer, a source closed out of the schedule's hours).
pub struct FrameReceiver {
    /// Frames in decode order.
    pub rx: Receiver<VideoFrame>,
    dropped: Arc<AtomicU64>,
    closed: Arc<AtomicBool>,
}

impl Drop for FrameReceiver {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
    }
}

impl FrameReceiver {
    /// Frames the producer dropped because this end did not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl FrameSender {
    /// Queues a frame according to the policy. Returns false once Lucid is stopping, so the
    /// decode thread can end.
    pub fn send(&self, mut frame: VideoFrame) -> bool {
        let wait = match self.policy {
            QueuePolicy::Block => Duration::from_millis(100),
            QueuePolicy::DropOldest { patience } => patience,
        };
        loop {
            if self.stop.load(Ordering::Relaxed) || self.closed.load(Ordering::Relaxed) {
                return false;
            }
            match self.tx.send_timeout(frame, wait) {
                Ok(()) => return true,
                Err(SendTimeoutError::Disconnected(_)) => return false,
                Err(SendTimeoutError::Timeout(back)) => {
                    frame = back;
                    if let QueuePolicy::DropOldest { .. } = self.policy
                        && self.oldest.try_recv().is_ok()
                    {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// Frames dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(index: u64) -> VideoFrame {
        VideoFrame {
            index,
            pts: Duration::ZERO,
            width: 2,
            height: 2,
            picture: Picture::Rgba(vec![0; 16]),
        }
    }

    #[test]
    fn a_dropped_receiver_ends_the_sender_even_though_it_holds_a_receiver_of_its_own() {
        let policy = QueuePolicy::DropOldest {
            patience: Duration::from_millis(5),
        };
        let (tx, rx) = frame_queue(3, policy, Arc::new(AtomicBool::new(false)));
        assert!(tx.send(frame(0)));
        drop(rx);
        assert!(!tx.send(frame(1)), "the decode thread is told to end");
    }

    #[test]
    fn live_queue_drops_oldest_when_consumer_stalls() {
        let stop = Arc::new(AtomicBool::new(false));
        let policy = QueuePolicy::DropOldest {
            patience: Duration::from_millis(5),
        };
        let (tx, rx) = frame_queue(3, policy, stop);
        for i in 0..10 {
            assert!(tx.send(frame(i)));
        }
        assert_eq!(rx.dropped(), 7);
        let kept: Vec<u64> = rx.rx.try_iter().map(|f| f.index).collect();
        assert_eq!(kept, vec![7, 8, 9], "the newest frames survive, in order");
    }

    #[test]
    fn blocking_queue_loses_nothing_and_stops_on_request() {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = frame_queue(2, QueuePolicy::Block, stop.clone());
        let producer =
            std::thread::spawn(move || (0..20).take_while(|i| tx.send(frame(*i))).count());
        let got: Vec<u64> = (0..20).map(|_| rx.rx.recv().unwrap().index).collect();
        assert_eq!(got, (0..20).collect::<Vec<_>>());
        assert_eq!(producer.join().unwrap(), 20);
        assert_eq!(rx.dropped(), 0);

        let (tx, _rx) = frame_queue(1, QueuePolicy::Block, stop.clone());
        assert!(tx.send(frame(0)));
        stop.store(true, Ordering::Relaxed);
        assert!(
            !tx.send(frame(1)),
            "a full queue does not hang a stopping decoder"
        );
    }
}
