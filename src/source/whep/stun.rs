//! Just enough STUN (RFC 8489) to learn this machine's public address from a STUN server:
//! a Binding request and the (XOR-)MAPPED-ADDRESS of its answer. str0m does ICE itself but
//! gathers no server-reflexive candidates; this adds them, from `--ice-server stun:...`
//! and from the host a Livepeer endpoint redirected to (its players do the same).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

/// RFC 8489's magic cookie.
const MAGIC: u32 = 0x2112_A442;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const MAPPED_ADDRESS: u16 = 0x0001;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;
/// The port STUN servers listen on unless the URL says another.
pub const DEFAULT_PORT: u16 = 3478;

/// A `stun:host[:port]` server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StunServer {
    /// Host name or address.
    pub host: String,
    /// UDP port.
    pub port: u16,
}

impl std::str::FromStr for StunServer {
    type Err = String;

    /// Parses `stun:host[:port]` (RFC 7064). `Err` says why, for the usage error.
    fn from_str(url: &str) -> Result<StunServer, String> {
        let url = url.trim();
        let (scheme, rest) = url
            .split_once(':')
            .ok_or_else(|| "not a stun: URL".to_string())?;
        match scheme.to_ascii_lowercase().as_str() {
            "stun" => {}
            "stuns" | "turn" | "turns" => {
                return Err(
                    "only stun: servers are supported (no TURN relays or STUN over TLS yet)".into(),
                );
            }
            _ => return Err("not a stun: URL".into()),
        }
        let rest = rest.split('?').next().unwrap_or_default();
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => match p.parse::<u16>() {
                Ok(port) if port > 0 => (h, port),
                _ => return Err(format!("bad port {p:?}")),
            },
            _ => (rest, DEFAULT_PORT),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains('/') {
            return Err("no host".into());
        }
        Ok(StunServer {
            host: host.to_string(),
            port,
        })
    }
}

/// A Binding request with this transaction id.
pub fn binding_request(transaction: [u8; 12]) -> [u8; 20] {
    let mut m = [0u8; 20];
    m[0..2].copy_from_slice(&BINDING_REQUEST.to_be_bytes());
    // Length 0: no attributes.
    m[4..8].copy_from_slice(&MAGIC.to_be_bytes());
    m[8..20].copy_from_slice(&transaction);
    m
}

/// The mapped address in a Binding success answer to `transaction`; `None` for anything
/// else (another message, a truncated or malformed one).
pub fn mapped_address(message: &[u8], transaction: [u8; 12]) -> Option<SocketAddr> {
    let header = message.get(..20)?;
    if u16::from_be_bytes([header[0], header[1]]) != BINDING_SUCCESS
        || header[4..8] != MAGIC.to_be_bytes()
        || header[8..20] != transaction
    {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut attrs = message.get(20..20 + length)?;
    let mut plain = None;
    while attrs.len() >= 4 {
        let kind = u16::from_be_bytes([attrs[0], attrs[1]]);
        let len = usize::from(u16::from_be_bytes([attrs[2], attrs[3]]));
        let value = attrs.get(4..4 + len)?;
        match kind {
            XOR_MAPPED_ADDRESS => return address(value, Some(transaction)),
            MAPPED_ADDRESS => plain = address(value, None),
            _ => {}
        }
        // Attributes are padded to four bytes.
        attrs = attrs.get(4 + len.div_ceil(4) * 4..).unwrap_or_default();
    }
    plain
}

/// Reads an address attribute; `xor` with the transaction id for XOR-MAPPED-ADDRESS.
fn address(value: &[u8], xor: Option<[u8; 12]>) -> Option<SocketAddr> {
    let family = *value.get(1)?;
    let mut port = u16::from_be_bytes([*value.get(2)?, *value.get(3)?]);
    let mut key = [0u8; 16];
    key[..4].copy_from_slice(&MAGIC.to_be_bytes());
    if let Some(t) = xor {
        key[4..].copy_from_slice(&t);
        port ^= (MAGIC >> 16) as u16;
    }
    let mask = |bytes: &[u8]| -> Vec<u8> {
        bytes
            .iter()
            .zip(key.iter())
            .map(|(b, k)| if xor.is_some() { b ^ k } else { *b })
            .collect()
    };
    let ip = match family {
        0x01 => {
            let b = mask(value.get(4..8)?);
            IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        }
        0x02 => {
            let b: [u8; 16] = mask(value.get(4..20)?).try_into().ok()?;
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Asks each server (in turn, within `budget` in all) what address `socket` has from
/// outside. Returns the distinct answers; servers that do not answer are skipped.
pub fn reflexive_addresses(
    socket: &UdpSocket,
    servers: &[StunServer],
    budget: Duration,
) -> Vec<SocketAddr> {
    let deadline = Instant::now() + budget;
    let mut found = Vec::new();
    let mut buf = [0u8; 1500];
    for server in servers {
        let Some(target) = (server.host.as_str(), server.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.find(|a| a.is_ipv4() == socket_is_ipv4(socket)))
        else {
            tracing::debug!("STUN server {} does not resolve", server.host);
            continue;
        };
        let transaction: [u8; 12] = std::array::from_fn(|_| rand_byte());
        if socket
            .send_to(&binding_request(transaction), target)
            .is_err()
        {
            continue;
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || socket.set_read_timeout(Some(left)).is_err() {
                return found;
            }
            match socket.recv_from(&mut buf) {
                Ok((n, from)) if from == target => {
                    if let Some(addr) = mapped_address(&buf[..n], transaction) {
                        if !found.contains(&addr) {
                            found.push(addr);
                        }
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    found
}

fn socket_is_ipv4(socket: &UdpSocket) -> bool {
    socket.local_addr().map(|a| a.is_ipv4()).unwrap_or(true)
}

/// A random byte for transaction ids (uniqueness, not secrecy: RFC 8489 asks for
/// unpredictability against off-path forgery, which the std hasher's keys give).
fn rand_byte() -> u8 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish() as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stun_urls_and_refuses_turn() {
        assert_eq!(
            "stun:stun.l.google.com:19302"
                .parse::<StunServer>()
                .unwrap(),
            StunServer {
                host: "stun.l.google.com".into(),
                port: 19302
            }
        );
        assert_eq!("stun:example.org".parse::<StunServer>().unwrap().port, 3478);
        assert_eq!("stun:[::1]:5000".parse::<StunServer>().unwrap().host, "::1");
        assert!(
            "turn:example.org"
                .parse::<StunServer>()
                .unwrap_err()
                .contains("TURN")
        );
        assert!("http://example.org".parse::<StunServer>().is_err());
        assert!("stun:".parse::<StunServer>().is_err());
        assert!("stun:h:0".parse::<StunServer>().is_err());
    }

    /// RFC 5769 section 2.2: the sample IPv4 Binding response (XOR-MAPPED-ADDRESS
    /// 192.0.2.1:32853), its SOFTWARE, MESSAGE-INTEGRITY and FINGERPRINT attributes skipped.
    #[test]
    fn reads_the_rfc_5769_sample_response() {
        let hex = "0101003c2112a442b7e7a701bc34d686fa87dfae\
                   8022000b7465737420766563746f7220\
                   002000080001a147e112a643\
                   00080014 2b91f599fd9e90c38c7489f92af9ba53f06be7d7\
                   80280004c07d4c96";
        let bytes: Vec<u8> = hex
            .split_whitespace()
            .collect::<String>()
            .as_bytes()
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect();
        let transaction: [u8; 12] = bytes[8..20].try_into().unwrap();
        assert_eq!(
            mapped_address(&bytes, transaction),
            Some("192.0.2.1:32853".parse().unwrap())
        );
        assert_eq!(mapped_address(&bytes, [0; 12]), None, "another transaction");
        assert_eq!(mapped_address(&bytes[..30], transaction), None, "truncated");
        let request = binding_request(transaction);
        assert_eq!(&request[..8], &[0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42]);
    }
}
