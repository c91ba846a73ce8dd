//! Hardware decode through FFmpeg's hwdevice API, which ffmpeg-next does not wrap, and the
//! frame upload VAAPI encoding needs. This is the one module of Lucid's default build that
//! may use `unsafe`: it wraps the FFI in a safe API ([`HwDecode::attach`],
//! [`HwDecode::download`], [`VaapiUpload::attach`], [`VaapiUpload::upload`]) so the decode
//! and output threads need none.
//!
//! The device is chosen from what the decoder itself reports (`avcodec_get_hw_config`), in
//! order of preference. The `get_format` callback falls back to a software format when the
//! hardware one is not offered, instead of returning NONE and failing the stream.
#![allow(
    unsafe_code,
    reason = "the FFI to FFmpeg's hwdevice API, wrapped in a safe API here"
)]

use std::ffi::CStr;
use std::ptr;

use ffmpeg_next as ff;
use ffmpeg_next::ffi::{self, AVHWDeviceType, AVPixelFormat};

/// Device types tried first, best first; any other type the decoder offers comes after.
const PREFERRED: [AVHWDeviceType; 4] = [
    AVHWDeviceType::AV_HWDEVICE_TYPE_CUDA,
    AVHWDeviceType::AV_HWDEVICE_TYPE_VAAPI,
    AVHWDeviceType::AV_HWDEVICE_TYPE_QSV,
    AVHWDeviceType::AV_HWDEVICE_TYPE_VDPAU,
];

/// A hardware device attached to a decoder context.
#[derive(Debug, Clone)]
pub struct HwDecode {
    /// FFmpeg's name for the device type (`cuda`, `vaapi`, ...).
    pub device: String,
    /// The pixel format frames arrive in while they are still on the device.
    pix_fmt: AVPixelFormat,
}

impl HwDecode {
    /// Tries each hardware device `codec` supports and attaches the first one that opens
    /// to `ctx`, which must not be opened yet (ffmpeg-next's `Context` is unopened until
    /// `decoder().open_as()` consumes it). Returns why none worked, for the one log line
    /// that says which decoder runs.
    pub fn attach(ctx: &mut ff::codec::Context, codec: ff::Codec) -> Result<HwDecode, String> {
        let mut configs = Vec::new();
        for i in 0.. {
            // SAFETY: `codec` wraps a valid, static AVCodec; FFmpeg returns NULL past the
            // last configuration, and the configurations are static too.
            let cfg = unsafe { ffi::avcodec_get_hw_config(codec.as_ptr(), i) };
            if cfg.is_null() {
                break;
            }
            // SAFETY: non-null, points to a static AVCodecHWConfig (checked just above).
            let cfg = unsafe { &*cfg };
            if cfg.methods & (ffi::AV_CODEC_HW_CONFIG_METHOD_HW_DEVICE_CTX as i32) != 0 {
                configs.push((cfg.device_type, cfg.pix_fmt));
            }
        }
        if configs.is_empty() {
            return Err("the decoder has no hardware configurations".into());
        }
        configs.sort_by_key(|(t, _)| {
            PREFERRED
                .iter()
                .position(|p| p == t)
                .unwrap_or(PREFERRED.len())
        });
        let mut failures = Vec::new();
        for (device_type, pix_fmt) in configs {
            let name = device_name(device_type);
            let mut device: *mut ffi::AVBufferRef = ptr::null_mut();
            // SAFETY: `device` is a valid out-pointer; NULL device name and options ask
            // FFmpeg for the default device of this type.
            let rc = unsafe {
                ffi::av_hwdevice_ctx_create(
                    &mut device,
                    device_type,
                    ptr::null(),
                    ptr::null_mut(),
                    0,
                )
            };
            if rc < 0 {
                failures.push(format!("{name}: {}", ff::Error::from(rc)));
                continue;
            }
            // SAFETY: `ctx` is a valid, unopened context we hold mutably; it takes over our
            // reference to `device` (freed with the context) and keeps the wanted format in
            // `opaque` for `get_format`, which reads nothing else.
            unsafe {
                let raw = ctx.as_mut_ptr();
                (*raw).hw_device_ctx = device;
                (*raw).opaque = pix_fmt as i32 as isize as *mut std::ffi::c_void;
                (*raw).get_format = Some(get_format);
            }
            return Ok(HwDecode {
                device: name,
                pix_fmt,
            });
        }
        Err(failures.join(", "))
    }

    /// True when `frame` still lives on the device (it must be downloaded first).
    pub fn holds(&self, frame: &ff::frame::Video) -> bool {
        frame.format() == ff::format::Pixel::from(self.pix_fmt)
    }

    /// Copies a frame that lives on the device into system memory (usually NV12), with
    /// its timestamps and colour description.
    pub fn download(&self, hw: &ff::frame::Video) -> Result<ff::frame::Video, ff::Error> {
        let mut sw = ff::frame::Video::empty();
        // SAFETY: both frames are valid and owned here; `hw` holds a hardware frame
        // (callers check `holds`), `sw` is empty and receives newly allocated buffers.
        let rc = unsafe { ffi::av_hwframe_transfer_data(sw.as_mut_ptr(), hw.as_ptr(), 0) };
        if rc < 0 {
            return Err(ff::Error::from(rc));
        }
        sw.set_pts(hw.pts());
        // SAFETY: plain field copies between two valid frames we own.
        unsafe {
            (*sw.as_mut_ptr()).best_effort_timestamp = (*hw.as_ptr()).best_effort_timestamp;
        }
        sw.set_color_range(hw.color_range());
        sw.set_color_space(hw.color_space());
        Ok(sw)
    }
}

/// VAAPI encoding: the device and a pool of surfaces the encoder takes its frames in.
/// FFmpeg's `h264_vaapi` only encodes frames that live on the device, so each NV12 frame
/// is copied into a surface first.
pub struct VaapiUpload {
    /// The surfaces' pool (`AVHWFramesContext`), one reference held here.
    frames: *mut ffi::AVBufferRef,
}

// SAFETY: the frames context is reference-counted and FFmpeg's hwcontext functions may be
// called from any thread; the output thread owns this value alone.
unsafe impl Send for VaapiUpload {}

impl VaapiUpload {
    /// Opens the default VAAPI device, makes a pool of NV12 surfaces of this size and
    /// attaches it to `ctx`, an encoder context that is not opened yet, whose pixel format
    /// becomes VAAPI. Returns why not when there is no such device.
    pub fn attach(
        ctx: &mut ff::codec::Context,
        width: u32,
        height: u32,
    ) -> Result<VaapiUpload, String> {
        let mut device: *mut ffi::AVBufferRef = ptr::null_mut();
        // SAFETY: `device` is a valid out-pointer; NULL name and options ask FFmpeg for the
        // default VAAPI device (the first render node).
        let rc = unsafe {
            ffi::av_hwdevice_ctx_create(
                &mut device,
                AVHWDeviceType::AV_HWDEVICE_TYPE_VAAPI,
                ptr::null(),
                ptr::null_mut(),
                0,
            )
        };
        if rc < 0 {
            return Err(format!("no VAAPI device ({})", ff::Error::from(rc)));
        }
        // SAFETY: `device` is a valid device reference; the frames context takes its own
        // reference, so ours is released right after.
        let frames = unsafe { ffi::av_hwframe_ctx_alloc(device) };
        // SAFETY: `device` came from av_hwdevice_ctx_create and is released once, here.
        unsafe { ffi::av_buffer_unref(&mut device) };
        if frames.is_null() {
            return Err("VAAPI: no memory for a frames context".into());
        }
        let upload = VaapiUpload { frames };
        // SAFETY: `frames` is a freshly allocated, not yet initialised AVHWFramesContext
        // (its buffer's data); setting its fields before av_hwframe_ctx_init is the API.
        let rc = unsafe {
            let fc = (*upload.frames).data as *mut ffi::AVHWFramesContext;
            (*fc).format = AVPixelFormat::AV_PIX_FMT_VAAPI;
            (*fc).sw_format = AVPixelFormat::AV_PIX_FMT_NV12;
            (*fc).width = width as i32;
            (*fc).height = height as i32;
            (*fc).initial_pool_size = 16;
            ffi::av_hwframe_ctx_init(upload.frames)
        };
        if rc < 0 {
            return Err(format!("VAAPI surfaces: {}", ff::Error::from(rc)));
        }
        // SAFETY: `ctx` is a valid, unopened context held mutably; it takes a new reference
        // to the frames context (freed with the context).
        unsafe {
            let raw = ctx.as_mut_ptr();
            (*raw).hw_frames_ctx = ffi::av_buffer_ref(upload.frames);
            (*raw).pix_fmt = AVPixelFormat::AV_PIX_FMT_VAAPI;
            if (*raw).hw_frames_ctx.is_null() {
                return Err("VAAPI: no memory for a reference".into());
            }
        }
        Ok(upload)
    }

    /// Copies an NV12 frame into a new surface from the pool, with its timestamp.
    pub fn upload(&self, nv12: &ff::frame::Video) -> Result<ff::frame::Video, ff::Error> {
        let mut hw = ff::frame::Video::empty();
        // SAFETY: `frames` is an initialised frames context; `hw` is an empty frame we own
        // that receives a surface from the pool.
        let rc = unsafe { ffi::av_hwframe_get_buffer(self.frames, hw.as_mut_ptr(), 0) };
        if rc < 0 {
            return Err(ff::Error::from(rc));
        }
        // SAFETY: both frames are valid and owned; `nv12` is a software NV12 frame of the
        // pool's size (the caller converts into it), `hw` a surface of the same size.
        let rc = unsafe { ffi::av_hwframe_transfer_data(hw.as_mut_ptr(), nv12.as_ptr(), 0) };
        if rc < 0 {
            return Err(ff::Error::from(rc));
        }
        hw.set_pts(nv12.pts());
        Ok(hw)
    }
}

impl Drop for VaapiUpload {
    fn drop(&mut self) {
        // SAFETY: our one reference, released once.
        unsafe { ffi::av_buffer_unref(&mut self.frames) };
    }
}

fn device_name(t: AVHWDeviceType) -> String {
    // SAFETY: returns a static string or NULL for unknown types.
    let p = unsafe { ffi::av_hwdevice_get_type_name(t) };
    if p.is_null() {
        return format!("{t:?}");
    }
    // SAFETY: non-null, NUL-terminated static string from FFmpeg.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Picks the hardware format when FFmpeg offers it, else the first software format, so a
/// stream the device cannot decode still plays.
///
/// # Safety
/// Called by FFmpeg with a valid context (whose `opaque` was set by `attach`) and a list
/// of formats ending in `AV_PIX_FMT_NONE`.
unsafe extern "C" fn get_format(
    ctx: *mut ffi::AVCodecContext,
    formats: *const AVPixelFormat,
) -> AVPixelFormat {
    // SAFETY: FFmpeg passes the context this callback was installed on.
    let wanted = unsafe { (*ctx).opaque } as isize as i32;
    let mut fallback = AVPixelFormat::AV_PIX_FMT_NONE;
    let mut p = formats;
    // SAFETY: the list is terminated by AV_PIX_FMT_NONE, so every read before it is in
    // bounds; `av_pix_fmt_desc_get` returns a static descriptor or NULL.
    unsafe {
        while *p != AVPixelFormat::AV_PIX_FMT_NONE {
            if *p as i32 == wanted {
                return *p;
            }
            let desc = ffi::av_pix_fmt_desc_get(*p);
            if fallback == AVPixelFormat::AV_PIX_FMT_NONE
                && !desc.is_null()
                && (*desc).flags & (ffi::AV_PIX_FMT_FLAG_HWACCEL as u64) == 0
            {
                fallback = *p;
            }
            p = p.add(1);
        }
    }
    fallback
}
