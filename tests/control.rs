//! Remote control (issue 11): OSC packets sent by the test over 127.0.0.1 change an effect
//! parameter, visible in the piped output from then on; unknown addresses and wrong types
//! are counted and ignored; changed values come back on `--osc-feedback`.

mod support;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use rosc::{OscMessage, OscPacket, OscType};
use support::*;

fn send(socket: &UdpSocket, port: u16, addr: &str, args: Vec<OscType>) {
    let packet = OscPacket::Message(OscMessage {
        addr: addr.into(),
        args,
    });
    let bytes = rosc::encoder::encode(&packet).unwrap();
    socket.send_to(&bytes, ("127.0.0.1", port)).unwrap();
}

/// Waits for Lucid to end (it must succeed) and reads what it piped.
fn finish(
    child: &mut std::process::Child,
    out: std::thread::JoinHandle<Vec<u8>>,
    err: std::thread::JoinHandle<String>,
) -> (Y4m, String) {
    let status = wait_with_limit(child, Duration::from_secs(90));
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(status.success(), "{err}");
    (Y4m::parse(&out), err)
}

/// The local addresses UDP sockets on `port` are bound to, from the kernel's own table.
fn udp_listeners(port: u16) -> Vec<String> {
    let table = std::fs::read_to_string("/proc/net/udp").unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let local = line.split_whitespace().nth(1)?;
            let (ip, p) = local.split_once(':')?;
            (u16::from_str_radix(p, 16).ok()? == port).then(|| {
                let ip = u32::from_str_radix(ip, 16).unwrap();
                std::net::Ipv4Addr::from(ip.swap_bytes()).to_string()
            })
        })
        .collect()
}

/// Eight seconds of mid grey, 4:2:0 (lossless YUV4MPEG2).
fn gray_clip(dir: &std::path::Path) -> std::path::PathBuf {
    lavfi_file(
        &dir.join("gray.y4m"),
        "color=c=0x808080:s=320x180:r=30:d=8",
        &["-pix_fmt", "yuv420p"],
    )
}

#[test]
fn osc_changes_an_effect_in_the_output_and_feeds_the_value_back() {
    let dir = tempfile::tempdir().unwrap();
    let input = gray_clip(dir.path());
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let feedback = UdpSocket::bind("127.0.0.1:0").unwrap();
    feedback
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let stats = dir.path().join("stats.jsonl");
    let mut cmd = lucid();
    cmd.args(["--no-preview", "--pipe", "y4m", "--url"])
        .arg(&input)
        .args(["--effect", "tint:color=#ff0000,amount=0"])
        .args(["--osc", &port.to_string()])
        .arg("--osc-feedback")
        .arg(feedback.local_addr().unwrap().to_string())
        .arg("--stats-json")
        .arg(&stats);
    let (mut child, out, err) = spawn_piped(&mut cmd);
    // Once frames flow, a controller moves the tint's amount to the top of its range;
    // nonsense around it is ignored.
    wait_for_presented(&stats, 30);
    // A bare port is 127.0.0.1's: nobody else on a venue's network can reach it.
    assert_eq!(udp_listeners(port), ["127.0.0.1"], "what --osc PORT binds");
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    send(&socket, port, "/lucid/nope", vec![OscType::Float(1.0)]);
    send(&socket, port, "/lucid/nope", vec![OscType::Float(1.0)]);
    send(
        &socket,
        port,
        "/lucid/effect/tint/amount",
        vec![OscType::String("loud".into())],
    );
    send(
        &socket,
        port,
        "/lucid/effect/tint/amount",
        vec![OscType::Float(1.0)],
    );
    // The value comes back, by the effect's place in the chain.
    let mut fed_back = None;
    let mut buf = [0u8; 1536];
    let until = Instant::now() + Duration::from_secs(10);
    while fed_back.is_none() && Instant::now() < until {
        if let Ok(n) = feedback.recv(&mut buf) {
            let (_, packet) = rosc::decoder::decode_udp(&buf[..n]).unwrap();
            if let OscPacket::Message(m) = packet
                && m.addr == "/lucid/effect/0/amount"
                && m.args == vec![OscType::Float(1.0)]
            {
                fed_back = Some(m);
            }
        }
    }
    assert!(fed_back.is_some(), "no feedback of the new amount");
    // Four taps 0.4 s apart: 150 bpm, the tempo the effects' beat then runs at.
    for _ in 0..4 {
        send(&socket, port, "/lucid/tempo/tap", vec![]);
        std::thread::sleep(Duration::from_millis(400));
    }
    let (y4m, err) = finish(&mut child, out, err);
    let cr = |f: &[u8]| y4m.centre_chroma(f).1;
    let reds: Vec<bool> = y4m.frames.iter().map(|f| cr(f) > 150).collect();
    assert!(!reds[0], "starts untinted (Cr {})", cr(&y4m.frames[0]));
    assert!(*reds.last().unwrap(), "ends tinted");
    let first_red = reds.iter().position(|r| *r).unwrap();
    assert!(first_red >= 30, "changed before the message was sent");
    assert!(
        reds[first_red..].iter().all(|r| *r),
        "once changed, every later frame shows it"
    );
    let s = last_stats(&stats);
    assert_eq!(s["control"]["osc_received"], 8, "{s}");
    assert_eq!(s["control"]["osc_applied"], 5, "{s}");
    // Taps land on frame times (33 ms apart here): within a few bpm.
    let bpm = s["bpm"].as_f64().unwrap();
    assert!((bpm - 150.0).abs() < 8.0, "tapped 150 bpm, got {bpm}");
    assert_eq!(s["control"]["osc_rejected"], 3, "{s}");
    assert_eq!(
        err.matches("/lucid/nope").count(),
        1,
        "an unknown address is logged once:\n{err}"
    );
}

#[test]
fn osc_moves_a_layers_own_effect() {
    let dir = tempfile::tempdir().unwrap();
    let input = gray_clip(dir.path());
    let white = lavfi_file(
        &dir.path().join("white.png"),
        "color=c=white:s=320x180,format=rgba",
        &["-frames:v", "1"],
    );
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stats = dir.path().join("stats.jsonl");
    let mut cmd = lucid();
    cmd.args(["--no-preview", "--pipe", "y4m", "--url"])
        .arg(&input)
        .arg("--layer")
        .arg(&white)
        .args(["--layer-effect", "1:tint:color=#0000ff,amount=0"])
        .args(["--osc", &port.to_string()])
        .arg("--stats-json")
        .arg(&stats);
    let (mut child, out, err) = spawn_piped(&mut cmd);
    wait_for_presented(&stats, 30);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    // No layer 9: rejected. Then the white layer's own tint goes to full.
    send(
        &socket,
        port,
        "/lucid/layer/9/effect/0/mix",
        vec![OscType::Float(0.5)],
    );
    send(
        &socket,
        port,
        "/lucid/layer/1/effect/tint/amount",
        vec![OscType::Float(1.0)],
    );
    let (y4m, err) = finish(&mut child, out, err);
    let cb = |f: &[u8]| y4m.centre_chroma(f).0;
    let blue: Vec<bool> = y4m.frames.iter().map(|f| cb(f) > 200).collect();
    assert!(!blue[0], "starts white (Cb {})", cb(&y4m.frames[0]));
    let first = blue.iter().position(|b| *b).expect("the layer turns blue");
    assert!(first >= 30, "changed before the message was sent");
    assert!(blue[first..].iter().all(|b| *b), "and stays blue");
    let s = last_stats(&stats);
    assert_eq!(s["control"]["osc_applied"], 1, "{s}");
    assert_eq!(s["control"]["osc_rejected"], 1, "{s}");
    assert!(err.contains("no layer 9"), "{err}");
}

#[test]
fn osc_from_outside_osc_allow_is_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let input = gray_clip(dir.path());
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stats = dir.path().join("stats.jsonl");
    let mut cmd = lucid();
    cmd.args(["--no-preview", "--pipe", "y4m", "--url"])
        .arg(&input)
        .args(["--effect", "tint:color=#ff0000,amount=0"])
        .args(["--osc", &format!("127.0.0.1:{port}")])
        .args(["--osc-allow", "10.0.0.0/8", "--osc-allow", "192.168.7.7"])
        .arg("--stats-json")
        .arg(&stats);
    let (mut child, out, err) = spawn_piped(&mut cmd);
    wait_for_presented(&stats, 30);
    // 127.0.0.1 is not in the list: none of these may act.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..5 {
        send(
            &socket,
            port,
            "/lucid/effect/tint/amount",
            vec![OscType::Float(1.0)],
        );
    }
    let (y4m, err) = finish(&mut child, out, err);
    assert!(
        y4m.frames.iter().all(|f| y4m.centre_chroma(f).1 < 150),
        "a denied sender changed the picture"
    );
    let s = last_stats(&stats);
    assert_eq!(s["control"]["osc_denied"], 5, "{s}");
    assert_eq!(s["control"]["osc_received"], 0, "{s}");
    assert_eq!(err.matches("outside --osc-allow").count(), 1, "{err}");
}

#[test]
fn osc_addresses_are_listed_and_bad_osc_options_are_clear_errors() {
    let out = run_with_limit(lucid().arg("--list-osc"), Duration::from_secs(30));
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for address in [
        "/lucid/effect/<index|name>/<param>",
        "/lucid/layer/<n>/effect/<i|name>/<param>[/raw]",
        "/lucid/master/blackout",
        "/lucid/freeze",
        "/lucid/daydream/prompt",
        "/lucid/cue/next",
    ] {
        assert!(text.contains(address), "{address} missing:\n{text}");
    }
    let taken = UdpSocket::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    for (args, needle) in [
        (vec!["--osc", port.as_str()], "cannot listen on UDP port"),
        (vec!["--osc-feedback", "127.0.0.1:9000"], "add --osc PORT"),
        (
            vec!["--osc-allow", "10.0.0.0/8"],
            "--osc-allow says whom OSC hears",
        ),
        (
            vec!["--osc", "9000", "--osc-allow", "lan"],
            "--osc-allow lan",
        ),
        (vec!["--osc", "example.org"], "--osc example.org"),
        (
            vec!["--osc", "0", "--osc-feedback", "nowhere"],
            "--osc-feedback nowhere",
        ),
    ] {
        let out = run_with_limit(
            lucid().arg("--no-preview").args(&args),
            Duration::from_secs(30),
        );
        assert_one_clear_error(&out, 2, needle);
    }
}

/// MIDI through a real ALSA virtual port: a CC mapped in the preset moves the tint's
/// amount. Needs the ALSA sequencer (/dev/snd/seq); without one, Lucid must say so clearly.
#[test]
fn a_midi_cc_mapped_in_a_preset_moves_an_effect() {
    if !std::path::Path::new("/dev/snd/seq").exists() {
        println!("skipped the ALSA virtual port part: no /dev/snd/seq on this machine");
        let out = run_with_limit(
            lucid().args(["--no-preview", "--midi", "0"]),
            Duration::from_secs(30),
        );
        assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
        let err = stderr_of(&out);
        let line = err.lines().find(|l| l.starts_with("error: ")).unwrap();
        assert!(line.contains("MIDI is not available here"), "{line}");
        assert!(line.contains("/dev/snd/seq"), "{line}");
        return;
    }
    use midir::os::unix::VirtualOutput;
    let dir = tempfile::tempdir().unwrap();
    let input = gray_clip(dir.path());
    let preset = dir.path().join("midi.ron");
    std::fs::write(
        &preset,
        r#"(effects: [(effect: "tint", params: {"color": (1.0, 0.0, 0.0, 1.0), "amount": 0.0})],
            midi: [(control: Cc(channel: 0, cc: 21), target: Param(effect: 0, param: "amount", from: 0.0, to: 1.0, curve: Linear))])"#,
    )
    .unwrap();
    let port = midir::MidiOutput::new("lucid-test")
        .unwrap()
        .create_virtual("lucid-test-knobs")
        .unwrap();
    let mut port = port;
    let stats = dir.path().join("stats.jsonl");
    let mut cmd = lucid();
    cmd.args(["--no-preview", "--pipe", "y4m", "--url"])
        .arg(&input)
        .arg("--preset")
        .arg(&preset)
        .args(["--midi", "lucid-test-knobs"])
        .arg("--stats-json")
        .arg(&stats);
    let (mut child, out, err) = spawn_piped(&mut cmd);
    wait_for_presented(&stats, 30);
    port.send(&[0xB0, 21, 127]).unwrap();
    let (y4m, _) = finish(&mut child, out, err);
    let cr = |f: &[u8]| y4m.centre_chroma(f).1;
    assert!(cr(&y4m.frames[0]) < 140, "starts untinted");
    assert!(cr(y4m.frames.last().unwrap()) > 150, "the knob tinted it");
    let s = last_stats(&stats);
    assert_eq!(s["control"]["midi_applied"], 1, "{s}");
}

#[test]
fn an_isf_event_set_over_osc_is_a_one_frame_pulse() {
    let dir = tempfile::tempdir().unwrap();
    let input = gray_clip(dir.path());
    std::fs::write(
        dir.path().join("Flash.fs"),
        r#"/*{
    "ISFVSN": "2",
    "INPUTS": [
        { "NAME": "inputImage", "TYPE": "image" },
        { "NAME": "flash", "TYPE": "event" }
    ]
}*/
void main() {
    gl_FragColor = flash ? vec4(1.0) : IMG_THIS_PIXEL(inputImage);
}
"#,
    )
    .unwrap();
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stats = dir.path().join("stats.jsonl");
    let mut cmd = lucid();
    cmd.args(["--no-preview", "--pipe", "y4m", "--duration", "5", "--url"])
        .arg(&input)
        .arg("--effects-dir")
        .arg(dir.path())
        .args(["--effect", "Flash", "--osc", &port.to_string()])
        .arg("--stats-json")
        .arg(&stats);
    let (mut child, out, err) = spawn_piped(&mut cmd);
    wait_for_presented(&stats, 30);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    send(
        &socket,
        port,
        "/lucid/effect/Flash/flash",
        vec![OscType::Int(1)],
    );
    std::thread::sleep(Duration::from_millis(1000));
    send(
        &socket,
        port,
        "/lucid/effect/0/flash",
        vec![OscType::Int(1)],
    );
    let (y4m, err) = finish(&mut child, out, err);
    let luma =
        |f: &[u8]| f[y4m.width as usize * (y4m.height as usize / 2) + y4m.width as usize / 2];
    let white: Vec<usize> = y4m
        .frames
        .iter()
        .enumerate()
        .filter(|(_, f)| luma(f) > 200)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        white.len(),
        2,
        "two pulses, one frame each: frames {white:?}\n{err}"
    );
    assert!(white[0] >= 30 && white[1] > white[0] + 10, "{white:?}");
}
