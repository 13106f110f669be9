//! Key messages of 03 groups (client spec §3.2.2; libsession `groups::Keys::rekey`,
//! `key_supplement`, `load_key_message`).
//!
//! A *rekey* message carries a new group key generation: the key encrypted once for admins
//! (`K`, under a key derived from the group seed) and once per member (`k`, encrypt-for-multiple
//! from the group's X25519 key), padded with deterministic junk entries to a multiple of 75, and
//! signed by the group key. The new key and nonce are a hash of the sorted member list, the
//! generation and the group seed, so two admins rekeying the same membership produce the same
//! key. A *supplement* gives newly added members the existing keys without a rekey.

use chacha20::cipher::{KeyIvInit, StreamCipher};
use chacha20::ChaCha20;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use crate::bt::{self, DictWriter, Value};
use crate::error::{Error, Result};
use crate::hash::blake2b_n;
use crate::keys::{self, SessionKeys};
use crate::protocol;

/// Member key entries are padded with junk to a multiple of this.
pub const MESSAGE_KEY_MULTIPLE: usize = 75;
/// Length of an encrypted key entry (key + tag).
pub const ENCRYPTED_KEY_LEN: usize = 48;
const MEMBER_DOMAIN: &[u8] = b"SessionGroupKeyMemberKey";
const SIG_SUFFIX_LEN: usize = 3 + 3 + 64 + 1; // "1:~" "64:" sig "e"

/// One key generation.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub generation: i64,
    pub key: Zeroizing<[u8; 32]>,
    /// When the key message was stored (swarm timestamp, ms).
    pub timestamp_ms: i64,
}

impl core::fmt::Debug for KeyInfo {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "KeyInfo(generation {}, t {})",
            self.generation, self.timestamp_ms
        )
    }
}

/// What a key message gave this device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedKeys {
    /// Keys this device could decrypt (none when the message is not for it).
    pub keys: Vec<KeyInfo>,
    /// The generation the message is about (also when it held nothing for this device).
    pub generation: i64,
    /// Whether it was a supplement (`+`) rather than a rekey.
    pub supplement: bool,
}

/// Who is reading a key message.
pub enum Reader<'a> {
    /// An admin (holds the group seed).
    Admin(&'a [u8; 32]),
    /// A member.
    Member(&'a SessionKeys),
}

fn seed_hash(seed: &[u8; 32], key: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
    Ok(Zeroizing::new(blake2b_n::<32>(&[seed], key)?))
}

fn group_x25519(seed: &[u8; 32]) -> Result<(StaticSecret, [u8; 32])> {
    let (pk, _) = keys::ed25519_keypair_from_seed(seed);
    let xsk = StaticSecret::from(*keys::ed25519_seed_to_x25519_secret(seed));
    Ok((xsk, keys::ed25519_pk_to_x25519(&pk)?))
}

fn xchacha_seal(key: &[u8; 32], nonce: &[u8; 24], msg: &[u8]) -> Result<Vec<u8>> {
    XChaCha20Poly1305::new(key.into())
        .encrypt(XNonce::from_slice(nonce), msg)
        .map_err(|_| Error::TooLarge {
            what: "a key message",
            max: usize::MAX / 2,
            got: msg.len(),
        })
}

fn sign_and_finish(seed: &[u8; 32], w: DictWriter) -> Vec<u8> {
    let sig = keys::sign_with_seed(seed, w.unfinished());
    let mut out = w.unfinished().to_vec();
    out.extend_from_slice(b"1:~64:");
    out.extend_from_slice(&sig);
    out.push(b'e');
    out
}

/// Sorted, de-duplicated member Session IDs with their X25519 keys; IDs that are not valid
/// user Session IDs (or low-order keys) are left out, as libsession does.
fn member_keys(session_ids: &[String]) -> Vec<(String, [u8; 32])> {
    let mut ids: Vec<(String, [u8; 32])> = session_ids
        .iter()
        .filter_map(|s| {
            let lower = s.to_ascii_lowercase();
            keys::parse_session_id(&lower).ok().map(|pk| (lower, pk))
        })
        .collect();
    ids.sort();
    ids.dedup_by(|a, b| a.0 == b.0);
    ids
}

/// Admin: a rekey message for `generation` and every member in `member_session_ids` (admins
/// included). Returns the signed message and the new key.
pub fn rekey(
    group_seed: &[u8; 32],
    member_session_ids: &[String],
    generation: i64,
) -> Result<(Vec<u8>, Zeroizing<[u8; 32]>)> {
    if generation < 0 {
        return Err(Error::InvalidValue {
            what: "key generation",
            reason: "it must not be negative",
        });
    }
    let members = member_keys(member_session_ids);
    let h2 = seed_hash(group_seed, b"SessionGroupKeySeed")?;
    let gen_text = generation.to_string();
    let mut parts: Vec<&[u8]> = members.iter().map(|(s, _)| s.as_bytes()).collect();
    parts.push(gen_text.as_bytes());
    parts.push(&h2[..]);
    let h1 = Zeroizing::new(blake2b_n::<56>(&parts, b"SessionGroupKeyGen")?);
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&h1[..32]);
    let mut nonce = [0u8; 24];
    nonce.copy_from_slice(&h1[32..]);

    let admin_key = seed_hash(group_seed, b"SessionGroupKeyAdminKey")?;
    let admin_copy = xchacha_seal(&admin_key, &nonce, &key[..])?;

    let (xsk, xpk) = group_x25519(group_seed)?;
    let mut entries: Vec<Vec<u8>> = Vec::with_capacity(members.len() + MESSAGE_KEY_MULTIPLE);
    for (_, pk) in &members {
        match protocol::multi_encrypt_one(&xsk, &xpk, pk, &nonce, MEMBER_DOMAIN, &key[..]) {
            Ok(ct) => entries.push(ct),
            Err(Error::InvalidKey(_)) => {} // a key that cannot receive: skipped, as libsession
            Err(e) => return Err(e),
        }
    }
    let rem = entries.len() % MESSAGE_KEY_MULTIPLE;
    if rem != 0 {
        let n_junk = MESSAGE_KEY_MULTIPLE - rem;
        let (_, sk64) = keys::ed25519_keypair_from_seed(group_seed);
        let rng_seed = Zeroizing::new(blake2b_n::<32>(
            &[&h1[..], &sk64[..]],
            b"SessionGroupJunkMembers",
        )?);
        // libsodium randombytes_buf_deterministic: the ChaCha20 (IETF) keystream under the seed
        // with the nonce "LibsodiumDRG".
        let mut junk = vec![0u8; n_junk * ENCRYPTED_KEY_LEN];
        ChaCha20::new((&*rng_seed).into(), b"LibsodiumDRG".into()).apply_keystream(&mut junk);
        entries.extend(junk.chunks(ENCRYPTED_KEY_LEN).map(<[u8]>::to_vec));
    }

    let mut w = DictWriter::new();
    w.bytes(b"#", &nonce)
        .int(b"G", generation)
        .bytes(b"K", &admin_copy)
        .list_of_bytes(b"k", entries.iter().map(Vec::as_slice));
    Ok((sign_and_finish(group_seed, w), key))
}

fn encode_key_list(keys_list: &[KeyInfo]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(vec![b'l']);
    for k in keys_list {
        let mut d = DictWriter::new();
        d.int(b"g", k.generation)
            .bytes(b"k", &k.key[..])
            .int(b"t", k.timestamp_ms);
        out.extend_from_slice(&Zeroizing::new(d.finish()));
    }
    out.push(b'e');
    out
}

/// Admin: a supplement giving `session_ids` (in the given order) all of `keys_list` (sorted
/// by generation, oldest first).
pub fn key_supplement(
    group_seed: &[u8; 32],
    session_ids: &[String],
    keys_list: &[KeyInfo],
) -> Result<Vec<u8>> {
    let last = keys_list.last().ok_or(Error::InvalidValue {
        what: "key supplement",
        reason: "there are no keys to give",
    })?;
    let plain = encode_key_list(keys_list);
    let h2 = seed_hash(group_seed, b"SessionGroupKeySeed")?;
    let mut parts: Vec<&[u8]> = session_ids.iter().map(|s| s.as_bytes()).collect();
    parts.push(&plain[..]);
    parts.push(&h2[..]);
    let nonce = blake2b_n::<24>(&parts, b"SessionGroupKeyGen")?;
    let (xsk, xpk) = group_x25519(group_seed)?;
    let mut entries = Vec::with_capacity(session_ids.len());
    for s in session_ids {
        let Ok(pk) = keys::parse_session_id(s) else {
            continue;
        };
        match protocol::multi_encrypt_one(&xsk, &xpk, &pk, &nonce, MEMBER_DOMAIN, &plain) {
            Ok(ct) => entries.push(ct),
            Err(Error::InvalidKey(_)) => {}
            Err(e) => return Err(e),
        }
    }
    if entries.is_empty() {
        return Err(Error::InvalidValue {
            what: "key supplement",
            reason: "none of the Session IDs is valid",
        });
    }
    let mut w = DictWriter::new();
    w.bytes(b"#", &nonce)
        .list_of_bytes(b"+", entries.iter().map(Vec::as_slice))
        .int(b"G", last.generation);
    Ok(sign_and_finish(group_seed, w))
}

fn bad(reason: &'static str) -> Error {
    Error::InvalidValue {
        what: "group key message",
        reason,
    }
}

fn bytes_of<'a>(d: &Value<'a>, key: &[u8], missing: &'static str) -> Result<&'a [u8]> {
    d.get(key).and_then(Value::as_bytes).ok_or(bad(missing))
}

fn list_of<'a>(d: &'a Value<'a>, key: &[u8], missing: &'static str) -> Result<Vec<&'a [u8]>> {
    match d.get(key) {
        Some(Value::List(items)) => items
            .iter()
            .map(|v| v.as_bytes().ok_or(bad(missing)))
            .collect(),
        _ => Err(bad(missing)),
    }
}

fn parse_key_list(plain: &[u8]) -> Result<Vec<KeyInfo>> {
    let Value::List(items) =
        bt::parse(plain).map_err(|_| bad("its supplement is not a key list"))?
    else {
        return Err(bad("its supplement is not a key list"));
    };
    items
        .iter()
        .map(|it| {
            let generation = it
                .get(b"g")
                .and_then(Value::as_int)
                .ok_or(bad("a supplemental key has no generation"))?;
            let k: [u8; 32] = it
                .get(b"k")
                .and_then(Value::as_bytes)
                .and_then(|k| k.try_into().ok())
                .ok_or(bad("a supplemental key is not 32 bytes"))?;
            let timestamp_ms = it
                .get(b"t")
                .and_then(Value::as_int)
                .ok_or(bad("a supplemental key has no timestamp"))?;
            Ok(KeyInfo {
                generation,
                key: Zeroizing::new(k),
                timestamp_ms,
            })
        })
        .collect()
}

/// Reads a key message (rekey or supplement) stored at `timestamp_ms`: checks the group's
/// signature and the structure (the same checks for every reader) and returns the keys this
/// reader can open.
pub fn load(
    group_pk: &[u8; 32],
    data: &[u8],
    timestamp_ms: i64,
    reader: &Reader<'_>,
) -> Result<LoadedKeys> {
    let d = bt::parse(data).map_err(|_| bad("it is not a bencoded dict"))?;
    let Value::Dict(items) = &d else {
        return Err(bad("it is not a bencoded dict"));
    };
    match items.last() {
        Some((k, Value::Bytes(sig))) if *k == b"~" && sig.len() == 64 => {
            keys::verify_slices(group_pk, &data[..data.len() - SIG_SUFFIX_LEN], sig)?;
        }
        _ => return Err(bad("it is not signed by the group")),
    }
    let nonce: [u8; 24] = bytes_of(&d, b"#", "it has no nonce")?
        .try_into()
        .map_err(|_| bad("its nonce is not 24 bytes"))?;
    let generation = d
        .get(b"G")
        .and_then(Value::as_int)
        .ok_or(bad("it has no generation"))?;
    if generation < 0 {
        return Err(bad("it has a negative generation"));
    }
    let group_xpk = keys::ed25519_pk_to_x25519(group_pk)?;
    let try_member = |entries: &[&[u8]]| -> Option<Zeroizing<Vec<u8>>> {
        let Reader::Member(me) = reader else {
            return None;
        };
        protocol::multi_decrypt(
            me.x25519_secret(),
            me.x25519_public(),
            &group_xpk,
            &nonce,
            MEMBER_DOMAIN,
            entries,
        )
        .ok()
        .map(Zeroizing::new)
    };
    if d.get(b"+").is_some() {
        let entries = list_of(&d, b"+", "its supplement entries are not strings")?;
        if entries.iter().any(|e| e.len() < 52 + 16) {
            return Err(bad("a supplement entry is too short"));
        }
        let keys_found = match try_member(&entries) {
            Some(plain) => parse_key_list(&plain)?,
            None => Vec::new(),
        };
        return Ok(LoadedKeys {
            keys: keys_found,
            generation,
            supplement: true,
        });
    }
    let admin_copy = bytes_of(&d, b"K", "it has no admin key")?;
    if admin_copy.len() != ENCRYPTED_KEY_LEN {
        return Err(bad("its admin key has the wrong length"));
    }
    let entries = list_of(&d, b"k", "it has no member key list")?;
    if entries.iter().any(|e| e.len() != ENCRYPTED_KEY_LEN) {
        return Err(bad("a member key has the wrong length"));
    }
    if entries.len() % MESSAGE_KEY_MULTIPLE != 0 {
        return Err(bad("its member key list is not padded to a multiple of 75"));
    }
    let key = match reader {
        Reader::Admin(seed) => {
            let admin_key = seed_hash(seed, b"SessionGroupKeyAdminKey")?;
            let plain = XChaCha20Poly1305::new((&*admin_key).into())
                .decrypt(XNonce::from_slice(&nonce), admin_copy)
                .map_err(|_| {
                    Error::DecryptionFailed("the admin key of the key message does not open")
                })?;
            Some(Zeroizing::new(plain))
        }
        Reader::Member(_) => try_member(&entries),
    };
    let keys_found = match key {
        Some(k) if k.len() == 32 => {
            let mut arr = Zeroizing::new([0u8; 32]);
            arr.copy_from_slice(&k);
            vec![KeyInfo {
                generation,
                key: arr,
                timestamp_ms,
            }]
        }
        Some(_) => return Err(bad("its key is not 32 bytes")),
        None => Vec::new(),
    };
    Ok(LoadedKeys {
        keys: keys_found,
        generation,
        supplement: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u8) -> (Vec<SessionKeys>, Vec<String>) {
        let ks: Vec<SessionKeys> = (1..=n)
            .map(|i| SessionKeys::from_seed(&[i; 16]).expect("seed"))
            .collect();
        let s = ks.iter().map(SessionKeys::session_id).collect();
        (ks, s)
    }

    #[test]
    fn rekey_is_deterministic_and_opens_for_members_only() {
        let seed = [42u8; 32];
        let (group_pk, _) = keys::ed25519_keypair_from_seed(&seed);
        let (members, sids) = ids(5);
        let (msg, key) = rekey(&seed, &sids, 3).expect("rekey");
        let mut reversed = sids.clone();
        reversed.reverse();
        let (msg2, key2) = rekey(&seed, &reversed, 3).expect("rekey");
        assert_eq!((msg.clone(), key.clone()), (msg2, key2), "two admins agree");
        assert_ne!(rekey(&seed, &sids, 4).expect("rekey").1, key);
        for m in &members {
            let got = load(&group_pk, &msg, 1000, &Reader::Member(m)).expect("load");
            assert_eq!(got.keys.len(), 1);
            assert_eq!(got.keys[0].key, key);
            assert_eq!((got.generation, got.keys[0].timestamp_ms), (3, 1000));
        }
        let admin = load(&group_pk, &msg, 1000, &Reader::Admin(&seed)).expect("admin");
        assert_eq!(admin.keys[0].key, key);
        let outsider = SessionKeys::from_seed(&[99u8; 16]).expect("seed");
        let none = load(&group_pk, &msg, 1000, &Reader::Member(&outsider)).expect("valid");
        assert!(none.keys.is_empty() && none.generation == 3);
        // tampering anywhere breaks the signature
        let mut t = msg.clone();
        t[10] ^= 1;
        assert!(load(&group_pk, &t, 1000, &Reader::Admin(&seed)).is_err());
        let other_pk = keys::ed25519_keypair_from_seed(&[1u8; 32]).0;
        assert!(load(&other_pk, &msg, 1000, &Reader::Admin(&seed)).is_err());
    }

    #[test]
    fn padding_to_75_and_supplements() {
        let seed = [7u8; 32];
        let (group_pk, _) = keys::ed25519_keypair_from_seed(&seed);
        for n in [1u8, 74, 75, 76] {
            let (_, sids) = ids(n);
            let (msg, _) = rekey(&seed, &sids, 0).expect("rekey");
            let d = bt::parse(&msg).expect("bt");
            let k = list_of(&d, b"k", "k").expect("list");
            assert_eq!(k.len(), (usize::from(n)).div_ceil(75) * 75);
        }
        let (members, sids) = ids(3);
        let keys_list: Vec<KeyInfo> = (0..3)
            .map(|g| KeyInfo {
                generation: g,
                key: Zeroizing::new([g as u8 + 1; 32]),
                timestamp_ms: 100 * g,
            })
            .collect();
        let supp = key_supplement(&seed, &sids[1..], &keys_list).expect("supp");
        let got = load(&group_pk, &supp, 5, &Reader::Member(&members[2])).expect("load");
        assert!(got.supplement && got.generation == 2);
        assert_eq!(got.keys, keys_list);
        assert!(load(&group_pk, &supp, 5, &Reader::Member(&members[0]))
            .expect("valid")
            .keys
            .is_empty());
        assert!(key_supplement(&seed, &["nonsense".to_owned()], &keys_list).is_err());
        assert!(key_supplement(&seed, &sids, &[]).is_err());
    }
}
