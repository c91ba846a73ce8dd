//! Just enough H.264 Annex B parsing to know where the decoder can start: an access unit
//! with an IDR slice (or SPS, which senders put in front of one) is a keyframe.

use std::time::{Duration, Instant};

/// NAL unit types (ITU-T H.264 table 7-1) that start a decodable picture.
const IDR_SLICE: u8 = 5;
const SPS: u8 = 7;

/// The NAL unit types in an Annex B access unit, in order.
pub fn nal_types(annex_b: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        while i + 3 < annex_b.len() {
            let three = annex_b[i] == 0 && annex_b[i + 1] == 0 && annex_b[i + 2] == 1;
            i += 1;
            if three {
                i += 2;
                return annex_b.get(i).map(|b| b & 0x1f);
            }
        }
        None
    })
}

/// True when decoding can start at this access unit.
pub fn is_keyframe(annex_b: &[u8]) -> bool {
    nal_types(annex_b).any(|t| t == IDR_SLICE || t == SPS)
}

/// Keeps a decoder off broken references: after a loss (and at the start) frames are
/// dropped until a keyframe arrives, and a keyframe is requested, again every `retry`
/// while none comes. The last good picture stays on screen meanwhile.
#[derive(Debug)]
pub struct KeyframeGate {
    waiting: bool,
    last_request: Option<Instant>,
    retry: Duration,
}

/// What to do with one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Decode it.
    Pass,
    /// Drop it; `request` says to send a keyframe request (PLI) now.
    Drop {
        /// Ask the sender for a keyframe.
        request: bool,
    },
}

impl KeyframeGate {
    /// A gate that waits for the first keyframe.
    pub fn new(retry: Duration) -> Self {
        KeyframeGate {
            waiting: true,
            last_request: None,
            retry,
        }
    }

    /// True while frames are being dropped.
    pub fn waiting(&self) -> bool {
        self.waiting
    }

    /// Frames were lost (or dropped on the way to the decoder): wait for a keyframe.
    pub fn lost(&mut self) {
        self.waiting = true;
        self.last_request = None;
    }

    /// Decides about a frame that follows the previous one (`contiguous`) or not.
    pub fn admit(&mut self, contiguous: bool, keyframe: bool, now: Instant) -> Admit {
        if !contiguous {
            self.lost();
        }
        if !self.waiting || keyframe {
            self.waiting = false;
            return Admit::Pass;
        }
        let request = self.last_request.is_none_or(|t| now - t >= self.retry);
        if request {
            self.last_request = Some(now);
        }
        Admit::Drop { request }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_a_loss_only_a_keyframe_reopens_the_gate_and_requests_repeat() {
        let t0 = Instant::now();
        let ms = |v: u64| t0 + Duration::from_millis(v);
        let mut gate = KeyframeGate::new(Duration::from_millis(500));
        // Joining mid-GOP: drop and ask once, then again only after the retry time.
        assert_eq!(
            gate.admit(true, false, ms(0)),
            Admit::Drop { request: true }
        );
        assert_eq!(
            gate.admit(true, false, ms(33)),
            Admit::Drop { request: false }
        );
        assert_eq!(
            gate.admit(true, false, ms(520)),
            Admit::Drop { request: true }
        );
        assert_eq!(gate.admit(true, true, ms(550)), Admit::Pass);
        assert_eq!(gate.admit(true, false, ms(583)), Admit::Pass);
        // A gap: the next delta frame is dropped, whatever follows until a keyframe.
        assert_eq!(
            gate.admit(false, false, ms(616)),
            Admit::Drop { request: true }
        );
        assert!(gate.waiting());
        assert_eq!(
            gate.admit(true, false, ms(650)),
            Admit::Drop { request: false }
        );
        // A keyframe right after a gap is fine as it is.
        assert_eq!(gate.admit(false, true, ms(700)), Admit::Pass);
        assert!(!gate.waiting());
    }

    #[test]
    fn finds_nal_types_after_three_and_four_byte_start_codes() {
        let au = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 9, 0, 0, 0, 1, 0x65, 7, 7,
        ];
        assert_eq!(nal_types(&au).collect::<Vec<_>>(), [7, 8, 5]);
        assert!(is_keyframe(&au));
        assert!(!is_keyframe(&[0, 0, 0, 1, 0x41, 3, 3, 3]));
        assert!(!is_keyframe(&[]));
        assert!(!is_keyframe(&[0, 0, 1]));
    }
}
