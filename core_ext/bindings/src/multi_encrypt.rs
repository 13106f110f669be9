//! Encryption of one or several messages for several X25519 recipients with one shared nonce
//! (libsession `encrypt_for_multiple`), as used for group key distribution.

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use session_crypto::protocol;

use crate::errors::CoreResult;
use crate::identity::PyIdentity;

fn pk32(pk: &[u8]) -> CoreResult<[u8; 32]> {
    Ok(pk
        .try_into()
        .map_err(|_| session_crypto::Error::InvalidKey("an X25519 public key must be 32 bytes"))?)
}

fn nonce24(nonce: &[u8]) -> CoreResult<[u8; 24]> {
    Ok(nonce
        .try_into()
        .map_err(|_| session_crypto::Error::InvalidLength {
            what: "a multi-encrypt nonce",
            expected: "24",
            got: nonce.len(),
        })?)
}

/// One ciphertext per recipient: `messages` has one message for all, or one per recipient.
#[pyfunction]
fn multi_encrypt<'py>(
    py: Python<'py>,
    sender: &Bound<'py, PyIdentity>,
    recipients: Vec<Vec<u8>>,
    messages: Vec<Vec<u8>>,
    nonce: &[u8],
    domain: &[u8],
) -> CoreResult<Vec<Bound<'py, PyBytes>>> {
    if messages.len() != 1 && messages.len() != recipients.len() {
        return Err(session_crypto::Error::InvalidValue {
            what: "multi-encrypt messages",
            reason: "give one message for all recipients or one per recipient",
        }
        .into());
    }
    let nonce = nonce24(nonce)?;
    let pks = recipients
        .iter()
        .map(|r| pk32(r))
        .collect::<CoreResult<Vec<_>>>()?;
    let keys = sender.get().keys();
    let out = py.detach(|| {
        pks.iter()
            .enumerate()
            .map(|(i, pk)| {
                let msg = &messages[if messages.len() == 1 { 0 } else { i }];
                protocol::multi_encrypt_one(
                    keys.x25519_secret(),
                    keys.x25519_public(),
                    pk,
                    &nonce,
                    domain,
                    msg,
                )
            })
            .collect::<session_crypto::Result<Vec<_>>>()
    })?;
    Ok(out.iter().map(|c| PyBytes::new(py, c)).collect())
}

/// The first of `ciphertexts` addressed to `recipient` by `sender_x25519`, decrypted.
#[pyfunction]
fn multi_decrypt<'py>(
    py: Python<'py>,
    recipient: &Bound<'py, PyIdentity>,
    sender_x25519: &[u8],
    ciphertexts: Vec<Vec<u8>>,
    nonce: &[u8],
    domain: &[u8],
) -> CoreResult<Bound<'py, PyBytes>> {
    let nonce = nonce24(nonce)?;
    let sender = pk32(sender_x25519)?;
    let keys = recipient.get().keys();
    let refs: Vec<&[u8]> = ciphertexts.iter().map(Vec::as_slice).collect();
    let out = py.detach(|| {
        protocol::multi_decrypt(
            keys.x25519_secret(),
            keys.x25519_public(),
            &sender,
            &nonce,
            domain,
            &refs,
        )
        .map(zeroize::Zeroizing::new)
    })?;
    Ok(PyBytes::new(py, &out))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(multi_encrypt, m)?)?;
    m.add_function(wrap_pyfunction!(multi_decrypt, m)?)?;
    Ok(())
}
