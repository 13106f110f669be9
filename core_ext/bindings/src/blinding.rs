//! Community blinding (15 / 25 / version-07 keys and signatures) and SOGS request signing.
//!
//! Functions that sign take the `Identity`; its seed is read inside Rust and wiped after use.

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use session_crypto::blinded_dm::{self, BlindedId};
use session_crypto::blinding as bl;
use session_crypto::Error;

use crate::errors::CoreResult;
use crate::identity::PyIdentity;

/// The identity's 32-byte Ed25519 seed, borrowed from the Rust object (no copy to wipe).
fn seed_of<'a>(identity: &'a Bound<'_, PyIdentity>) -> &'a [u8; 32] {
    identity.get().keys().ed25519_seed()
}

fn nonce_variant(name: &str) -> CoreResult<bl::Blind15Nonce> {
    match name {
        "libsession" => Ok(bl::Blind15Nonce::Libsession),
        "desktop" => Ok(bl::Blind15Nonce::Desktop),
        _ => Err(Error::InvalidValue {
            what: "nonce_derivation",
            reason: "it must be \"libsession\" or \"desktop\"",
        }
        .into()),
    }
}

/// `prefix` + hex of the identity's blinded key for this server, from `blind(seed, server_pk)`.
fn blinded_id(
    py: Python<'_>,
    identity: &Bound<'_, PyIdentity>,
    server_pubkey_hex: &str,
    prefix: u8,
    blind: fn(&[u8; 32], &[u8; 32]) -> [u8; 32],
) -> CoreResult<String> {
    let spk = bl::parse_server_pk(server_pubkey_hex)?;
    let seed = seed_of(identity);
    let pk = py.detach(|| blind(seed, &spk));
    Ok(bl::format_id(prefix, &pk))
}

/// "15" + hex of the identity's 15-blinded key for this server.
#[pyfunction]
fn blinded15_id(
    py: Python<'_>,
    identity: &Bound<'_, PyIdentity>,
    server_pubkey_hex: &str,
) -> CoreResult<String> {
    blinded_id(
        py,
        identity,
        server_pubkey_hex,
        bl::PREFIX_BLIND15,
        bl::blind15_public_key,
    )
}

/// "25" + hex of the identity's 25-blinded key for this server.
#[pyfunction]
fn blinded25_id(
    py: Python<'_>,
    identity: &Bound<'_, PyIdentity>,
    server_pubkey_hex: &str,
) -> CoreResult<String> {
    blinded_id(
        py,
        identity,
        server_pubkey_hex,
        bl::PREFIX_BLIND25,
        bl::blind25_public_key,
    )
}

/// Both possible 15-blinded ids (positive form, negative form) of a `05` Session ID.
#[pyfunction]
fn blinded15_ids_for_session_id(
    py: Python<'_>,
    session_id: &str,
    server_pubkey_hex: &str,
) -> CoreResult<(String, String)> {
    let x = bl::parse_session_id(session_id)?;
    let spk = bl::parse_server_pk(server_pubkey_hex)?;
    let (pos, neg) = py.detach(move || bl::blind15_keys_from_x25519(&x, &spk))?;
    Ok((
        bl::format_id(bl::PREFIX_BLIND15, &pos),
        bl::format_id(bl::PREFIX_BLIND15, &neg),
    ))
}

/// The 25-blinded id of a `05` Session ID.
#[pyfunction]
fn blinded25_id_for_session_id(
    py: Python<'_>,
    session_id: &str,
    server_pubkey_hex: &str,
) -> CoreResult<String> {
    let x = bl::parse_session_id(session_id)?;
    let spk = bl::parse_server_pk(server_pubkey_hex)?;
    let k = py.detach(move || bl::blind25_key_from_x25519(&x, &spk))?;
    Ok(bl::format_id(bl::PREFIX_BLIND25, &k))
}

/// True if a 15- or 25-blinded id belongs to the `05` Session ID on this server.
#[pyfunction]
fn session_id_matches_blinded_id(
    py: Python<'_>,
    session_id: &str,
    blinded_id: &str,
    server_pubkey_hex: &str,
) -> CoreResult<bool> {
    let x = bl::parse_session_id(session_id)?;
    let (prefix, key) = bl::parse_blinded_id(blinded_id)?;
    let spk = bl::parse_server_pk(server_pubkey_hex)?;
    Ok(py.detach(move || bl::x25519_matches_blinded(&x, prefix, &key, &spk))?)
}

/// A 15-blinded signature (Ed25519-verifiable under the 15-blinded key).
#[pyfunction]
#[pyo3(signature = (identity, server_pubkey_hex, message, nonce_derivation = "libsession"))]
fn blind15_sign<'py>(
    py: Python<'py>,
    identity: &Bound<'py, PyIdentity>,
    server_pubkey_hex: &str,
    message: &[u8],
    nonce_derivation: &str,
) -> CoreResult<Bound<'py, PyBytes>> {
    let spk = bl::parse_server_pk(server_pubkey_hex)?;
    let variant = nonce_variant(nonce_derivation)?;
    let seed = seed_of(identity);
    let sig = py.detach(|| bl::blind15_sign(seed, &spk, message, variant));
    Ok(PyBytes::new(py, &sig))
}

/// A 25-blinded signature (Ed25519-verifiable under the 25-blinded key).
#[pyfunction]
fn blind25_sign<'py>(
    py: Python<'py>,
    identity: &Bound<'py, PyIdentity>,
    server_pubkey_hex: &str,
    message: &[u8],
) -> CoreResult<Bound<'py, PyBytes>> {
    let spk = bl::parse_server_pk(server_pubkey_hex)?;
    let seed = seed_of(identity);
    let sig = py.detach(|| bl::blind25_sign(seed, &spk, message));
    Ok(PyBytes::new(py, &sig))
}

/// Verifies a signature under a blinded id (15, 25 or 07 prefix); raises InvalidSignature.
#[pyfunction]
fn verify_blinded(
    py: Python<'_>,
    blinded_id: &str,
    message: &[u8],
    signature: &[u8],
) -> CoreResult<()> {
    let (_, key) = bl::parse_blinded_id(blinded_id)?;
    Ok(py.detach(|| bl::verify(&key, message, signature))?)
}

/// "07" + hex of the identity's version-blinded Ed25519 key.
#[pyfunction]
fn version_blinded_id(py: Python<'_>, identity: &Bound<'_, PyIdentity>) -> String {
    let seed = seed_of(identity);
    let pk = py.detach(|| bl::version_blind_public_key(seed));
    bl::format_id(bl::PREFIX_VERSION_BLIND, &pk)
}

/// A plain Ed25519 signature by the identity's version-blinded key.
#[pyfunction]
fn version_blind_sign<'py>(
    py: Python<'py>,
    identity: &Bound<'py, PyIdentity>,
    message: &[u8],
) -> Bound<'py, PyBytes> {
    let seed = seed_of(identity);
    let sig = py.detach(|| bl::version_blind_sign(seed, message));
    PyBytes::new(py, &sig)
}

/// Signs a SOGS request; returns (X-SOGS-Pubkey value, 64-byte signature).
#[pyfunction]
#[pyo3(signature = (identity, server_pubkey_hex, method, path, body, blinded, timestamp, nonce, nonce_derivation = "libsession"))]
#[allow(clippy::too_many_arguments)]
fn sogs_sign<'py>(
    py: Python<'py>,
    identity: &Bound<'py, PyIdentity>,
    server_pubkey_hex: &str,
    method: &str,
    path: &str,
    body: &[u8],
    blinded: bool,
    timestamp: u64,
    nonce: &[u8],
    nonce_derivation: &str,
) -> CoreResult<(String, Bound<'py, PyBytes>)> {
    let spk = bl::parse_server_pk(server_pubkey_hex)?;
    let variant = nonce_variant(nonce_derivation)?;
    let nonce: [u8; 16] = nonce.try_into().map_err(|_| Error::InvalidLength {
        what: "SOGS nonce",
        expected: "16",
        got: nonce.len(),
    })?;
    let seed = seed_of(identity);
    let req = bl::SogsRequest {
        server_pk: &spk,
        nonce: &nonce,
        timestamp,
        method,
        path,
        body,
    };
    let auth = py.detach(|| bl::sogs_auth(seed, &req, blinded, variant))?;
    Ok((hex::encode(auth.pubkey), PyBytes::new(py, &auth.signature)))
}

/// Encrypts a blinded direct message (client spec §4.6) from the identity to the member with
/// this 15/25 blinded id on the server: `0x00 ‖ XChaCha20-Poly1305(content ‖ A) ‖ nonce`.
#[pyfunction]
fn blinded_dm_encrypt<'py>(
    py: Python<'py>,
    identity: &Bound<'py, PyIdentity>,
    server_pubkey_hex: &str,
    recipient_blinded_id: &str,
    content: &[u8],
) -> CoreResult<Bound<'py, PyBytes>> {
    let spk = bl::parse_server_pk(server_pubkey_hex)?;
    let recipient = BlindedId::parse(recipient_blinded_id)?;
    let seed = seed_of(identity);
    let out = py.detach(|| blinded_dm::encrypt(seed, &spk, &recipient, content))?;
    Ok(PyBytes::new(py, &out))
}

/// Decrypts a blinded direct message the server lists from `sender_blinded_id` to
/// `recipient_blinded_id` (the identity is one of the two); returns (content, sender's
/// `05` Session ID) after checking the sender key inside matches the sender id.
#[pyfunction]
fn blinded_dm_decrypt<'py>(
    py: Python<'py>,
    identity: &Bound<'py, PyIdentity>,
    server_pubkey_hex: &str,
    sender_blinded_id: &str,
    recipient_blinded_id: &str,
    message: &[u8],
) -> CoreResult<(Bound<'py, PyBytes>, String)> {
    let spk = bl::parse_server_pk(server_pubkey_hex)?;
    let sender = BlindedId::parse(sender_blinded_id)?;
    let recipient = BlindedId::parse(recipient_blinded_id)?;
    let seed = seed_of(identity);
    let opened = py.detach(|| blinded_dm::decrypt(seed, &spk, &sender, &recipient, message))?;
    Ok((
        PyBytes::new(py, &opened.content),
        session_crypto::keys::session_id_from_x25519(&opened.sender_x25519),
    ))
}

/// An XEd25519 signature by the identity's X25519 key (posts on servers without blinding),
/// verifiable with its `05` Session ID alone.
#[pyfunction]
fn xed25519_sign<'py>(
    py: Python<'py>,
    identity: &Bound<'py, PyIdentity>,
    message: &[u8],
) -> CoreResult<Bound<'py, PyBytes>> {
    let seed = seed_of(identity);
    let sig = py.detach(|| session_crypto::xed25519::sign_with_seed(seed, message));
    Ok(PyBytes::new(py, &sig))
}

/// Verifies an XEd25519 signature under a `05` Session ID; raises InvalidSignature.
#[pyfunction]
fn xed25519_verify(
    py: Python<'_>,
    session_id: &str,
    message: &[u8],
    signature: &[u8],
) -> CoreResult<()> {
    let x25519_pk = session_crypto::keys::parse_session_id(session_id)?;
    Ok(py.detach(|| session_crypto::xed25519::verify(&x25519_pk, message, signature))?)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(blinded15_id, m)?)?;
    m.add_function(wrap_pyfunction!(blinded25_id, m)?)?;
    m.add_function(wrap_pyfunction!(blinded15_ids_for_session_id, m)?)?;
    m.add_function(wrap_pyfunction!(blinded25_id_for_session_id, m)?)?;
    m.add_function(wrap_pyfunction!(session_id_matches_blinded_id, m)?)?;
    m.add_function(wrap_pyfunction!(blind15_sign, m)?)?;
    m.add_function(wrap_pyfunction!(blind25_sign, m)?)?;
    m.add_function(wrap_pyfunction!(verify_blinded, m)?)?;
    m.add_function(wrap_pyfunction!(version_blinded_id, m)?)?;
    m.add_function(wrap_pyfunction!(version_blind_sign, m)?)?;
    m.add_function(wrap_pyfunction!(sogs_sign, m)?)?;
    m.add_function(wrap_pyfunction!(blinded_dm_encrypt, m)?)?;
    m.add_function(wrap_pyfunction!(blinded_dm_decrypt, m)?)?;
    m.add_function(wrap_pyfunction!(xed25519_sign, m)?)?;
    m.add_function(wrap_pyfunction!(xed25519_verify, m)?)?;
    Ok(())
}
