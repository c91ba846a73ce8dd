//! `--output ndi://NAME` (cargo feature `ndi`): the show as an NDI source other VJ software
//! (Resolume, TouchDesigner, OBS) finds on the network. The NDI runtime (`libndi.so.6`) is
//! loaded when the output opens, so a build needs no SDK; without the runtime the output
//! fails with a sentence saying where to get it.
//!
//! FFI to NDI's C API lives here alone (the crate otherwise denies unsafe code): the
//! runtime's function table comes from `NDIlib_v5_load`, with the struct layouts of the
//! `ndi-sdk` crate's bindings.

use std::ffi::CString;
use std::path::PathBuf;

use libloading::Library;
use ndi_sdk::sys;

use super::{OutputError, readback_rows};
use crate::error::Result;

/// The runtime's file name on Linux.
const LIBRARY: &str = "libndi.so.6";

/// Where to get the runtime, for the error.
const HOW_TO: &str = "install the NDI runtime (NDI Tools or the NDI SDK, https://ndi.video) \
    or point NDI_RUNTIME_DIR_V6 at the folder holding it";

/// The places the runtime is looked for: `NDI_RUNTIME_DIR_V6`, the usual library folders,
/// then the system loader's own search (LD_LIBRARY_PATH, ld.so.cache).
fn candidates() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(dir) = std::env::var_os("NDI_RUNTIME_DIR_V6") {
        paths.push(PathBuf::from(dir).join(LIBRARY));
    }
    paths.push(PathBuf::from("/usr/local/lib").join(LIBRARY));
    paths.push(PathBuf::from("/usr/lib").join(LIBRARY));
    paths.push(PathBuf::from(LIBRARY));
    paths
}

/// The loaded runtime and its function table.
struct Runtime {
    api: &'static sys::NDIlib_v5,
    // Kept loaded for as long as `api` is used; dropped last.
    _library: Library,
}

fn load(shown: &str) -> Result<Runtime> {
    let fail = |what: String| OutputError::plain(shown, what);
    let mut last_error = String::from("not found");
    for path in candidates() {
        // SAFETY: loading a shared library runs its initialisers; libndi's are the NDI
        // runtime's own, which is what this output exists to run.
        let library = match unsafe { Library::new(&path) } {
            Ok(library) => library,
            Err(e) => {
                last_error = e.to_string();
                continue;
            }
        };
        // SAFETY: `NDIlib_v5_load` is declared in Processing.NDI.DynamicLoad.h with this
        // signature: no arguments, a pointer to the static function table.
        let load: libloading::Symbol<unsafe extern "C" fn() -> *const sys::NDIlib_v5> =
            unsafe { library.get(b"NDIlib_v5_load\0") }
                .map_err(|e| fail(format!("{} has no NDIlib_v5_load ({e})", path.display())))?;
        // SAFETY: the function takes nothing and returns a table that lives as long as the
        // library, which `Runtime` keeps loaded.
        let table = unsafe { load() };
        // SAFETY: a non-null pointer from NDIlib_v5_load points to the runtime's static
        // table; it is only read, and the library outlives every use (see `Runtime`).
        let api = unsafe { table.as_ref() }
            .ok_or_else(|| fail("the NDI runtime refused to load (NDIlib_v5_load)".into()))?;
        let initialize = api
            .initialize
            .ok_or_else(|| fail("the NDI runtime has no initialize".into()))?;
        // SAFETY: NDIlib_initialize takes nothing; it returns false on CPUs NDI does not
        // support.
        if !unsafe { initialize() } {
            return Err(fail("the NDI runtime does not support this CPU".into()).into());
        }
        return Ok(Runtime {
            api,
            _library: library,
        });
    }
    Err(fail(format!(
        "the NDI runtime ({LIBRARY}) was not found ({last_error}); {HOW_TO}"
    ))
    .into())
}

/// Checks before anything starts that the runtime loads.
pub fn check_runtime(name: &str) -> Result<()> {
    load(&format!("ndi://{name}")).map(|_| ())
}

/// An NDI sender.
pub struct NdiOutput {
    shown: String,
    runtime: Runtime,
    instance: sys::NDIlib_send_instance_t,
    width: u32,
    height: u32,
    frame_rate: (i32, i32),
}

// SAFETY: an NDI send instance may be used from any thread, one at a time; the output
// thread owns it alone.
unsafe impl Send for NdiOutput {}

impl NdiOutput {
    /// Loads the runtime and announces the source `name` on the network.
    pub fn open(name: &str, width: u32, height: u32, frame_rate: f64) -> Result<NdiOutput> {
        let shown = format!("ndi://{name}");
        let runtime = load(&shown)?;
        let fail = |what: &str| OutputError::plain(&shown, what);
        let c_name = CString::new(name).map_err(|_| fail("the name has a NUL byte"))?;
        let settings = sys::NDIlib_send_create_t {
            p_ndi_name: c_name.as_ptr(),
            p_groups: std::ptr::null(),
            // Lucid paces the frames itself (one per presented video frame).
            clock_video: false,
            clock_audio: false,
        };
        let create = runtime
            .api
            .send_create
            .ok_or_else(|| fail("the NDI runtime has no send_create"))?;
        // SAFETY: `settings` and the name it points to are valid for the call; NDI copies
        // the name.
        let instance = unsafe { create(&settings) };
        if instance.is_null() {
            return Err(fail("the NDI runtime could not create a sender").into());
        }
        let rate = if frame_rate.is_finite() && frame_rate >= 1.0 {
            frame_rate
        } else {
            30.0
        };
        Ok(NdiOutput {
            shown,
            runtime,
            instance,
            width,
            height,
            frame_rate: ((rate * 1000.0).round() as i32, 1000),
        })
    }

    /// Sends one RGBA frame as read back (rows padded to 256 bytes).
    pub fn write(&mut self, padded: &[u8]) -> Result<u64> {
        let row = self.width as usize * 4;
        let stride = row.div_ceil(256) * 256;
        if readback_rows(padded, row).count() < self.height as usize
            || padded.len() < stride * (self.height as usize - 1) + row
        {
            return Err(
                OutputError::plain(&self.shown, "a read-back frame had the wrong size").into(),
            );
        }
        let send = self.runtime.api.send_send_video_v2.ok_or_else(|| {
            OutputError::plain(&self.shown, "the NDI runtime has no send_video_v2")
        })?;
        let frame = sys::NDIlib_video_frame_v2_t {
            xres: self.width as i32,
            yres: self.height as i32,
            FourCC: sys::NDIlib_FourCC_video_type_e::NDIlib_FourCC_video_type_RGBA,
            frame_rate_N: self.frame_rate.0,
            frame_rate_D: self.frame_rate.1,
            picture_aspect_ratio: self.width as f32 / self.height as f32,
            frame_format_type:
                sys::NDIlib_frame_format_type_e::NDIlib_frame_format_type_progressive,
            // Let NDI stamp it.
            timecode: i64::MAX,
            // NDI only reads the frame; the padded rows are described by the stride.
            p_data: padded.as_ptr().cast_mut(),
            __bindgen_anon_1: sys::NDIlib_video_frame_v2_t__bindgen_ty_1 {
                line_stride_in_bytes: stride as i32,
            },
            p_metadata: std::ptr::null(),
            timestamp: 0,
        };
        // SAFETY: the synchronous send returns once NDI is done with the frame, so the
        // borrowed pixels (checked above to hold every row) outlive its use.
        unsafe { send(self.instance, &frame) };
        Ok(padded.len() as u64)
    }
}

impl Drop for NdiOutput {
    fn drop(&mut self) {
        if let Some(destroy) = self.runtime.api.send_destroy {
            // SAFETY: the instance came from send_create and is destroyed once, here.
            unsafe { destroy(self.instance) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_the_runtime_the_output_says_where_to_get_it() {
        let found = candidates().iter().any(|p| p.is_absolute() && p.exists());
        match NdiOutput::open("Lucid test", 64, 48, 30.0) {
            Ok(_) => assert!(found || std::env::var_os("LD_LIBRARY_PATH").is_some()),
            Err(e) => {
                let text = e.to_string();
                assert!(text.contains("cannot write ndi://Lucid test"), "{text}");
                assert!(
                    text.contains(LIBRARY) && text.contains("NDI_RUNTIME_DIR_V6"),
                    "{text}"
                );
            }
        }
    }
}
