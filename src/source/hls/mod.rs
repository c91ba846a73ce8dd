//! Lucid's own HLS client: reqwest for HTTP, m3u8-rs for playlists, one network thread per
//! stream that feeds segment bytes to the decode thread through a bounded channel.

mod client;
mod edge;
pub mod playlist;

pub use crate::error::hls::HlsError;
pub use client::{Chunk, HlsSource, HlsStream, RetryPolicy, STOP_POLL, SegmentReader};
pub use edge::LiveEdge;
pub use playlist::Rendition;
