//! Opening an FFmpeg output whose network I/O a flag can cut short.
//!
//! ffmpeg-next opens outputs with no interrupt callback, so a receiver that accepts the TCP
//! connection and then never reads holds a write, or RTMP's handshake, for the whole
//! `rw_timeout` (5 s): a stop would wait that long. [`open`] installs a callback that reads
//! a [`CutFlag`] on the context before its I/O is opened, so every blocking read, write and
//! connect polls it (FFmpeg looks every 100 ms) and returns `AVERROR_EXIT` once it is set.
//! The flag is not the stop flag: a receiver that reads still gets the last frames and the
//! trailer after a stop; the flag is set only when finishing has waited long enough.
//!
//! This is the FFI ffmpeg-next lacks, wrapped in a safe function; the rest of the output
//! threads need no `unsafe`.
#![allow(
    unsafe_code,
    reason = "the FFI that opens an FFmpeg output with an interrupt callback, wrapped in a safe function here"
)]

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ffmpeg_next as ff;
use ffmpeg_next::ffi;
use ffmpeg_next::util::interrupt::{self, InterruptGuard};

/// Set once to cut an output's blocking network I/O short; shared by the output thread's
/// connections (one after another) and whoever finishes the outputs.
#[derive(Debug, Clone, Default)]
pub struct CutFlag(Arc<AtomicBool>);

impl CutFlag {
    /// Cuts every blocking read, write and connect of the outputs opened with this flag.
    pub fn cut(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// True once [`CutFlag::cut`] was called.
    pub fn is_cut(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// An output context and the callback its I/O polls; it derefs to the context. The
/// callback's closure must outlive the context (FFmpeg still polls it while closing the
/// connection), so the context is dropped first.
pub struct Interruptible {
    /// Declared first: fields drop in order, and the context's I/O closes before the guard
    /// frees the callback's closure.
    output: ff::format::context::Output,
    _guard: InterruptGuard,
}

impl std::ops::Deref for Interruptible {
    type Target = ff::format::context::Output;

    fn deref(&self) -> &Self::Target {
        &self.output
    }
}

impl std::ops::DerefMut for Interruptible {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.output
    }
}

/// Opens `target` for writing through `container`, like ffmpeg-next's `output_as_with`, with
/// `cut` as the interrupt callback of the context and of its I/O.
pub fn open(
    target: &Path,
    container: &str,
    options: ff::Dictionary,
    cut: &CutFlag,
) -> Result<Interruptible, ff::Error> {
    let invalid = || ff::Error::Other {
        errno: ff::error::EINVAL,
    };
    let path = CString::new(target.as_os_str().as_bytes()).map_err(|_| invalid())?;
    let format = CString::new(container).map_err(|_| invalid())?;
    let flag = cut.0.clone();
    let callback = interrupt::new(Box::new(move || flag.load(Ordering::Relaxed)));
    let mut ctx: *mut ffi::AVFormatContext = ptr::null_mut();
    // SAFETY: `ctx` is a valid out-pointer; the format and file names are NUL-terminated
    // strings that outlive the call; a null output format asks FFmpeg to find it by name.
    let r = unsafe {
        ffi::avformat_alloc_output_context2(
            &mut ctx,
            ptr::null_mut(),
            format.as_ptr(),
            path.as_ptr(),
        )
    };
    if r < 0 || ctx.is_null() {
        return Err(ff::Error::from(r.min(-1)));
    }
    // SAFETY: `ctx` was just allocated and is ours alone. The callback's opaque pointer
    // stays valid as long as `callback.guard`, which `Interruptible` keeps past the context.
    unsafe { (*ctx).interrupt_callback = callback.interrupt };
    // SAFETY: `disown` hands the dictionary's ownership to us; `own` below takes back what
    // avio_open2 left in it (the options it did not use) and frees it.
    let mut opts = unsafe { options.disown() };
    // SAFETY: `ctx` is valid; its `pb` is null (no I/O opened yet) and receives the new
    // context; the interrupt callback is copied into the URL context by avio_open2.
    let r = unsafe {
        ffi::avio_open2(
            &mut (*ctx).pb,
            path.as_ptr(),
            ffi::AVIO_FLAG_WRITE,
            &(*ctx).interrupt_callback,
            &mut opts,
        )
    };
    // SAFETY: `opts` is the dictionary avio_open2 left (possibly null), owned by no one else.
    drop(unsafe { ff::Dictionary::own(opts) });
    if r < 0 {
        // SAFETY: the context has no open I/O (`pb` is null after a failed avio_open2) and
        // is freed once, here; ffmpeg-next never saw it.
        unsafe { ffi::avformat_free_context(ctx) };
        return Err(ff::Error::from(r));
    }
    Ok(Interruptible {
        // SAFETY: `ctx` is a fully opened output context that nothing else owns; `Output`
        // closes its I/O and frees it on drop.
        output: unsafe { ff::format::context::Output::wrap(ctx) },
        _guard: callback.guard,
    })
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::time::{Duration, Instant};

    use super::*;

    /// A TCP listener that never accepts: the kernel completes the handshake, and RTMP's
    /// client then waits for an answer that never comes.
    #[test]
    fn a_cut_ends_a_connect_that_waits_on_a_silent_receiver() {
        ff::init().unwrap();
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "rtmp://127.0.0.1:{}/live/key",
            silent.local_addr().unwrap().port()
        );
        let cut = CutFlag::default();
        let c = cut.clone();
        let cutter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            c.cut();
        });
        let mut options = ff::Dictionary::new();
        options.set("rw_timeout", "20000000");
        let start = Instant::now();
        let result = open(Path::new(&url), "flv", options, &cut);
        let took = start.elapsed();
        cutter.join().unwrap();
        assert!(
            result.is_err(),
            "a receiver that never answers cannot be opened"
        );
        assert!(
            took < Duration::from_secs(2),
            "the cut ended the wait: {took:?} (rw_timeout is 20 s)"
        );
    }

    #[test]
    fn an_uncut_output_opens_and_writes() {
        ff::init().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ts");
        let target = format!("file:{}", path.display());
        let opened = open(
            Path::new(&target),
            "mpegts",
            ff::Dictionary::new(),
            &CutFlag::default(),
        );
        let opened = opened.expect("a file opens");
        assert_eq!(opened.format().name(), "mpegts");
        drop(opened);
        assert!(path.exists());
    }
}
