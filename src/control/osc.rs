//! OSC (`--osc PORT`, UDP, the `rosc` crate): Lucid's address space, parsed into
//! [`ControlAction`]s, the listener thread, and `--osc-feedback` (changed values sent
//! back to a controller app such as TouchOSC).
//!
//! Floats 0..1 map onto each parameter's range, as in Resolume; an address ending in
//! `/raw` takes the value in the parameter's own units. Ints count as floats; a switch
//! takes a bool, an int or a float (>= 0.5 is on) and no argument flips it.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use rosc::{OscMessage, OscPacket, OscType};
use tracing::{info, warn};

use super::{Amount, ControlAction, EffectRef, Switch};
use crate::error::{LucidError, Result};
use crate::lifecycle::Lifecycle;

/// Lucid's OSC addresses and what each takes, for `--list-osc` and the README.
pub const ADDRESSES: &[(&str, &str)] = &[
    (
        "/lucid/effect/<index|name>/<param>",
        "float(s) 0..1 over the parameter's range (colours: 3-4 floats, points: 2)",
    ),
    (
        "/lucid/effect/<index|name>/<param>/raw",
        "the value in the parameter's own units",
    ),
    (
        "/lucid/effect/<index|name>/mix",
        "float 0..1: how much of the effect is mixed in",
    ),
    (
        "/lucid/effect/<index|name>/enabled",
        "bool, int or float (>= 0.5 on); no argument flips it",
    ),
    ("/lucid/master/blackout", "switch: cut to black and back"),
    (
        "/lucid/master/fade",
        "switch: fade to black (on) or in (off) over --fade",
    ),
    (
        "/lucid/master/level",
        "float 0..1: the output level directly",
    ),
    ("/lucid/freeze", "switch: hold the current picture"),
    ("/lucid/tempo/tap", "a tap of the tempo (any arguments)"),
    ("/lucid/tempo/bpm", "float: beats per minute, 20..300"),
    (
        "/lucid/daydream/prompt",
        "string: Daydream's new prompt (with --daydream-stream/--daydream-create)",
    ),
    ("/lucid/cue/next", "the next cue of --cues"),
    ("/lucid/cue/previous", "the previous cue"),
    ("/lucid/cue/<n>", "cue n of --cues, from 1"),
    (
        "/lucid/crossfade",
        "float 0 (bus A) .. 1 (bus B): the crossfader, at once",
    ),
    (
        "/lucid/crossfade/go",
        "crossfade to the other side over --crossfade seconds",
    ),
    (
        "/lucid/layer/<n>/opacity",
        "float 0..1: --layer n's opacity (from 1, bottom first)",
    ),
    (
        "/lucid/layer/<n>/effect/<i|name>/<param>[/raw]",
        "as /lucid/effect/..., on layer n's own chain (also /mix, /enabled)",
    ),
];

/// Why a message was not understood.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OscRejection {
    /// Not one of Lucid's addresses.
    #[error("unknown address (--list-osc lists them)")]
    UnknownAddress,
    /// The arguments do not fit the address.
    #[error("wrong arguments: {0}")]
    WrongType(String),
}

/// The text `--list-osc` prints.
pub fn listing() -> String {
    let width = ADDRESSES.iter().map(|(a, _)| a.len()).max().unwrap_or(0);
    let mut out = String::from(
        "OSC addresses (UDP, --osc PORT; floats 0..1 map onto each parameter's range):\n",
    );
    for (address, what) in ADDRESSES {
        out += &format!("  {address:width$}  {what}\n");
    }
    out
}

fn floats(args: &[OscType]) -> std::result::Result<Vec<f32>, OscRejection> {
    args.iter()
        .map(|a| match a {
            OscType::Float(f) => Ok(*f),
            OscType::Double(d) => Ok(*d as f32),
            OscType::Int(i) => Ok(*i as f32),
            OscType::Long(l) => Ok(*l as f32),
            OscType::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
            other => Err(OscRejection::WrongType(format!(
                "numbers expected, got {other:?}"
            ))),
        })
        .collect()
}

fn switch(args: &[OscType]) -> std::result::Result<Switch, OscRejection> {
    match floats(args)?.as_slice() {
        [] => Ok(Switch::Toggle),
        [v] if *v >= 0.5 => Ok(Switch::On),
        [_] => Ok(Switch::Off),
        _ => Err(OscRejection::WrongType("one value expected".into())),
    }
}

fn one_float(args: &[OscType]) -> std::result::Result<f32, OscRejection> {
    match floats(args)?.as_slice() {
        [v] if v.is_finite() => Ok(*v),
        _ => Err(OscRejection::WrongType("one number expected".into())),
    }
}

/// Parses one message of Lucid's address space.
pub fn parse(message: &OscMessage) -> std::result::Result<ControlAction, OscRejection> {
    let parts: Vec<&str> = message.addr.trim_start_matches('/').split('/').collect();
    let args = &message.args;
    let action = match parts.as_slice() {
        ["lucid", "layer", n, "effect", rest @ ..] => match n.parse::<usize>() {
            Ok(layer) if layer >= 1 => {
                let inner = OscMessage {
                    addr: format!("/lucid/effect/{}", rest.join("/")),
                    args: args.clone(),
                };
                ControlAction::LayerEffect {
                    layer,
                    action: Box::new(parse(&inner)?),
                }
            }
            _ => return Err(OscRejection::UnknownAddress),
        },
        ["lucid", "effect", effect, rest @ ..] if !rest.is_empty() => {
            let effect = match effect.parse::<usize>() {
                Ok(i) => EffectRef::Index(i),
                Err(_) => EffectRef::Name(effect.to_string()),
            };
            match rest {
                ["enabled"] => ControlAction::EffectEnabled {
                    effect,
                    on: switch(args)?,
                },
                [param] => ControlAction::EffectParam {
                    effect,
                    param: param.to_string(),
                    amount: Amount::Normalized(nonempty(floats(args)?)?),
                },
                [param, "raw"] => ControlAction::EffectParam {
                    effect,
                    param: param.to_string(),
                    amount: Amount::Raw(nonempty(floats(args)?)?),
                },
                _ => return Err(OscRejection::UnknownAddress),
            }
        }
        ["lucid", "master", "blackout"] => ControlAction::Blackout(switch(args)?),
        ["lucid", "master", "fade"] => ControlAction::Fade(switch(args)?),
        ["lucid", "master", "level"] => ControlAction::Level(one_float(args)?.clamp(0.0, 1.0)),
        ["lucid", "freeze"] => ControlAction::Freeze(switch(args)?),
        ["lucid", "tempo", "tap"] => ControlAction::Tap,
        ["lucid", "tempo", "bpm"] => {
            let bpm = f64::from(one_float(args)?);
            if !crate::effects::tempo::BPM_RANGE.contains(&bpm) {
                return Err(OscRejection::WrongType(format!("{bpm} bpm: use 20..300")));
            }
            ControlAction::Bpm(bpm)
        }
        ["lucid", "daydream", "prompt"] => match args.as_slice() {
            [OscType::String(s)] if !s.trim().is_empty() => ControlAction::Prompt(s.clone()),
            _ => {
                return Err(OscRejection::WrongType(
                    "one non-empty string expected".into(),
                ));
            }
        },
        ["lucid", "cue", "next"] => ControlAction::CueNext,
        ["lucid", "cue", "previous"] => ControlAction::CuePrevious,
        ["lucid", "cue", n] => match n.parse::<usize>() {
            Ok(cue) if cue >= 1 => ControlAction::CueGo(cue),
            _ => return Err(OscRejection::UnknownAddress),
        },
        ["lucid", "crossfade"] => ControlAction::Crossfade(one_float(args)?.clamp(0.0, 1.0)),
        ["lucid", "crossfade", "go"] => ControlAction::CrossfadeGo,
        ["lucid", "layer", n, "opacity"] => match n.parse::<usize>() {
            Ok(layer) if layer >= 1 => ControlAction::LayerOpacity {
                layer,
                opacity: one_float(args)?.clamp(0.0, 1.0),
            },
            _ => return Err(OscRejection::UnknownAddress),
        },
        _ => return Err(OscRejection::UnknownAddress),
    };
    Ok(action)
}

fn nonempty(v: Vec<f32>) -> std::result::Result<Vec<f32>, OscRejection> {
    if v.is_empty() {
        Err(OscRejection::WrongType("a value expected".into()))
    } else {
        Ok(v)
    }
}

/// Every message in a packet, bundles opened (their time tags are not waited for: a live
/// show applies what comes as it comes).
pub fn messages(packet: OscPacket, out: &mut Vec<OscMessage>) {
    match packet {
        OscPacket::Message(m) => out.push(m),
        OscPacket::Bundle(b) => b.content.into_iter().for_each(|p| messages(p, out)),
    }
}

/// Where `--osc` listens and whom it hears (`--osc-allow`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OscListen {
    /// The address bound: 127.0.0.1 unless the user names another.
    pub bind: SocketAddr,
    /// Senders taken; empty: everyone who can reach `bind`.
    pub allow: Vec<ipnet::IpNet>,
}

impl OscListen {
    /// `--osc PORT` (127.0.0.1) or `--osc ADDR:PORT`, and `--osc-allow CIDR...` (a bare
    /// address is a network of one).
    pub fn parse(osc: &str, allow: &[String]) -> std::result::Result<OscListen, String> {
        let osc = osc.trim();
        let bind = match osc.parse::<u16>() {
            Ok(port) => SocketAddr::from(([127, 0, 0, 1], port)),
            Err(_) => osc.parse::<SocketAddr>().map_err(|_| {
                format!("--osc {osc}: use PORT (on 127.0.0.1) or ADDR:PORT, e.g. 0.0.0.0:9000")
            })?,
        };
        let allow = allow
            .iter()
            .map(|a| {
                let a = a.trim();
                a.parse::<ipnet::IpNet>()
                    .or_else(|_| a.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        format!("--osc-allow {a}: use a network (192.168.1.0/24) or an address")
                    })
            })
            .collect::<std::result::Result<_, _>>()?;
        Ok(OscListen { bind, allow })
    }

    /// Whether a packet from `from` is heard.
    pub fn allows(&self, from: &SocketAddr) -> bool {
        let ip = match from.ip() {
            std::net::IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
            v4 => v4,
        };
        self.allow.is_empty() || self.allow.iter().any(|net| net.contains(&ip))
    }
}

/// The OSC listener's messages, and what it dropped on the way.
#[derive(Clone)]
pub struct OscInput {
    /// Messages, in order (bounded: a flood beyond it is dropped and counted).
    pub messages: Receiver<OscMessage>,
    denied: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
}

impl OscInput {
    /// Packets dropped because their sender is outside `--osc-allow`.
    pub fn denied(&self) -> u64 {
        self.denied.load(Ordering::Relaxed)
    }

    /// Messages dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Messages queued for the frame loop: a second of 1000 messages, whatever a controller
/// sends, so a flood never holds a frame up.
const OSC_QUEUE: usize = 1024;

/// Binds `listen.bind` (127.0.0.1 by default: on a venue's network anyone could drive the
/// show; `--osc 0.0.0.0:PORT` opens it on purpose) and starts the listener.
pub fn listen(listen: &OscListen, lifecycle: &Lifecycle) -> Result<OscInput> {
    let at = listen.bind;
    let socket = UdpSocket::bind(at).map_err(|e| {
        LucidError::Usage(format!(
            "--osc {at}: cannot listen on UDP port {}: {e}",
            at.port()
        ))
    })?;
    // Short timeouts so the thread sees a stop.
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| LucidError::Usage(format!("--osc {at}: {e}")))?;
    let only = if listen.allow.is_empty() {
        String::new()
    } else {
        let nets: Vec<String> = listen.allow.iter().map(ToString::to_string).collect();
        format!(", from {} only", nets.join(", "))
    };
    info!("OSC: listening on UDP {at}{only}");
    let (tx, rx) = bounded(OSC_QUEUE);
    let input = OscInput {
        messages: rx,
        denied: Arc::default(),
        dropped: Arc::default(),
    };
    let (l, listen, counters) = (lifecycle.clone(), listen.clone(), input.clone());
    lifecycle.spawn("lucid-osc", move || {
        receive(&socket, &tx, &listen, &counters, &l);
    });
    Ok(input)
}

fn receive(
    socket: &UdpSocket,
    tx: &Sender<OscMessage>,
    listen: &OscListen,
    counters: &OscInput,
    lifecycle: &Lifecycle,
) {
    let mut buf = vec![0u8; rosc::decoder::MTU];
    let mut bad_packets = 0u64;
    while !lifecycle.stopping() {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => {
                warn!("OSC: {e}; no more OSC will be read");
                return;
            }
        };
        if !listen.allows(&from) {
            if counters.denied.fetch_add(1, Ordering::Relaxed) == 0 {
                warn!("OSC: a packet from {from}, outside --osc-allow, dropped (counted from now)");
            }
            continue;
        }
        match rosc::decoder::decode_udp(&buf[..n]) {
            Ok((_, packet)) => {
                let mut all = Vec::new();
                messages(packet, &mut all);
                for m in all {
                    match tx.try_send(m) {
                        Ok(()) => {}
                        // The frame loop applies them every frame; a flood beyond the
                        // queue is dropped and counted, never waited for.
                        Err(TrySendError::Full(_)) => {
                            counters.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(TrySendError::Disconnected(_)) => return,
                    }
                }
            }
            Err(e) => {
                bad_packets += 1;
                if bad_packets == 1 {
                    warn!("OSC: a packet from {from} is not OSC ({e:?}); ignoring such packets");
                }
            }
        }
    }
}

/// `--osc-feedback HOST:PORT`: a thread sending values to a controller app.
#[derive(Clone)]
pub struct Feedback(Sender<OscMessage>);

impl Feedback {
    /// Starts the sender.
    pub fn start(to: SocketAddr, lifecycle: &Lifecycle) -> Result<Feedback> {
        let bind: SocketAddr = if to.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(bind)
            .map_err(|e| LucidError::Usage(format!("--osc-feedback {to}: {e}")))?;
        let (tx, rx) = bounded::<OscMessage>(1024);
        lifecycle.spawn("lucid-osc-feedback", move || {
            let mut failed = false;
            for message in rx {
                let Ok(bytes) = rosc::encoder::encode(&OscPacket::Message(message)) else {
                    continue;
                };
                if let Err(e) = socket.send_to(&bytes, to)
                    && !failed
                {
                    failed = true;
                    warn!("--osc-feedback {to}: {e}");
                }
            }
        });
        Ok(Feedback(tx))
    }

    /// Queues a value; a full queue drops it (the next change sends again).
    pub fn send(&self, address: String, values: &[f32]) {
        let args = values.iter().map(|v| OscType::Float(*v)).collect();
        let _ = self.0.try_send(OscMessage {
            addr: address,
            args,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osc_listens_on_loopback_unless_told_and_hears_only_the_allowed() {
        let local = OscListen::parse("9000", &[]).unwrap();
        assert_eq!(local.bind, "127.0.0.1:9000".parse().unwrap());
        assert!(
            local.allows(&"10.1.2.3:5000".parse().unwrap()),
            "no list: all"
        );
        let open = OscListen::parse(
            "0.0.0.0:9000",
            &["192.168.1.0/24".into(), "10.0.0.7".into()],
        )
        .unwrap();
        assert_eq!(open.bind, "0.0.0.0:9000".parse().unwrap());
        assert!(open.allows(&"192.168.1.200:1".parse().unwrap()));
        assert!(open.allows(&"10.0.0.7:1".parse().unwrap()));
        assert!(!open.allows(&"10.0.0.8:1".parse().unwrap()));
        assert!(!open.allows(&"192.168.2.1:1".parse().unwrap()));
        // An IPv4 sender seen through an IPv6 socket.
        assert!(open.allows(&"[::ffff:192.168.1.9]:1".parse().unwrap()));
        let six = OscListen::parse("[::]:9000", &["fd00::/8".into()]).unwrap();
        assert!(six.allows(&"[fd12::1]:1".parse().unwrap()));
        assert!(!six.allows(&"[fe80::1]:1".parse().unwrap()));
        for (osc, allow, needle) in [
            ("nine", "", "--osc nine"),
            ("1.2.3.4", "", "--osc 1.2.3.4"),
            ("9000", "192.168.1.0/33", "--osc-allow 192.168.1.0/33"),
            ("9000", "lan", "--osc-allow lan"),
        ] {
            let allow: Vec<String> = (!allow.is_empty())
                .then(|| allow.into())
                .into_iter()
                .collect();
            let e = OscListen::parse(osc, &allow).unwrap_err();
            assert!(e.starts_with(needle), "{e}");
        }
    }

    fn msg(addr: &str, args: Vec<OscType>) -> OscMessage {
        OscMessage {
            addr: addr.into(),
            args,
        }
    }

    #[test]
    fn the_address_space_parses_into_actions() {
        assert_eq!(
            parse(&msg("/lucid/effect/tint/amount", vec![OscType::Float(0.5)])),
            Ok(ControlAction::EffectParam {
                effect: EffectRef::Name("tint".into()),
                param: "amount".into(),
                amount: Amount::Normalized(vec![0.5]),
            })
        );
        assert_eq!(
            parse(&msg("/lucid/effect/0/hue/raw", vec![OscType::Int(30)])),
            Ok(ControlAction::EffectParam {
                effect: EffectRef::Index(0),
                param: "hue".into(),
                amount: Amount::Raw(vec![30.0]),
            })
        );
        assert_eq!(
            parse(&msg("/lucid/effect/blur/enabled", vec![])),
            Ok(ControlAction::EffectEnabled {
                effect: EffectRef::Name("blur".into()),
                on: Switch::Toggle,
            })
        );
        assert_eq!(
            parse(&msg("/lucid/master/blackout", vec![OscType::Bool(true)])),
            Ok(ControlAction::Blackout(Switch::On))
        );
        assert_eq!(
            parse(&msg("/lucid/freeze", vec![OscType::Float(0.0)])),
            Ok(ControlAction::Freeze(Switch::Off))
        );
        assert_eq!(
            parse(&msg(
                "/lucid/daydream/prompt",
                vec![OscType::String("a neon forest".into())]
            )),
            Ok(ControlAction::Prompt("a neon forest".into()))
        );
        assert_eq!(
            parse(&msg("/lucid/cue/next", vec![])),
            Ok(ControlAction::CueNext)
        );
        assert_eq!(
            parse(&msg("/lucid/cue/3", vec![])),
            Ok(ControlAction::CueGo(3))
        );
        assert_eq!(
            parse(&msg("/lucid/cue/0", vec![])),
            Err(OscRejection::UnknownAddress)
        );
        assert_eq!(
            parse(&msg("/lucid/tempo/bpm", vec![OscType::Double(128.0)])),
            Ok(ControlAction::Bpm(128.0))
        );
    }

    #[test]
    fn unknown_addresses_and_wrong_types_are_rejected() {
        assert_eq!(
            parse(&msg("/lucid/nope", vec![])),
            Err(OscRejection::UnknownAddress)
        );
        assert_eq!(
            parse(&msg("/other/app", vec![])),
            Err(OscRejection::UnknownAddress)
        );
        assert_eq!(
            parse(&msg("/lucid/crossfade", vec![OscType::Float(0.5)])),
            Ok(ControlAction::Crossfade(0.5))
        );
        assert_eq!(
            parse(&msg("/lucid/layer/2/opacity", vec![OscType::Float(0.25)])),
            Ok(ControlAction::LayerOpacity {
                layer: 2,
                opacity: 0.25
            })
        );
        assert_eq!(
            parse(&msg(
                "/lucid/layer/2/effect/tint/amount/raw",
                vec![OscType::Float(0.25)]
            )),
            Ok(ControlAction::LayerEffect {
                layer: 2,
                action: Box::new(ControlAction::EffectParam {
                    effect: EffectRef::Name("tint".into()),
                    param: "amount".into(),
                    amount: Amount::Raw(vec![0.25]),
                }),
            })
        );
        assert_eq!(
            parse(&msg("/lucid/layer/1/effect/0/enabled", vec![])),
            Ok(ControlAction::LayerEffect {
                layer: 1,
                action: Box::new(ControlAction::EffectEnabled {
                    effect: EffectRef::Index(0),
                    on: Switch::Toggle,
                }),
            })
        );
        assert_eq!(
            parse(&msg("/lucid/layer/1/effect", vec![])),
            Err(OscRejection::UnknownAddress)
        );
        assert_eq!(
            parse(&msg("/lucid/layer/0/opacity", vec![OscType::Float(0.25)])),
            Err(OscRejection::UnknownAddress),
            "layers count from 1 (the --url video is not a --layer)"
        );
        assert!(matches!(
            parse(&msg(
                "/lucid/effect/tint/amount",
                vec![OscType::String("loud".into())]
            )),
            Err(OscRejection::WrongType(_))
        ));
        assert!(matches!(
            parse(&msg("/lucid/effect/tint/amount", vec![])),
            Err(OscRejection::WrongType(_))
        ));
        assert!(matches!(
            parse(&msg("/lucid/tempo/bpm", vec![OscType::Float(1000.0)])),
            Err(OscRejection::WrongType(_))
        ));
        assert!(matches!(
            parse(&msg("/lucid/daydream/prompt", vec![OscType::Int(3)])),
            Err(OscRejection::WrongType(_))
        ));
    }

    #[test]
    fn bundles_are_opened() {
        let packet = OscPacket::Bundle(rosc::OscBundle {
            timetag: rosc::OscTime {
                seconds: 0,
                fractional: 1,
            },
            content: vec![
                OscPacket::Message(msg("/a", vec![])),
                OscPacket::Bundle(rosc::OscBundle {
                    timetag: rosc::OscTime {
                        seconds: 0,
                        fractional: 1,
                    },
                    content: vec![OscPacket::Message(msg("/b", vec![]))],
                }),
            ],
        });
        let mut out = Vec::new();
        messages(packet, &mut out);
        let addrs: Vec<&str> = out.iter().map(|m| m.addr.as_str()).collect();
        assert_eq!(addrs, ["/a", "/b"]);
        assert!(listing().contains("/lucid/effect/<index|name>/<param>/raw"));
    }
}
