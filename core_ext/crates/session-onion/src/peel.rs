//! Node side: peel one layer of an onion request into a typed decision (network spec §6.2, §6.5,
//! §11.9–11.10; oxenss `rpc/onion_processing.cpp`).
//!
//! A *frame* is what a node receives, either from the client at `/onion_req/v2` or from the
//! previous hop: `LE32(n) ‖ blob ‖ {"ephemeral_key": hex, "enc_type": …, "hop_no": int}`.
//! Between our nodes the same layout is used (the storage server's OMQ bt-dict carries exactly
//! these fields), so a [`Decision::Relay`] frame can be fed to the next node's peeler unchanged.

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::hop::{self, EncType, HopKey};
use crate::layer;
use crate::reply::ReplyCipher;

/// Largest `hop_no` a node accepts (oxenss `MAX_ONION_HOPS`).
pub const MAX_ONION_HOPS: usize = 15;

/// What to do with a peeled layer.
#[derive(Debug, Clone)]
pub enum Decision {
    /// This node is the destination: run `payload` as a storage RPC and answer through `reply`.
    Deliver {
        payload: Vec<u8>,
        reply: ReplyCipher,
    },
    /// Forward `frame` unchanged to the node with Ed25519 key `next_ed25519` (lowercase hex).
    Relay {
        next_ed25519: String,
        frame: Vec<u8>,
        hop_no: usize,
    },
    /// POST `payload` (the whole decrypted layer) to `scheme://host[:port]target`; the server's
    /// reply goes back unchanged. `reply` encrypts this node's own error answers.
    Proxy {
        host: String,
        port: u16,
        scheme: String,
        target: String,
        payload: Vec<u8>,
        reply: ReplyCipher,
    },
}

/// A peel failure. When the layer was decrypted before the failure, the node answers encrypted
/// (oxenss "Invalid json" / "Invalid url"), so the reply cipher is handed back too.
#[derive(Debug, Clone)]
pub struct PeelError {
    pub error: Error,
    pub reply: Option<ReplyCipher>,
}

impl From<Error> for PeelError {
    fn from(error: Error) -> Self {
        PeelError { error, reply: None }
    }
}

impl core::fmt::Display for PeelError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.error.fmt(f)
    }
}

/// Whether a proxy target is allowed (oxenss `is_onion_url_target_allowed`): starts with
/// `/loki/` or `/oxen/`, ends with `/lsrpc`, contains no `?`.
pub fn url_target_allowed(target: &str) -> bool {
    (target.starts_with("/loki/") || target.starts_with("/oxen/"))
        && target.ends_with("/lsrpc")
        && !target.contains('?')
}

/// Whether a proxy host is a plain DNS name / IPv4 address or a bracketed IPv6 address, so that
/// `scheme://host[:port]target` cannot be steered elsewhere (stricter than oxenss, which does
/// not check the host).
pub fn host_allowed(host: &str) -> bool {
    if host.is_empty() || host.len() > 253 {
        return false;
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return !inner.is_empty()
            && inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    }
    host.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
}

/// Checks a proxy destination exactly as a node does before proxying.
pub fn check_proxy_target(scheme: &str, host: &str, target: &str) -> Result<()> {
    if scheme != "http" && scheme != "https" {
        return Err(Error::ForbiddenDestination(format!(
            "protocol {:?} is not http or https",
            hop::truncate(scheme, 20)
        )));
    }
    if !host_allowed(host) {
        return Err(Error::ForbiddenDestination(format!(
            "host {:?} is not a plain host name",
            hop::truncate(host, 64)
        )));
    }
    if !url_target_allowed(target) {
        return Err(Error::ForbiddenDestination(format!(
            "target {:?} is not an /loki/…/lsrpc or /oxen/…/lsrpc path",
            hop::truncate(target, 64)
        )));
    }
    Ok(())
}

/// The full URL a proxying node posts to (port omitted when it is the scheme's default).
pub fn proxy_url(scheme: &str, host: &str, port: u16, target: &str) -> String {
    let default = if scheme == "https" { 443 } else { 80 };
    let mut url = format!("{scheme}://{host}");
    if port != default {
        url.push(':');
        url.push_str(&port.to_string());
    }
    if !target.starts_with('/') {
        url.push('/');
    }
    url.push_str(target);
    url
}

#[derive(Deserialize)]
struct OuterJson {
    ephemeral_key: String,
    #[serde(default)]
    enc_type: Option<String>,
    #[serde(default)]
    hop_no: Option<i64>,
}

/// Marks that a key is present, whatever its value (oxenss checks `count("headers")`).
#[derive(Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> core::result::Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d)?;
        Ok(Present(true))
    }
}

#[derive(Deserialize)]
struct InnerJson {
    #[serde(default)]
    headers: Present,
    #[serde(default)]
    json: Option<bool>,
    #[serde(default)]
    base64: Option<bool>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    protocol: Option<String>,
    #[serde(default)]
    destination: Option<String>,
    #[serde(default)]
    ephemeral_key: Option<String>,
    #[serde(default)]
    enc_type: Option<String>,
}

/// Routing decided from a decrypted layer, before reply ciphers are attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `headers` present: deliver `body` (`json`/`base64` reply flags).
    Final {
        body: Vec<u8>,
        json: bool,
        base64: bool,
    },
    /// `host` present: proxy the whole plaintext.
    Proxy {
        host: String,
        port: u16,
        scheme: String,
        target: String,
        payload: Vec<u8>,
    },
    /// Otherwise relay the blob to `destination` with the next hop's key and cipher.
    /// `head` is `LE32(n) ‖ blob` cut from the plaintext: the start of the next hop's frame,
    /// so relaying never copies the blob.
    Relay {
        destination: [u8; 32],
        ephemeral_key: [u8; 32],
        enc_type: EncType,
        head: Vec<u8>,
    },
}

/// Decides what a decrypted layer asks for (no URL filtering here; see [`check_proxy_target`]).
/// Every failure is [`Error::InvalidJson`] (oxenss answers "Invalid json").
pub fn route(plaintext: Vec<u8>) -> Result<Route> {
    let (blob, json) = layer::split(&plaintext).map_err(|e| Error::InvalidJson(e.to_string()))?;
    let blob_len = blob.len();
    let inner: InnerJson = serde_json::from_slice(json)
        .map_err(|e| Error::InvalidJson(format!("inner layer JSON: {e}")))?;
    // `LE32(n) ‖ blob`: the plaintext with the inner JSON cut off.
    let head = |mut v: Vec<u8>| {
        v.truncate(4 + blob_len);
        v
    };
    if inner.headers.0 {
        let mut body = head(plaintext);
        body.drain(..4);
        return Ok(Route::Final {
            body,
            json: inner.json.unwrap_or(false),
            base64: inner.base64.unwrap_or(true),
        });
    }
    if let Some(host) = inner.host {
        let target = inner.target.ok_or_else(|| {
            Error::InvalidJson("proxy layer has \"host\" but no \"target\"".into())
        })?;
        return Ok(Route::Proxy {
            host,
            port: inner.port.unwrap_or(443),
            scheme: inner.protocol.unwrap_or_else(|| "https".to_owned()),
            target,
            payload: plaintext,
        });
    }
    let dest = inner.destination.ok_or_else(|| {
        Error::InvalidJson("layer has none of \"headers\", \"host\", \"destination\"".into())
    })?;
    let destination = hop::key32_hex(&dest, "destination").map_err(|_| {
        Error::InvalidJson("\"destination\" is not a 64-hex-digit Ed25519 key".into())
    })?;
    let eph = inner
        .ephemeral_key
        .ok_or_else(|| Error::InvalidJson("relay layer has no \"ephemeral_key\"".into()))?;
    let ephemeral_key = hop::key32_hex(&eph, "ephemeral_key").map_err(|_| {
        Error::InvalidJson("\"ephemeral_key\" is not a 64-hex-digit X25519 key".into())
    })?;
    let enc_type = match inner.enc_type {
        None => EncType::AesGcm,
        Some(name) => enc_for_onion(&name)?,
    };
    Ok(Route::Relay {
        destination,
        ephemeral_key,
        enc_type,
        head: head(plaintext),
    })
}

fn enc_for_onion(name: &str) -> Result<EncType> {
    EncType::parse(name)
        .and_then(EncType::require_onion)
        .map_err(|e| Error::InvalidJson(e.to_string()))
}

/// Completes the frame a relaying node forwards (same layout as the client's outer frame):
/// appends the routing JSON to `head` = `LE32(n) ‖ blob`.
pub fn relay_frame(
    mut head: Vec<u8>,
    ephemeral_key: &[u8; 32],
    enc: EncType,
    hop_no: usize,
) -> Vec<u8> {
    let json = format!(
        r#"{{"ephemeral_key":"{}","enc_type":"{}","hop_no":{}}}"#,
        hex::encode(ephemeral_key),
        enc.as_str(),
        hop_no
    );
    head.extend_from_slice(json.as_bytes());
    head
}

/// A node's peeler: its X25519 identity key, kept in memory for the node's lifetime.
pub struct Peeler {
    secret: Zeroizing<[u8; 32]>,
    public: [u8; 32],
}

impl core::fmt::Debug for Peeler {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Peeler")
            .field("x25519_public", &hex::encode(self.public))
            .finish_non_exhaustive()
    }
}

impl Peeler {
    /// From the node's 32-byte X25519 secret key.
    pub fn new(x25519_secret: &[u8; 32]) -> Self {
        Peeler {
            secret: Zeroizing::new(*x25519_secret),
            public: hop::x25519_public(x25519_secret),
        }
    }

    /// The node's X25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }

    /// Parses a frame's routing JSON and derives the layer key.
    fn open_frame<'a>(&self, frame: &'a [u8]) -> Result<(&'a [u8], HopKey, usize)> {
        let (blob, json) = layer::split(frame)?;
        let outer: OuterJson = serde_json::from_slice(json)
            .map_err(|e| Error::InvalidJson(format!("error parsing onion request: {e}")))?;
        let hop_no = usize::try_from(outer.hop_no.unwrap_or(0).max(0)).unwrap_or(usize::MAX);
        if hop_no > MAX_ONION_HOPS {
            return Err(Error::TooManyHops {
                got: hop_no,
                max: MAX_ONION_HOPS,
            });
        }
        let enc = match outer.enc_type.as_deref() {
            None => EncType::AesGcm,
            Some(name) => enc_for_onion(name)?,
        };
        let eph = hop::key32_hex(&outer.ephemeral_key, "ephemeral_key").map_err(|_| {
            Error::InvalidJson("\"ephemeral_key\" is not a 64-hex-digit X25519 key".into())
        })?;
        let key = HopKey::server(enc, &self.secret, &self.public, &eph)
            .map_err(|_| Error::DecryptionFailed("ephemeral key is a low-order point"))?;
        Ok((blob, key, hop_no))
    }

    /// Peels one layer and decides what to do with it.
    pub fn peel(&self, frame: &[u8]) -> core::result::Result<Decision, PeelError> {
        let (blob, key, hop_no) = self.open_frame(frame)?;
        let plaintext = key.decrypt(blob)?;
        let encrypted_error = |error: Error, key: HopKey| PeelError {
            error,
            reply: Some(ReplyCipher::new(key, true, false)),
        };
        let route = match route(plaintext) {
            Ok(r) => r,
            Err(e) => return Err(encrypted_error(e, key)),
        };
        match route {
            Route::Final { body, json, base64 } => Ok(Decision::Deliver {
                payload: body,
                reply: ReplyCipher::new(key, base64, json),
            }),
            Route::Proxy {
                host,
                port,
                scheme,
                target,
                payload,
            } => {
                if let Err(e) = check_proxy_target(&scheme, &host, &target) {
                    return Err(encrypted_error(e, key));
                }
                Ok(Decision::Proxy {
                    host,
                    port,
                    scheme,
                    target,
                    payload,
                    reply: ReplyCipher::new(key, true, false),
                })
            }
            Route::Relay {
                destination,
                ephemeral_key,
                enc_type,
                head,
            } => {
                let next_hop = hop_no + 1;
                let frame = relay_frame(head, &ephemeral_key, enc_type, next_hop);
                Ok(Decision::Relay {
                    next_ed25519: hex::encode(destination),
                    frame,
                    hop_no: next_hop,
                })
            }
        }
    }

    /// What a v4 HTTP server (file server, SOGS) does with a proxied request: decrypt the blob
    /// with the frame's `ephemeral_key`/`enc_type`; the plaintext is the v4 request itself.
    /// Replies are raw (not base64).
    pub fn open_request(&self, body: &[u8]) -> Result<(Vec<u8>, ReplyCipher)> {
        let (blob, key, _) = self.open_frame(body)?;
        let plaintext = key.decrypt(blob)?;
        Ok((plaintext, ReplyCipher::new(key, false, false)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn vectors(name: &str) -> Vec<Value> {
        let path = format!(
            "{}/../../../tests/vectors/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(path).expect("vector file");
        let v: Value = serde_json::from_str(&text).expect("vector json");
        v["cases"].as_array().cloned().expect("cases")
    }

    fn h(v: &Value) -> Vec<u8> {
        hex::decode(v.as_str().expect("hex string")).expect("hex")
    }

    #[test]
    fn layer_parse_vectors() {
        let cases: Vec<_> = vectors("onion_layer")
            .into_iter()
            .filter(|c| c["kind"] == "layer_parse")
            .collect();
        assert_eq!(cases.len(), 2);
        for c in cases {
            let layer_bytes = h(&c["layer"]);
            let (blob, json) = layer::decode(&layer_bytes).expect("layer");
            assert_eq!(blob.len() as u64, c["blob_len"].as_u64().expect("blob_len"));
            let j: Value = serde_json::from_slice(json).expect("json");
            assert_eq!(j, c["json"]);
            let sk: [u8; 32] = h(&c["node_secret"]).try_into().expect("32");
            let peeler = Peeler::new(&sk);
            assert_eq!(peeler.public_key().to_vec(), h(&c["node_pubkey"]));
            let (pt, reply) = peeler.open_request(&layer_bytes).expect("open");
            assert_eq!(pt, c["payload_utf8"].as_str().expect("payload").as_bytes());
            let r = reply.encrypt(
                c["reply_plaintext_utf8"]
                    .as_str()
                    .expect("reply")
                    .as_bytes(),
            );
            assert_eq!(r.len() as u64, c["reply_len"].as_u64().expect("reply_len"));
            // The client (the vector's client keys) can open that reply.
            let a = <[u8; 32]>::try_from(h(&c["client_secret"])).expect("32");
            let key = HopKey::client(
                reply.enc_type(),
                &a,
                &hop::x25519_public(&a),
                &peeler.public_key(),
            )
            .expect("key");
            assert_eq!(key.decrypt(&r).expect("reply decrypt"), b"Goodbye world");
        }
    }

    #[test]
    fn routing_vectors() {
        for c in vectors("onion_layer")
            .into_iter()
            .filter(|c| c["kind"] == "routing")
        {
            let pt = h(&c["plaintext"]);
            let r = route(pt.clone()).expect("route");
            let e = &c["expect"];
            match (e["action"].as_str().expect("action"), r) {
                ("final", Route::Final { body, json, base64 }) => {
                    assert_eq!(body, e["body_utf8"].as_str().expect("body").as_bytes());
                    assert!(!json && base64);
                }
                (
                    "proxy",
                    Route::Proxy {
                        host,
                        port,
                        scheme,
                        target,
                        payload,
                    },
                ) => {
                    assert_eq!(host, e["host"].as_str().expect("host"));
                    assert_eq!(u64::from(port), e["port"].as_u64().expect("port"));
                    assert_eq!(scheme, e["protocol"].as_str().expect("protocol"));
                    assert_eq!(target, e["target"].as_str().expect("target"));
                    assert_eq!(e["payload_is_whole_plaintext"], true);
                    assert_eq!(payload, pt);
                }
                (
                    "relay",
                    Route::Relay {
                        destination,
                        ephemeral_key,
                        enc_type,
                        head,
                    },
                ) => {
                    let blob = &head[4..];
                    assert_eq!(
                        hex::encode(destination),
                        e["destination"].as_str().expect("dest")
                    );
                    assert_eq!(
                        hex::encode(ephemeral_key),
                        e["ephemeral_key"].as_str().expect("ek")
                    );
                    assert_eq!(enc_type.as_str(), e["enc_type"].as_str().expect("enc"));
                    assert_eq!(blob, e["blob_utf8"].as_str().expect("blob").as_bytes());
                }
                (a, r) => panic!("{}: expected {a}, got {r:?}", c["name"]),
            }
        }
    }

    #[test]
    fn url_filter_vectors() {
        for c in vectors("onion_layer")
            .into_iter()
            .filter(|c| c["kind"] == "url_filter")
        {
            let t = c["target"].as_str().expect("target");
            assert_eq!(url_target_allowed(t), c["allowed"] == true, "{t}");
        }
    }

    #[test]
    fn hosts_and_urls() {
        assert!(host_allowed("filev2.getsession.org"));
        assert!(host_allowed("127.0.0.1"));
        assert!(host_allowed("[::1]"));
        assert!(!host_allowed("evil.com/x?"));
        assert!(!host_allowed("a@b"));
        assert!(!host_allowed(""));
        assert_eq!(
            proxy_url("https", "h", 443, "/oxen/v4/lsrpc"),
            "https://h/oxen/v4/lsrpc"
        );
        assert_eq!(
            proxy_url("http", "h", 443, "/oxen/v4/lsrpc"),
            "http://h:443/oxen/v4/lsrpc"
        );
        assert_eq!(
            proxy_url("http", "h", 80, "/oxen/v4/lsrpc"),
            "http://h/oxen/v4/lsrpc"
        );
        assert!(check_proxy_target("ftp", "h", "/oxen/v4/lsrpc").is_err());
    }

    #[test]
    fn frame_errors() {
        let p = Peeler::new(&[3; 32]);
        let bad = |f: &[u8]| p.peel(f).expect_err("must fail");
        assert!(matches!(bad(b"").error, Error::Malformed(_)));
        assert!(matches!(
            bad(b"\x00\x00\x00\x00{}").error,
            Error::InvalidJson(_)
        ));
        let ek = hex::encode([9u8; 32]);
        let f = layer::join(
            b"x",
            format!(r#"{{"ephemeral_key":"{ek}","hop_no":16}}"#).as_bytes(),
        )
        .expect("join");
        assert_eq!(bad(&f).error, Error::TooManyHops { got: 16, max: 15 });
        let f = layer::join(
            b"x",
            format!(r#"{{"ephemeral_key":"{ek}","enc_type":"cbc"}}"#).as_bytes(),
        )
        .expect("join");
        assert!(matches!(bad(&f).error, Error::InvalidJson(_)));
        let f = layer::join(
            &[0u8; 64],
            format!(r#"{{"ephemeral_key":"{ek}","hop_no":-3}}"#).as_bytes(),
        )
        .expect("join");
        let e = bad(&f);
        assert!(matches!(e.error, Error::DecryptionFailed(_)) && e.reply.is_none());
    }
}
