//! Hardware decode through FFmpeg's hwdevice API, which ffmpeg-next does not wrap.
//!
//! The device is chosen from what the decoder itself reports (`avcodec_get_hw_config`), in
//! order of preference. The `get_format` callback falls back to a software format when the
//! hardware one is not offered, instead of returning NONE and failing the stream.

use std::ffi::CStr;
use std::ptr;

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
    pub pix_fmt: AVPixelFormat,
}

/// Tries each hardware device the codec supports and attaches the first one that opens.
/// Returns why none worked, for the one log line that says which decoder runs.
///
/// # Safety
/// `ctx` must be a valid, not yet opened decoder context for `codec`.
pub unsafe fn attach(
    ctx: *mut ffi::AVCodecContext,
    codec: *const ffi::AVCodec,
) -> Result<HwDecode, String> {
    let mut configs = Vec::new();
    for i in 0.. {
        let cfg = unsafe { ffi::avcodec_get_hw_config(codec, i) };
        if cfg.is_null() {
            break;
        }
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
        let rc = unsafe {
            ffi::av_hwdevice_ctx_create(&mut device, device_type, ptr::null(), ptr::null_mut(), 0)
        };
        if rc < 0 {
            failures.push(format!("{name}: {}", ffmpeg_next::Error::from(rc)));
            continue;
        }
        unsafe {
            (*ctx).hw_device_ctx = device; // the context now owns our reference
            (*ctx).opaque = pix_fmt as i32 as isize as *mut std::ffi::c_void;
            (*ctx).get_format = Some(get_format);
        }
        return Ok(HwDecode {
            device: name,
            pix_fmt,
        });
    }
    Err(failures.join(", "))
}

fn device_name(t: AVHWDeviceType) -> String {
    let p = unsafe { ffi::av_hwdevice_get_type_name(t) };
    if p.is_null() {
        return format!("{t:?}");
    }
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Picks the hardware format when FFmpeg offers it, else the first software format, so a
/// stream the device cannot decode still plays.
unsafe extern "C" fn get_format(
    ctx: *mut ffi::AVCodecContext,
    formats: *const AVPixelFormat,
) -> AVPixelFormat {
    let wanted = unsafe { (*ctx).opaque } as isize as i32;
    let mut fallback = AVPixelFormat::AV_PIX_FMT_NONE;
    let mut p = formats;
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

/// Copies a frame that lives on the device into system memory (usually NV12).
///
/// # Safety
/// Both pointers must be valid frames; `hw` must hold a hardware frame.
pub unsafe fn download(
    hw: *const ffi::AVFrame,
    sw: *mut ffi::AVFrame,
) -> Result<(), ffmpeg_next::Error> {
    let rc = unsafe { ffi::av_hwframe_transfer_data(sw, hw, 0) };
    if rc < 0 {
        return Err(ffmpeg_next::Error::from(rc));
    }
    unsafe {
        (*sw).pts = (*hw).pts;
        (*sw).best_effort_timestamp = (*hw).best_effort_timestamp;
        (*sw).color_range = (*hw).color_range;
        (*sw).colorspace = (*hw).colorspace;
    }
    Ok(())
}
