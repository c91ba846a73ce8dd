//! Which H.264 encoders open on this machine with the settings Lucid's outputs use, and
//! how fast each encodes: `cargo run --example encoders [WIDTHxHEIGHT] [FRAMES]`.
//!
//! Each of libx264, NVENC and VAAPI is opened as `--encoder` would open it (file rate
//! control, then network rate control at 6 Mbit/s) and fed moving test frames; the output
//! is one line per encoder: opened or why not, frames in and packets out, the time.

use std::time::{Duration, Instant};

use ffmpeg_next as ff;
use lucid::decode::ColorMatrix;
use lucid::output::encode::{EncoderChoice, EncoderSettings, H264Encoder, Picture, RateGoal};

fn main() {
    let mut args = std::env::args().skip(1);
    let (width, height) = args
        .next()
        .and_then(|s| {
            let (w, h) = s.split_once('x')?;
            Some((w.parse().ok()?, h.parse().ok()?))
        })
        .unwrap_or((1920u32, 1080u32));
    let frames: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(120);
    ff::init().expect("ffmpeg");
    let picture = Picture {
        width,
        height,
        frame_rate: 30.0,
        matrix: ColorMatrix::conventional(height),
    };
    for (label, choice) in [
        ("libx264", EncoderChoice::X264),
        ("nvenc", EncoderChoice::Nvenc),
        ("vaapi", EncoderChoice::Vaapi),
    ] {
        for goal in [RateGoal::File, RateGoal::Stream] {
            let settings = EncoderSettings {
                choice,
                ..EncoderSettings::default()
            };
            match H264Encoder::open(&settings, picture, goal, false) {
                Err(e) => println!("{label} {goal:?}: not available: {e}"),
                Ok(mut enc) => {
                    let (packets, bytes, took) = encode(&mut enc, width, height, frames);
                    println!(
                        "{label} {goal:?}: {} encoded {frames} frames {width}x{height} into {packets} packets, {bytes} bytes, in {:.3} s ({:.0} fps)",
                        enc.name,
                        took.as_secs_f64(),
                        f64::from(frames) / took.as_secs_f64()
                    );
                }
            }
        }
    }
}

/// Feeds `frames` moving gradients; returns packets, bytes and the time taken.
fn encode(enc: &mut H264Encoder, width: u32, height: u32, frames: u32) -> (u64, u64, Duration) {
    let mut frame = ff::frame::Video::new(ff::format::Pixel::YUV420P, width, height);
    let (mut packets, mut bytes) = (0u64, 0u64);
    let mut packet = ff::Packet::empty();
    let start = Instant::now();
    for n in 0..frames {
        let stride = frame.stride(0);
        for (y, row) in frame.data_mut(0).chunks_mut(stride).enumerate() {
            for (x, p) in row.iter_mut().enumerate() {
                *p = ((x + y + n as usize * 4) % 220 + 16) as u8;
            }
        }
        frame.set_pts(Some(i64::from(n) * 3000));
        enc.send_frame(&frame).expect("send");
        while enc.encoder.receive_packet(&mut packet).is_ok() {
            packets += 1;
            bytes += packet.size() as u64;
        }
    }
    enc.encoder.send_eof().expect("eof");
    while enc.encoder.receive_packet(&mut packet).is_ok() {
        packets += 1;
        bytes += packet.size() as u64;
    }
    (packets, bytes, start.elapsed())
}
