//! Client side: build an onion for a path (network spec §6.4, libsession `Builder::build`).

use rayon::prelude::*;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::hop::{self, EncType, HopKey};
use crate::layer;
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

/// From this many layers on, key agreement runs on rayon's pool.
const PARALLEL_MIN_LAYERS: usize = 2;

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

    // Key agreement for every layer is independent of the layers' contents, so the fresh
    // ephemeral keypairs and shared secrets (two scalar multiplications per layer, almost all
    // of the cost) are computed in parallel; only the cheap AEAD wrapping below is sequential.
    // Index 0 is the destination, index i the path's hop i-1.
    let targets: Vec<[u8; 32]> = core::iter::once(dest_x)
        .chain(path.iter().map(|h| h.x25519))
        .collect();
    let agree = |peer: &[u8; 32]| -> Result<([u8; 32], Zeroizing<[u8; 32]>)> {
        let a = hop::random_secret();
        let a_pub = hop::x25519_public(&a);
        Ok((a_pub, hop::x25519(&a, peer)?))
    };
    let agreed: Vec<([u8; 32], Zeroizing<[u8; 32]>)> = if targets.len() >= PARALLEL_MIN_LAYERS {
        targets.par_iter().map(agree).collect::<Result<_>>()?
    } else {
        targets.iter().map(agree).collect::<Result<_>>()?
    };

    // Step 1: the destination's layer.
    let (a0_pub_bytes, s0) = &agreed[0];
    let a0_pub = hex::encode(a0_pub_bytes);
    let dest_key = HopKey::derive(enc, s0, a0_pub_bytes, &dest_x);
    let fallback = (enc == EncType::XChaCha20)
        .then(|| HopKey::derive(EncType::AesGcm, s0, a0_pub_bytes, &dest_x));
    let reply = ReplyKey::new(dest_key.clone(), fallback);

    let (mut blob, mut route) = match (destination, dest_ed) {
        (Destination::Node(_), Some(ed)) => {
            let inner = layer::join(payload, br#"{"headers":""}"#)?;
            let blob = dest_key.encrypt(&inner);
            (
                blob,
                to_json(&RelayRoute {
                    destination: &ed,
                    ephemeral_key: &a0_pub,
                    enc_type: e,
                }),
            )
        }
        (
            Destination::Server {
                host,
                target,
                scheme,
                port,
                ..
            },
            _,
        ) => {
            let blob = dest_key.encrypt(payload);
            let r = ServerRoute {
                host,
                target,
                method: "POST",
                protocol: scheme,
                port: *port,
                ephemeral_key: &a0_pub,
                enc_type: e,
            };
            (blob, to_json(&r))
        }
        (Destination::Node(_), None) => {
            return Err(Error::InvalidInput("destination key missing".into()))
        }
    };

    // Step 2: wrap for each hop, innermost (last hop) first.
    for (i, h) in path.iter().enumerate().rev() {
        let data = layer::join(&blob, &route)?;
        let (ai_pub_bytes, si) = &agreed[i + 1];
        let ai_pub = hex::encode(ai_pub_bytes);
        blob = HopKey::derive(enc, si, ai_pub_bytes, &h.x25519).encrypt(&data);
        route = if i == 0 {
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
        };
    }
    // Step 3: the frame for the guard.
    Ok((layer::join(&blob, &route)?, reply))
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
