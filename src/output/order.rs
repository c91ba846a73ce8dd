//! Readbacks can complete out of order; [`FrameOrder`] puts them back in presentation order.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::frame::RenderedFrame;

/// Readbacks can complete out of order; frames are written strictly by number. A number
/// that never arrives (its readback dropped) is given up once this many later ones wait.
const REORDER_WINDOW: usize = 8;

/// Puts rendered frames back in presentation order: each number is released once, in
/// increasing order; a copy or a frame older than one already released is dropped.
#[derive(Default)]
pub(super) struct FrameOrder {
    waiting: BTreeMap<u64, Arc<RenderedFrame>>,
    next: u64,
}

impl FrameOrder {
    pub(super) fn push(&mut self, frame: Arc<RenderedFrame>) {
        if frame.number >= self.next {
            self.waiting.entry(frame.number).or_insert(frame);
        }
    }

    /// The next frame to write, if it is here, or if `flush` (finishing) or the window is
    /// full (the missing one is given up).
    pub(super) fn pop(&mut self, flush: bool) -> Option<Arc<RenderedFrame>> {
        let (&first, _) = self.waiting.first_key_value()?;
        if first != self.next && !flush && self.waiting.len() < REORDER_WINDOW {
            return None;
        }
        let frame = self.waiting.pop_first()?.1;
        self.next = frame.number + 1;
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn frame(number: u64) -> Arc<RenderedFrame> {
        Arc::new(RenderedFrame {
            number,
            pts: Duration::ZERO,
            pixels: Vec::new(),
        })
    }

    fn drain(order: &mut FrameOrder, flush: bool) -> Vec<u64> {
        std::iter::from_fn(|| order.pop(flush))
            .map(|f| f.number)
            .collect()
    }

    #[test]
    fn frames_come_out_in_order_once_each() {
        let mut order = FrameOrder::default();
        order.push(frame(1));
        assert!(drain(&mut order, false).is_empty(), "0 is still expected");
        order.push(frame(0));
        assert_eq!(drain(&mut order, false), vec![0, 1]);
        // A second readback of an already written frame is not written again.
        order.push(frame(1));
        order.push(frame(2));
        order.push(frame(2));
        assert_eq!(drain(&mut order, false), vec![2]);
    }

    #[test]
    fn a_frame_that_never_arrives_is_given_up() {
        let mut order = FrameOrder::default();
        for n in 1..=REORDER_WINDOW as u64 {
            order.push(frame(n));
        }
        assert_eq!(
            drain(&mut order, false),
            (1..=REORDER_WINDOW as u64).collect::<Vec<_>>()
        );
        order.push(frame(0));
        assert!(
            drain(&mut order, true).is_empty(),
            "too late once later frames went out"
        );
    }
}
