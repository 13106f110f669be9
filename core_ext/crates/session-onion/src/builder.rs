//! Client side: build an onion for a path (network spec §6.4, libsession `Builder::build`).

use serde::Serialize;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::hop::{self, EncType, HopKey};
use crate::peel::{check_proxy_target, MAX_ONION_HOPS};
use crate::reply::ReplyKey;

/// One service node of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopNode {
    /// Ed25519 public key, 64 hex digits (how the previous hop names it).
    pub ed25519_hex: String,
    /// X25519 public key (what its layer is encrypted to).
    pub x25519: [u8; 32],
}

/// Where the request goes after the last hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A storage node: the last hop relays to it and it runs the payload as a storage RPC.
    Node(HopNode),
    /// A v4 HTTP server (file server, SOGS, push server) the last hop proxies to.
    Server {
        host: String,
        target: String,
        x25519: [u8; 32],
        scheme: String,
        port: u16,
    },
}

fn check_ed_hex(s: &str) -> Result<String> {
    let k = hop::key32_hex(s, "Ed25519 key must be 64 hex digits")?;
    Ok(hex::encode(k))
}

#[derive(Serialize)]
struct RelayRoute<'a> {
    destination: &'a str,
    ephemeral_key: &'a str,
    enc_type: &'a str,
}

#[derive(Serialize)]
struct ServerRoute<'a> {
    host: &'a str,
    target: &'a str,
    method: &'a str,
    protocol: &'a str,
    port: u16,
    ephemeral_key: &'a str,
    enc_type: &'a str,
}

#[derive(Serialize)]
struct OuterRoute<'a> {
    ephemeral_key: &'a str,
    enc_type: &'a str,
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    // Serializing these plain structs of strings and integers cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

/// Builds the frame to POST to the guard's `/onion_req/v2` and the key that opens the reply.
///
/// `path` holds 1..=15 hops (guard first). Every layer gets a fresh ephemeral X25519 key.
pub fn build(
    path: &[HopNode],
    destination: &Destination,
    payload: &[u8],
    enc: EncType,
) -> Result<(Vec<u8>, ReplyKey)> {
    let enc = enc.require_onion()?;
    if path.is_empty() {
        return Err(Error::EmptyPath);
    }
    if path.len() > MAX_ONION_HOPS {
        return Err(Error::TooManyHops {
            got: path.len(),
            max: MAX_ONION_HOPS,
        });
    }
    let hop_eds = path
        .iter()
        .map(|h| check_ed_hex(&h.ed25519_hex))
        .collect::<Result<Vec<_>>>()?;
    let e = enc.as_str();

    let (dest_x, dest_ed) = match destination {
        Destination::Node(n) => (n.x25519, Some(check_ed_hex(&n.ed25519_hex)?)),
        Destination::Server {
            x25519,
            host,
            target,
            scheme,
            port,
        } => {
            check_proxy_target(scheme, host, target)
                .map_err(|e| Error::InvalidInput(e.to_string()))?;
            if *port == 0 {
                return Err(Error::InvalidInput("server port must be 1..65535".into()));
            }
            (*x25519, None)
        }
    };

    // Key agreement for every layer: a fresh ephemeral keypair and a shared secret (two scalar
    // multiplications per layer, almost all of the build's cost). Done on the calling thread:
    // spreading the layers over rayon's pool made a build faster back to back but, at a
    // client's pace, slower and 30-49 % dearer in CPU (waking the pool, its threads spinning,
    // the caller sleeping and waking); a client's CPU is a phone's battery or a load test's
    // cores (docs/performance.md, "Native core"). Index 0 is the destination, index i the path's
    // hop i-1.
    let targets: Vec<[u8; 32]> = core::iter::once(dest_x)
        .chain(path.iter().map(|h| h.x25519))
        .collect();
    let agree = |peer: &[u8; 32]| -> Result<([u8; 32], Zeroizing<[u8; 32]>)> {
        let a = hop::random_secret();
        let a_pub = hop::x25519_public(&a);
        Ok((a_pub, hop::x25519(&a, peer)?))
    };
    let agreed: Vec<([u8; 32], Zeroizing<[u8; 32]>)> =
        targets.iter().map(agree).collect::<Result<_>>()?;

    // Step 1: the destination's layer.
    let (a0_pub_bytes, s0) = &agreed[0];
    let a0_pub = hex::encode(a0_pub_bytes);
    let dest_key = HopKey::derive(enc, s0, a0_pub_bytes, &dest_x);
    let fallback = (enc == EncType::XChaCha20)
        .then(|| HopKey::derive(EncType::AesGcm, s0, a0_pub_bytes, &dest_x));
    let reply = ReplyKey::new(dest_key.clone(), fallback);

    // Every layer's routing JSON is known once the keys are agreed, so the whole frame's size
    // is too: it is built in one buffer, the payload copied in once and each layer sealed in
    // place around the one inside it (innermost first), so a 10 MB body is never copied again.
    // Layout of one hop's layer: `LE32(n) ‖ nonce ‖ AEAD(inner layer) ‖ tag ‖ routing JSON`.
    let mut routes: Vec<Vec<u8>> = Vec::with_capacity(path.len() + 1);
    // routes[0]: what the last hop reads about the destination; routes[i]: what hop i-1 reads
    // about hop i (and the guard's own outer JSON last).
    routes.push(match (destination, dest_ed.as_deref()) {
        (Destination::Node(_), Some(ed)) => to_json(&RelayRoute {
            destination: ed,
            ephemeral_key: &a0_pub,
            enc_type: e,
        }),
        (
            Destination::Server {
                host,
                target,
                scheme,
                port,
                ..
            },
            _,
        ) => to_json(&ServerRoute {
            host,
            target,
            method: "POST",
            protocol: scheme,
            port: *port,
            ephemeral_key: &a0_pub,
            enc_type: e,
        }),
        (Destination::Node(_), None) => {
            return Err(Error::InvalidInput("destination key missing".into()))
        }
    });
    for i in (0..path.len()).rev() {
        let ai_pub = hex::encode(agreed[i + 1].0);
        routes.push(if i == 0 {
            to_json(&OuterRoute {
                ephemeral_key: &ai_pub,
                enc_type: e,
            })
        } else {
            to_json(&RelayRoute {
                destination: &hop_eds[i],
                ephemeral_key: &ai_pub,
                enc_type: e,
            })
        });
    }
    let nonce = dest_key.nonce_len();
    let tag = hop::TAG_LEN;
    // A storage node's payload is itself a layer: `LE32(len) ‖ payload ‖ {"headers":""}`.
    let node_suffix: &[u8] = if dest_ed.is_some() {
        br#"{"headers":""}"#
    } else {
        b""
    };
    let node_prefix = if dest_ed.is_some() { 4 } else { 0 };
    let mut prefix = nonce + node_prefix; // bytes before the payload
    let mut size = node_prefix + payload.len() + node_suffix.len() + nonce + tag; // dest blob
    let mut blob_sizes = vec![size]; // blob_sizes[k]: the blob inside layer k+1
    for route in &routes[..path.len()] {
        size = 4 + size + route.len() + nonce + tag; // the next hop's blob
        prefix += 4 + nonce;
        blob_sizes.push(size);
    }
    let total = 4 + size + routes[path.len()].len();
    prefix += 4;
    let len32 = |n: usize| -> Result<[u8; 4]> {
        u32::try_from(n)
            .map(u32::to_le_bytes)
            .map_err(|_| Error::InvalidInput(format!("blob of {n} bytes is too large for a layer")))
    };

    let mut buf = vec![0u8; total];
    // The destination's layer.
    let mut start = prefix - nonce - node_prefix; // where the current blob begins
    let mut end = prefix + payload.len() + node_suffix.len() + tag; // and ends
    buf[prefix..prefix + payload.len()].copy_from_slice(payload);
    if node_prefix > 0 {
        buf[prefix - 4..prefix].copy_from_slice(&len32(payload.len())?);
        buf[prefix + payload.len()..end - tag].copy_from_slice(node_suffix);
    }
    dest_key.seal_in_place(&mut buf[start..end])?;
    // Each hop's layer, innermost (last hop) first: length, blob, route; sealed for the hop.
    for (k, i) in (0..path.len()).rev().enumerate() {
        let route = &routes[k];
        buf[start - 4..start].copy_from_slice(&len32(blob_sizes[k])?);
        buf[end..end + route.len()].copy_from_slice(route);
        let (ai_pub_bytes, si) = &agreed[i + 1];
        start -= 4 + nonce;
        end += route.len() + tag;
        HopKey::derive(enc, si, ai_pub_bytes, &path[i].x25519)
            .seal_in_place(&mut buf[start..end])?;
    }
    // The frame for the guard.
    debug_assert_eq!(start, 4);
    buf[..4].copy_from_slice(&len32(blob_sizes[path.len()])?);
    buf[end..].copy_from_slice(&routes[path.len()]);
    Ok((buf, reply))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peel::{Decision, Peeler};

    fn node(seed: u8) -> ([u8; 32], HopNode) {
        let sk = [seed; 32];
        let pk = hop::x25519_public(&sk);
        (
            sk,
            HopNode {
                ed25519_hex: hex::encode([seed ^ 0x55; 32]),
                x25519: pk,
            },
        )
    }

    fn walk(n_hops: usize, enc: EncType) {
        let hops: Vec<_> = (1..=n_hops as u8).map(node).collect();
        let (dsk, dnode) = node(200);
        let path: Vec<_> = hops.iter().map(|(_, n)| n.clone()).collect();
        let (mut frame, reply_key) = build(
            &path,
            &Destination::Node(dnode.clone()),
            b"{\"method\":\"info\"}",
            enc,
        )
        .expect("build");
        let mut expected_next = path
            .iter()
            .skip(1)
            .map(|n| n.ed25519_hex.clone())
            .collect::<Vec<_>>();
        expected_next.push(dnode.ed25519_hex.clone());
        for ((sk, _), next) in hops.iter().zip(expected_next) {
            match Peeler::new(sk).peel(&frame).expect("peel") {
                Decision::Relay {
                    next_ed25519,
                    frame: f,
                    ..
                } => {
                    assert_eq!(next_ed25519, next);
                    frame = f;
                }
                other => panic!("expected relay, got {other:?}"),
            }
        }
        match Peeler::new(&dsk).peel(&frame).expect("peel dest") {
            Decision::Deliver { payload, reply } => {
                assert_eq!(payload, b"{\"method\":\"info\"}");
                let r = reply.encrypt_status(200, b"{\"ok\":1}").expect("reply");
                let pt = reply_key.decrypt(&r).expect("open reply");
                assert_eq!(pt, br#"{"body":"{\"ok\":1}","status":200}"#);
            }
            other => panic!("expected deliver, got {other:?}"),
        }
    }

    #[test]
    fn node_destination_all_lengths() {
        for n in 1..=MAX_ONION_HOPS {
            walk(n, EncType::XChaCha20);
            walk(n, EncType::AesGcm);
        }
    }

    #[test]
    fn server_destination() {
        let hops: Vec<_> = (1..=3u8).map(node).collect();
        let path: Vec<_> = hops.iter().map(|(_, n)| n.clone()).collect();
        let (ssk, snode) = node(99);
        let dest = Destination::Server {
            host: "files.example".into(),
            target: "/oxen/v4/lsrpc".into(),
            x25519: snode.x25519,
            scheme: "http".into(),
            port: 80,
        };
        let (mut frame, key) = build(&path, &dest, b"l3:abce", EncType::XChaCha20).expect("build");
        for (sk, _) in &hops[..2] {
            match Peeler::new(sk).peel(&frame).expect("peel") {
                Decision::Relay { frame: f, .. } => frame = f,
                other => panic!("{other:?}"),
            }
        }
        let Decision::Proxy {
            host,
            port,
            scheme,
            target,
            payload,
            ..
        } = Peeler::new(&hops[2].0).peel(&frame).expect("peel")
        else {
            panic!("expected proxy")
        };
        assert_eq!(
            (host.as_str(), port, scheme.as_str(), target.as_str()),
            ("files.example", 80, "http", "/oxen/v4/lsrpc")
        );
        let (req, cipher) = Peeler::new(&ssk)
            .open_request(&payload)
            .expect("server open");
        assert_eq!(req, b"l3:abce");
        assert_eq!(
            key.decrypt(&cipher.encrypt(b"l2:{}e")).expect("reply"),
            b"l2:{}e"
        );
    }

    #[test]
    fn limits() {
        let (_, n) = node(1);
        let d = Destination::Node(n.clone());
        assert_eq!(
            build(&[], &d, b"x", EncType::AesGcm).err(),
            Some(Error::EmptyPath)
        );
        let long = vec![n.clone(); 16];
        assert!(matches!(
            build(&long, &d, b"x", EncType::AesGcm),
            Err(Error::TooManyHops { .. })
        ));
        assert!(build(std::slice::from_ref(&n), &d, b"x", EncType::AesCbc).is_err());
        let bad = Destination::Server {
            host: "h".into(),
            target: "/x".into(),
            x25519: n.x25519,
            scheme: "https".into(),
            port: 443,
        };
        assert!(build(&[n], &bad, b"x", EncType::AesGcm).is_err());
    }
}
