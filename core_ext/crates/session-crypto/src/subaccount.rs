//! Swarm authentication of 03-group members ("subaccounts"; client spec §3.2.5, libsession
//! `groups::Keys::swarm_make_subaccount` / `swarm_subaccount_sign` / `swarm_verify_subaccount`,
//! and the storage server's check).
//!
//! Notation: `c/C` the group's Ed25519 keys, `s/S` a member's Ed25519 keys, `X` its X25519 key
//! (in the Session ID), `T = |S|` (S with the sign bit cleared, the XEd25519 "positive" key
//! behind `X`), `k` a per-member blinding scalar only admins can compute.
//!
//! * The admin gives the member `auth data` (100 bytes): `03 ‖ flags ‖ 00 00 ‖ k ‖ sig_C(03 ‖
//!   flags ‖ 00 00 ‖ kT)`.
//! * The member's request carries `subaccount` = token `03 ‖ flags ‖ 00 00 ‖ kT`, the admin's
//!   `subaccount_sig`, and `signature`: an EdDSA signature by the scalar `kt` (public key `kT`)
//!   with libsession's nonce `r = H64(H32(seed; "SubaccountSeed") ‖ kT ‖ M; "SubaccountSig")`.
//! * The storage server checks the token's flags, the admin signature under `C` and the request
//!   signature under `kT`.

use curve25519_dalek::constants::ED25519_BASEPOINT_TABLE;
use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::scalar::Scalar;
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::hash::blake2b_n;
use crate::keys::{self, SessionKeys};

/// Flag: may read (always required).
pub const FLAG_READ: u8 = 0b0001;
/// Flag: may store.
pub const FLAG_WRITE: u8 = 0b0010;
/// Flag: may delete.
pub const FLAG_DELETE: u8 = 0b0100;
/// Flag: valid for any account prefix, not just 03.
pub const FLAG_ANY_PREFIX: u8 = 0b1000;
/// The network prefix of group accounts.
pub const GROUP_PREFIX: u8 = 0x03;
/// Length of the admin-issued auth data.
pub const AUTH_DATA_LEN: usize = 100;
/// Length of a subaccount token.
pub const TOKEN_LEN: usize = 36;

/// What a member attaches to a storage request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubaccountAuth {
    /// `03 ‖ flags ‖ 00 00 ‖ kT` (sent base64 as `subaccount`).
    pub token: [u8; TOKEN_LEN],
    /// The admin's signature over the token (`subaccount_sig`).
    pub subaccount_sig: [u8; 64],
    /// The member's signature over the request text (`signature`).
    pub signature: [u8; 64],
}

/// The flags byte for a member with the given rights (read is always granted).
pub fn flags(write: bool, delete: bool) -> u8 {
    FLAG_READ | if write { FLAG_WRITE } else { 0 } | if delete { FLAG_DELETE } else { 0 }
}

fn point(bytes: &[u8; 32], what: &'static str) -> Result<curve25519_dalek::EdwardsPoint> {
    CompressedEdwardsY(*bytes)
        .decompress()
        .ok_or(Error::InvalidKey(what))
}

/// `k = H64(05 ‖ X ‖ 03 ‖ C; key = H32(c_seed; "SessionGroupSubaccountMask")) mod L`.
pub fn blind_factor(group_seed: &[u8; 32], member_x25519: &[u8; 32]) -> Result<Scalar> {
    let (group_pk, _) = keys::ed25519_keypair_from_seed(group_seed);
    let mask = Zeroizing::new(blake2b_n::<32>(
        &[group_seed],
        b"SessionGroupSubaccountMask",
    )?);
    let h = Zeroizing::new(blake2b_n::<64>(
        &[&[0x05], member_x25519, &[GROUP_PREFIX], &group_pk],
        &mask[..],
    )?);
    Ok(Scalar::from_bytes_mod_order_wide(&h))
}

fn token_for(flags: u8, k_t: &[u8; 32]) -> [u8; TOKEN_LEN] {
    let mut t = [0u8; TOKEN_LEN];
    t[0] = GROUP_PREFIX;
    t[1] = flags;
    t[4..].copy_from_slice(k_t);
    t
}

/// The member's positive Ed25519 key `T` from its Session ID's X25519 key.
fn positive_key(member_x25519: &[u8; 32]) -> Result<curve25519_dalek::EdwardsPoint> {
    let t = keys::x25519_pk_to_ed25519_positive(member_x25519)?;
    point(&t, "the member's Session ID is not a valid key")
}

/// The blinding factor `k` of a member and the token `03 ‖ flags ‖ 00 00 ‖ kT`.
fn blinded_token(
    group_seed: &[u8; 32],
    member_x25519: &[u8; 32],
    write: bool,
    delete: bool,
) -> Result<(Scalar, [u8; TOKEN_LEN])> {
    let k = blind_factor(group_seed, member_x25519)?;
    let k_t = (k * positive_key(member_x25519)?).compress().to_bytes();
    Ok((k, token_for(flags(write, delete), &k_t)))
}

/// Admin side: the 100-byte auth data for the member with X25519 key `member_x25519`.
pub fn make_auth_data(
    group_seed: &[u8; 32],
    member_x25519: &[u8; 32],
    write: bool,
    delete: bool,
) -> Result<[u8; AUTH_DATA_LEN]> {
    let (k, token) = blinded_token(group_seed, member_x25519, write, delete)?;
    let sig = keys::sign_with_seed(group_seed, &token);
    let mut out = [0u8; AUTH_DATA_LEN];
    out[..4].copy_from_slice(&token[..4]);
    out[4..36].copy_from_slice(k.as_bytes());
    out[36..].copy_from_slice(&sig);
    Ok(out)
}

/// Admin side: the token (`03 ‖ flags ‖ 00 00 ‖ kT`) a member will present, e.g. to revoke it.
pub fn make_token(
    group_seed: &[u8; 32],
    member_x25519: &[u8; 32],
    write: bool,
    delete: bool,
) -> Result<[u8; TOKEN_LEN]> {
    Ok(blinded_token(group_seed, member_x25519, write, delete)?.1)
}

fn split_auth_data(auth_data: &[u8]) -> Result<(&[u8], Scalar, [u8; 64])> {
    if auth_data.len() != AUTH_DATA_LEN {
        return Err(Error::InvalidLength {
            what: "subaccount auth data",
            expected: "100",
            got: auth_data.len(),
        });
    }
    let mut kb = [0u8; 32];
    kb.copy_from_slice(&auth_data[4..36]);
    let k =
        Option::<Scalar>::from(Scalar::from_canonical_bytes(kb)).ok_or(Error::InvalidValue {
            what: "subaccount auth data",
            reason: "its blinding factor is not a reduced scalar",
        })?;
    let mut sig = [0u8; 64];
    sig.copy_from_slice(&auth_data[36..]);
    Ok((&auth_data[..4], k, sig))
}

/// The member's `T = |S|`, its scalar `t` (negated when `S` had the sign bit) and `kT`.
fn member_blinded(member: &SessionKeys, k: &Scalar) -> Result<(Scalar, [u8; 32])> {
    let mut s_pk = *member.ed25519_public();
    let neg = s_pk[31] & 0x80 != 0;
    s_pk[31] &= 0x7f;
    let big_t = point(&s_pk, "the member's Ed25519 key")?;
    let x = keys::ed25519_seed_to_x25519_secret(member.ed25519_seed());
    let s = Scalar::from_bytes_mod_order(*x);
    let t = if neg { -s } else { s };
    Ok((k * t, (k * big_t).compress().to_bytes()))
}

/// Member side: signs the request text `message` with the auth data an admin issued.
pub fn sign(member: &SessionKeys, auth_data: &[u8], message: &[u8]) -> Result<SubaccountAuth> {
    let (prefix, k, subaccount_sig) = split_auth_data(auth_data)?;
    let (kt, k_t) = member_blinded(member, &k)?;
    let mut token = [0u8; TOKEN_LEN];
    token[..4].copy_from_slice(prefix);
    token[4..].copy_from_slice(&k_t);
    let hseed = Zeroizing::new(blake2b_n::<32>(
        &[member.ed25519_seed()],
        b"SubaccountSeed",
    )?);
    let rh = Zeroizing::new(blake2b_n::<64>(
        &[&hseed[..], &k_t, message],
        b"SubaccountSig",
    )?);
    let r = Scalar::from_bytes_mod_order_wide(&rh);
    let big_r = (&r * ED25519_BASEPOINT_TABLE).compress().to_bytes();
    let hram: [u8; 64] = Sha512::new()
        .chain_update(big_r)
        .chain_update(k_t)
        .chain_update(message)
        .finalize()
        .into();
    let s = Scalar::from_bytes_mod_order_wide(&hram) * kt + r;
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(&big_r);
    signature[32..].copy_from_slice(s.as_bytes());
    Ok(SubaccountAuth {
        token,
        subaccount_sig,
        signature,
    })
}

/// Member side: whether the auth data is a valid grant from the group `group_pk` for this
/// member with (at least) the asked rights.
pub fn verify_auth_data(
    group_pk: &[u8; 32],
    member: &SessionKeys,
    auth_data: &[u8],
    write: bool,
    delete: bool,
) -> Result<()> {
    let (prefix, k, sig) = split_auth_data(auth_data)?;
    check_flags(prefix, write, delete)?;
    let (_, k_t) = member_blinded(member, &k)?;
    let mut token = [0u8; TOKEN_LEN];
    token[..4].copy_from_slice(prefix);
    token[4..].copy_from_slice(&k_t);
    keys::verify(group_pk, &token, &sig)
}

fn check_flags(prefix: &[u8], write: bool, delete: bool) -> Result<()> {
    let f = prefix[1];
    let deny = |reason| {
        Err(Error::InvalidValue {
            what: "subaccount",
            reason,
        })
    };
    if prefix[0] != GROUP_PREFIX && f & FLAG_ANY_PREFIX == 0 {
        return deny("it is not for a group account");
    }
    if f & FLAG_READ == 0 {
        return deny("it does not grant read access");
    }
    if write && f & FLAG_WRITE == 0 {
        return deny("it does not grant write access");
    }
    if delete && f & FLAG_DELETE == 0 {
        return deny("it does not grant delete access");
    }
    Ok(())
}

/// Storage-server side: accepts a request for the group account `group_pk` (the 03 key, no
/// prefix) signed by a subaccount when the token grants the needed rights, the group signed the
/// token, and the token's key `kT` signed `message`.
pub fn verify_request(
    group_pk: &[u8; 32],
    token: &[u8],
    subaccount_sig: &[u8],
    signature: &[u8],
    message: &[u8],
    write: bool,
    delete: bool,
) -> Result<()> {
    if token.len() != TOKEN_LEN {
        return Err(Error::InvalidLength {
            what: "a subaccount token",
            expected: "36",
            got: token.len(),
        });
    }
    check_flags(&token[..4], write, delete)?;
    keys::verify_slices(group_pk, token, subaccount_sig)?;
    keys::verify_slices(&token[4..], message, signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_member_server_agree() {
        let group_seed = [7u8; 32];
        let (group_pk, _) = keys::ed25519_keypair_from_seed(&group_seed);
        for n in 1..=6u8 {
            let member = SessionKeys::from_seed(&[n; 16]).expect("seed");
            let auth =
                make_auth_data(&group_seed, member.x25519_public(), true, false).expect("auth");
            verify_auth_data(&group_pk, &member, &auth, true, false).expect("member accepts");
            assert!(verify_auth_data(&group_pk, &member, &auth, true, true).is_err());
            let s = sign(&member, &auth, b"store111234").expect("sign");
            assert_eq!(
                s.token,
                make_token(&group_seed, member.x25519_public(), true, false).expect("token")
            );
            verify_request(
                &group_pk,
                &s.token,
                &s.subaccount_sig,
                &s.signature,
                b"store111234",
                true,
                false,
            )
            .expect("server");
            assert!(verify_request(
                &group_pk,
                &s.token,
                &s.subaccount_sig,
                &s.signature,
                b"store111235",
                true,
                false
            )
            .is_err());
            assert!(verify_request(
                &group_pk,
                &s.token,
                &s.subaccount_sig,
                &s.signature,
                b"store111234",
                true,
                true
            )
            .is_err());
            // someone else using this member's auth data produces a token the group never signed
            let other = SessionKeys::from_seed(&[n + 100; 16]).expect("seed");
            let stolen = sign(&other, &auth, b"store111234").expect("sign");
            assert!(verify_request(
                &group_pk,
                &stolen.token,
                &stolen.subaccount_sig,
                &stolen.signature,
                b"store111234",
                true,
                false
            )
            .is_err());
            // raising one's own flags breaks the admin signature
            let mut t = s.token;
            t[1] |= FLAG_DELETE;
            assert!(verify_request(
                &group_pk,
                &t,
                &s.subaccount_sig,
                &s.signature,
                b"x",
                false,
                true
            )
            .is_err());
        }
    }
}
