//! Node-to-node links: what two service nodes say to each other over one TCP connection.
//!
//! A connection starts with a Noise handshake (`Noise_IK_25519_ChaChaPoly_BLAKE2s`, through the
//! `snow` crate): the connecting node knows the listening node's X25519 key from the node list
//! and proves its own, which the listener checks against the registered nodes before it answers.
//! Each side gets fresh ephemeral keys, so a recorded link cannot be read later with the nodes'
//! long-term keys.
//!
//! After the two handshake messages, every *message* is a list of byte strings ("parts": a
//! kind, a request id, a msgpack body, bulk values). On the wire a message is one *frame*:
//!
//! ```text
//! u32 big-endian L | L bytes of ciphertext
//! ```
//!
//! The plaintext (each part as a u32 big-endian length and its bytes; no parts at all is a
//! heartbeat) is cut into Noise transport messages of at most 65,519 bytes (65,535 with the
//! tag), encrypted in order; so L = plaintext length + 16 × the number of chunks, at least one
//! chunk (an empty plaintext is one 16-byte chunk). Every chunk is a full 65,535 bytes except
//! the last, which is how the reader finds the chunks again. Handshake messages travel as
//! frames too (their ciphertext is the Noise handshake message itself).
//!
//! No I/O here: the caller writes what [`Link::seal`] returns and hands what it reads to
//! [`Link::feed`], which keeps any incomplete frame until the rest arrives.

use core::ops::Range;

use zeroize::Zeroizing;

/// The Noise protocol name.
pub const PATTERN: &str = "Noise_IK_25519_ChaChaPoly_BLAKE2s";
/// Mixed into the handshake: a link of another protocol or version cannot complete one.
pub const PROLOGUE: &[u8] = b"session-node-link/1";
/// Largest Noise message (ciphertext of one chunk, tag included).
pub const NOISE_MAX: usize = 65_535;
/// Authentication tag per chunk.
pub const TAG: usize = 16;
/// Largest plaintext of one chunk.
pub const CHUNK: usize = NOISE_MAX - TAG;
/// Length prefix of a frame.
pub const HEADER: usize = 4;
/// Largest plaintext of one message (its parts and their lengths): a 10 MB file in an onion
/// frame with room to spare.
pub const MAX_PLAINTEXT: usize = 16 * 1024 * 1024;
/// Largest handshake message accepted (IK's first message is 96 bytes, its second 48).
pub const MAX_HANDSHAKE: usize = 1024;

/// Result alias of the crate.
pub type Result<T> = core::result::Result<T, Error>;

/// What can go wrong on a link. A link that returned an error from [`Link::feed`] is broken
/// (its nonces are out of step): the caller closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key is not 32 bytes.
    #[error("invalid link key: {0}")]
    InvalidKey(&'static str),
    /// The handshake failed (wrong key, a message out of turn, or not a link at all).
    #[error("link handshake failed: {0}")]
    Handshake(String),
    /// A frame or message larger than a link carries.
    #[error("link message too large: {len} bytes (at most {max})")]
    TooLarge { len: usize, max: usize },
    /// A frame that does not decrypt (tampered, replayed, or out of order).
    #[error("link frame does not decrypt")]
    Decrypt,
    /// A frame whose decrypted content is not a list of parts.
    #[error("malformed link frame: {0}")]
    Malformed(&'static str),
}

fn key32(k: &[u8], what: &'static str) -> Result<[u8; 32]> {
    k.try_into().map_err(|_| Error::InvalidKey(what))
}

fn builder() -> snow::Builder<'static> {
    let params: snow::params::NoiseParams = PATTERN.parse().expect("a valid Noise pattern");
    snow::Builder::new(params)
}

fn hs_err(e: snow::Error) -> Error {
    Error::Handshake(e.to_string())
}

/// One side of a link's handshake, until it becomes a [`Link`].
pub struct Handshake {
    state: snow::HandshakeState,
}

impl Handshake {
    /// The connecting side: our X25519 secret and the listener's public key (from the node
    /// list). It writes first.
    pub fn initiator(local_secret: &[u8], remote_public: &[u8]) -> Result<Self> {
        let sk = Zeroizing::new(key32(local_secret, "our link secret key must be 32 bytes")?);
        let pk = key32(remote_public, "the peer's link public key must be 32 bytes")?;
        let state = builder()
            .local_private_key(&sk[..])
            .remote_public_key(&pk)
            .prologue(PROLOGUE)
            .build_initiator()
            .map_err(hs_err)?;
        Ok(Self { state })
    }

    /// The listening side: our X25519 secret. It reads first, learns the connecting node's
    /// key ([`Handshake::remote_static`]) and answers once the caller has checked that key.
    pub fn responder(local_secret: &[u8]) -> Result<Self> {
        let sk = Zeroizing::new(key32(local_secret, "our link secret key must be 32 bytes")?);
        let state = builder()
            .local_private_key(&sk[..])
            .prologue(PROLOGUE)
            .build_responder()
            .map_err(hs_err)?;
        Ok(Self { state })
    }

    /// Our next handshake message, as a frame ready to write.
    pub fn write(&mut self) -> Result<Vec<u8>> {
        let mut out = vec![0u8; HEADER + MAX_HANDSHAKE];
        let n = self
            .state
            .write_message(&[], &mut out[HEADER..])
            .map_err(hs_err)?;
        out[..HEADER].copy_from_slice(&(n as u32).to_be_bytes());
        out.truncate(HEADER + n);
        Ok(out)
    }

    /// Read the peer's handshake message (a frame's content, without its length prefix).
    pub fn read(&mut self, message: &[u8]) -> Result<()> {
        if message.len() > MAX_HANDSHAKE {
            return Err(Error::TooLarge {
                len: message.len(),
                max: MAX_HANDSHAKE,
            });
        }
        let mut payload = [0u8; MAX_HANDSHAKE];
        self.state
            .read_message(message, &mut payload)
            .map_err(hs_err)?;
        Ok(())
    }

    /// The peer's static X25519 public key, once its handshake message was read.
    pub fn remote_static(&self) -> Option<[u8; 32]> {
        self.state
            .get_remote_static()
            .and_then(|k| k.try_into().ok())
    }

    /// Whether both handshake messages have gone by.
    pub fn is_finished(&self) -> bool {
        self.state.is_handshake_finished()
    }

    /// The link of a finished handshake.
    pub fn into_link(self) -> Result<Link> {
        if !self.state.is_handshake_finished() {
            return Err(Error::Handshake("the handshake is not finished".into()));
        }
        let remote = self
            .remote_static()
            .ok_or_else(|| Error::Handshake("no peer key".into()))?;
        let transport = self.state.into_transport_mode().map_err(hs_err)?;
        Ok(Link {
            transport,
            remote,
            pending: Vec::new(),
        })
    }
}

/// Split one frame's length prefix off `buf`: the frame's ciphertext length, or None while
/// fewer than [`HEADER`] bytes are there.
pub fn frame_length(buf: &[u8]) -> Option<usize> {
    let h: [u8; HEADER] = buf.get(..HEADER)?.try_into().ok()?;
    Some(u32::from_be_bytes(h) as usize)
}

/// Largest ciphertext of one frame.
pub const fn max_frame() -> usize {
    MAX_PLAINTEXT + TAG * (MAX_PLAINTEXT / CHUNK + 1)
}

/// The plaintext of a message: each part as a u32 big-endian length and its bytes.
pub fn encode_parts(parts: &[&[u8]]) -> Result<Vec<u8>> {
    let len: usize = parts.iter().map(|p| HEADER + p.len()).sum();
    if len > MAX_PLAINTEXT {
        return Err(Error::TooLarge {
            len,
            max: MAX_PLAINTEXT,
        });
    }
    let mut out = Vec::with_capacity(len);
    for p in parts {
        out.extend_from_slice(&(p.len() as u32).to_be_bytes());
        out.extend_from_slice(p);
    }
    Ok(out)
}

/// Where each part of a message's plaintext lies in it (the inverse of [`encode_parts`],
/// without copying the parts).
pub fn part_ranges(plain: &[u8]) -> Result<Vec<Range<usize>>> {
    let mut parts = Vec::new();
    let mut at = 0;
    while at < plain.len() {
        let n =
            frame_length(&plain[at..]).ok_or(Error::Malformed("a part's length is cut short"))?;
        let body = at + HEADER..at + HEADER + n;
        if body.end > plain.len() {
            return Err(Error::Malformed("a part is longer than its frame"));
        }
        at = body.end;
        parts.push(body);
    }
    Ok(parts)
}

/// Inverse of [`encode_parts`].
pub fn decode_parts(plain: &[u8]) -> Result<Vec<Vec<u8>>> {
    Ok(part_ranges(plain)?
        .into_iter()
        .map(|r| plain[r].to_vec())
        .collect())
}

/// One message opened by [`Link::feed`]: its plaintext, and where each part lies in it (the
/// parts are handed out as slices, not copied one by one).
pub struct Opened {
    plain: Zeroizing<Vec<u8>>,
    parts: Vec<Range<usize>>,
}

impl Opened {
    /// The message's parts, in order (none: a heartbeat).
    pub fn parts(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.parts.iter().map(|r| &self.plain[r.clone()])
    }

    /// The parts as owned byte strings.
    pub fn to_vecs(&self) -> Vec<Vec<u8>> {
        self.parts().map(<[u8]>::to_vec).collect()
    }
}

/// An established link: seals our messages, opens the peer's.
pub struct Link {
    transport: snow::TransportState,
    remote: [u8; 32],
    /// Bytes read that do not make a whole frame yet.
    pending: Vec<u8>,
}

impl Link {
    /// The peer's static X25519 public key (proven by the handshake).
    pub fn remote(&self) -> [u8; 32] {
        self.remote
    }

    /// One message as a frame ready to write (no parts: a heartbeat).
    pub fn seal(&mut self, parts: &[&[u8]]) -> Result<Vec<u8>> {
        let plain = Zeroizing::new(encode_parts(parts)?);
        let chunks = plain.len().div_ceil(CHUNK).max(1);
        let len = plain.len() + TAG * chunks;
        let mut out = vec![0u8; HEADER + len];
        out[..HEADER].copy_from_slice(&(len as u32).to_be_bytes());
        let mut at = HEADER;
        let mut pieces = plain.chunks(CHUNK);
        for _ in 0..chunks {
            let piece = pieces.next().unwrap_or(&[]);
            let n = self
                .transport
                .write_message(piece, &mut out[at..at + piece.len() + TAG])
                .map_err(|e| Error::Handshake(e.to_string()))?;
            at += n;
        }
        debug_assert_eq!(at, out.len());
        Ok(out)
    }

    /// Open one frame's ciphertext (without its length prefix) into its parts.
    fn open_frame(&mut self, ct: &[u8]) -> Result<Opened> {
        if ct.len() < TAG || (ct.len() % NOISE_MAX != 0 && ct.len() % NOISE_MAX < TAG) {
            return Err(Error::Malformed("a frame's length does not fit its chunks"));
        }
        let mut plain = Zeroizing::new(vec![0u8; ct.len()]);
        let mut at = 0;
        for chunk in ct.chunks(NOISE_MAX) {
            let n = self
                .transport
                .read_message(chunk, &mut plain[at..])
                .map_err(|_| Error::Decrypt)?;
            at += n;
        }
        plain.truncate(at);
        let parts = part_ranges(&plain)?;
        Ok(Opened { plain, parts })
    }

    /// Hand over bytes read from the connection; returns the messages they complete, in order
    /// (each a list of parts; an empty list is a heartbeat). An error means the peer sent
    /// something no link of ours sends: close the connection.
    pub fn feed(&mut self, data: &[u8]) -> Result<Vec<Opened>> {
        let mut out = Vec::new();
        if self.pending.is_empty() {
            let used = self.open_all(data, &mut out)?;
            self.pending.extend_from_slice(&data[used..]);
        } else {
            self.pending.extend_from_slice(data);
            let buf = std::mem::take(&mut self.pending);
            let used = self.open_all(&buf, &mut out);
            self.pending = buf;
            self.pending.drain(..used?);
        }
        Ok(out)
    }

    /// Open every whole frame at the start of `buf`; returns how many bytes they took.
    fn open_all(&mut self, buf: &[u8], out: &mut Vec<Opened>) -> Result<usize> {
        let mut at = 0;
        while let Some(len) = frame_length(&buf[at..]) {
            if len > max_frame() {
                return Err(Error::TooLarge {
                    len,
                    max: max_frame(),
                });
            }
            let Some(ct) = buf.get(at + HEADER..at + HEADER + len) else {
                break;
            };
            out.push(self.open_frame(ct)?);
            at += HEADER + len;
        }
        Ok(at)
    }

    /// How many bytes of an incomplete frame are waiting.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keypair() -> (Vec<u8>, Vec<u8>) {
        let kp = builder().generate_keypair().unwrap();
        (kp.private, kp.public)
    }

    /// What `feed` opened, as owned parts.
    fn owned(msgs: Vec<Opened>) -> Vec<Vec<Vec<u8>>> {
        msgs.iter().map(Opened::to_vecs).collect()
    }

    /// A connected pair (initiator, responder) and the keys they proved.
    fn pair() -> (Link, Link, Vec<u8>, Vec<u8>) {
        let (isk, ipk) = keypair();
        let (rsk, rpk) = keypair();
        let mut i = Handshake::initiator(&isk, &rpk).unwrap();
        let mut r = Handshake::responder(&rsk).unwrap();
        let m1 = i.write().unwrap();
        r.read(&m1[HEADER..]).unwrap();
        assert_eq!(r.remote_static().unwrap().to_vec(), ipk);
        let m2 = r.write().unwrap();
        i.read(&m2[HEADER..]).unwrap();
        (i.into_link().unwrap(), r.into_link().unwrap(), ipk, rpk)
    }

    #[test]
    fn messages_both_ways_any_size() {
        let (mut a, mut b, ipk, rpk) = pair();
        assert_eq!(a.remote().to_vec(), rpk);
        assert_eq!(b.remote().to_vec(), ipk);
        for size in [
            0,
            1,
            CHUNK - 4,
            CHUNK - 3,
            CHUNK,
            3 * CHUNK + 7,
            10 * 1024 * 1024,
        ] {
            let big = vec![0x5a; size];
            let parts: [&[u8]; 3] = [b"cc", b"\x01\0\0\0\0\0\0\0", &big];
            let frame = a.seal(&parts).unwrap();
            let got = owned(b.feed(&frame).unwrap());
            assert_eq!(
                got,
                vec![parts.iter().map(|p| p.to_vec()).collect::<Vec<_>>()]
            );
            let back = b.seal(&[b"R"]).unwrap();
            assert_eq!(owned(a.feed(&back).unwrap()), vec![vec![b"R".to_vec()]]);
        }
    }

    #[test]
    fn heartbeat_is_a_message_without_parts() {
        let (mut a, mut b, _, _) = pair();
        let frame = a.seal(&[]).unwrap();
        assert_eq!(frame.len(), HEADER + TAG);
        assert_eq!(owned(b.feed(&frame).unwrap()), vec![Vec::<Vec<u8>>::new()]);
    }

    #[test]
    fn frames_split_anywhere_and_joined() {
        let (mut a, mut b, _, _) = pair();
        let mut stream = Vec::new();
        let mut want = Vec::new();
        for n in 0..40usize {
            let body = vec![n as u8; n * 3001];
            stream.extend(a.seal(&[b"k", &body]).unwrap());
            want.push(vec![b"k".to_vec(), body]);
        }
        let mut got = Vec::new();
        for piece in stream.chunks(977) {
            got.extend(owned(b.feed(piece).unwrap()));
        }
        assert_eq!(b.pending(), 0);
        assert_eq!(got, want);
    }

    #[test]
    fn tampered_replayed_or_reordered_frames_fail() {
        let (mut a, mut b, _, _) = pair();
        let f1 = a.seal(&[b"one"]).unwrap();
        let f2 = a.seal(&[b"two"]).unwrap();
        let mut bad = f1.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(b.feed(&bad).err(), Some(Error::Decrypt));
        // out of order: the second frame under the first nonce
        let (mut a, mut b, _, _) = pair();
        let _ = a.seal(&[b"one"]).unwrap();
        let f2b = a.seal(&[b"two"]).unwrap();
        assert_eq!(b.feed(&f2b).err(), Some(Error::Decrypt));
        // a frame of another link
        let (_, mut c, _, _) = pair();
        assert_eq!(c.feed(&f2).err(), Some(Error::Decrypt));
    }

    #[test]
    fn oversized_and_malformed_frames_are_refused() {
        let (_, mut b, _, _) = pair();
        let huge = ((max_frame() + 1) as u32).to_be_bytes();
        assert!(matches!(b.feed(&huge), Err(Error::TooLarge { .. })));
        let (_, mut b, _, _) = pair();
        let mut short = 5u32.to_be_bytes().to_vec();
        short.extend([0u8; 5]);
        assert!(matches!(b.feed(&short), Err(Error::Malformed(_))));
        assert!(decode_parts(&[0, 0, 0, 9, 1]).is_err());
        assert!(decode_parts(&[0, 0]).is_err());
        assert_eq!(decode_parts(&[]).unwrap(), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn a_wrong_listener_key_fails_the_handshake() {
        let (isk, _) = keypair();
        let (rsk, _) = keypair();
        let (_, other) = keypair();
        let mut i = Handshake::initiator(&isk, &other).unwrap();
        let mut r = Handshake::responder(&rsk).unwrap();
        let m1 = i.write().unwrap();
        assert!(matches!(r.read(&m1[HEADER..]), Err(Error::Handshake(_))));
        assert!(Handshake::initiator(&isk[..31], &other).is_err());
    }

    #[test]
    fn too_large_a_message_is_refused_before_sealing() {
        let (mut a, _, _, _) = pair();
        let big = vec![0u8; MAX_PLAINTEXT];
        assert!(matches!(a.seal(&[&big]), Err(Error::TooLarge { .. })));
    }
}
