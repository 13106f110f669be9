//! Session Name Service values (client spec §6.8): name hash and the encrypted Session ID.

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use session_crypto::ons;

use crate::errors::CoreResult;

/// BLAKE2b-256 of the (already lower-cased) name: the key a lookup sends.
#[pyfunction]
fn ons_name_hash<'py>(py: Python<'py>, name: &str) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &ons::name_hash(name))
}

/// XChaCha20-Poly1305 of a 33-byte Session ID under the name's key, with a 24-byte nonce.
#[pyfunction]
fn ons_encrypt<'py>(
    py: Python<'py>,
    name: &str,
    session_id: &[u8],
    nonce: &[u8],
) -> CoreResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(py, &ons::encrypt(name, session_id, nonce)?))
}

/// Decrypts a node's `encrypted_value` for the name: the 33-byte Session ID.
#[pyfunction]
fn ons_decrypt<'py>(
    py: Python<'py>,
    name: &str,
    ciphertext: &[u8],
    nonce: &[u8],
) -> CoreResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(py, &ons::decrypt(name, ciphertext, nonce)?))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(ons_name_hash, m)?)?;
    m.add_function(wrap_pyfunction!(ons_encrypt, m)?)?;
    m.add_function(wrap_pyfunction!(ons_decrypt, m)?)?;
    m.add("ONS_NONCE_LEN", ons::NONCE_LEN)?;
    Ok(())
}
