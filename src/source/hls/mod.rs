//! Lucid's own HLS client: reqwest for HTTP, m3u8-rs for playlists, one network thread per
//! stream that feeds segment bytes to the decode thread through a bounded channel.

mod client;
pub mod error;
pub mod playlist;

pub use client::{Chunk, HlsSource, HlsStream, LiveEdge, RetryPolicy, STOP_POLL, SegmentReader};
pub use error::HlsError;
pub use playlist::Rendition;
