//! Config-message encryption (deterministic XChaCha20-Poly1305) and padding.

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use session_crypto::config as cfg;
use zeroize::Zeroizing;

use crate::errors::CoreResult;

/// Encrypts a (padded) config message: ciphertext ‖ tag ‖ nonce.
#[pyfunction]
fn config_encrypt<'py>(
    py: Python<'py>,
    message: &[u8],
    key_base: &[u8],
    domain: &str,
) -> CoreResult<Bound<'py, PyBytes>> {
    let message = Zeroizing::new(message.to_vec());
    let key_base = Zeroizing::new(key_base.to_vec());
    let domain = domain.to_owned();
    let out = py.detach(move || cfg::encrypt(&message, &key_base, &domain))?;
    Ok(PyBytes::new(py, &out))
}

/// Decrypts a config message (padding is left in place).
#[pyfunction]
fn config_decrypt<'py>(
    py: Python<'py>,
    ciphertext: &[u8],
    key_base: &[u8],
    domain: &str,
) -> CoreResult<Bound<'py, PyBytes>> {
    let ciphertext = ciphertext.to_vec();
    let key_base = Zeroizing::new(key_base.to_vec());
    let domain = domain.to_owned();
    let out =
        py.detach(move || cfg::decrypt(&ciphertext, &key_base, &domain).map(Zeroizing::new))?;
    Ok(PyBytes::new(py, &out))
}

/// Size a message of `size` bytes is prefix-padded to, given the encryption `overhead`.
#[pyfunction]
fn config_padded_size(size: usize, overhead: usize) -> CoreResult<usize> {
    Ok(cfg::padded_size(size, overhead)?)
}

/// The message with `0x00` bytes prepended up to `config_padded_size(len, overhead)`.
#[pyfunction]
fn config_pad<'py>(
    py: Python<'py>,
    message: &[u8],
    overhead: usize,
) -> CoreResult<Bound<'py, PyBytes>> {
    let out = Zeroizing::new(cfg::pad(message, overhead)?);
    Ok(PyBytes::new(py, &out))
}

/// BLAKE2b-256 of a serialized config message.
#[pyfunction]
fn config_hash<'py>(py: Python<'py>, data: &[u8]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &cfg::config_hash(data))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(config_encrypt, m)?)?;
    m.add_function(wrap_pyfunction!(config_decrypt, m)?)?;
    m.add_function(wrap_pyfunction!(config_padded_size, m)?)?;
    m.add_function(wrap_pyfunction!(config_pad, m)?)?;
    m.add_function(wrap_pyfunction!(config_hash, m)?)?;
    m.add("CONFIG_OVERHEAD", cfg::OVERHEAD)?;
    m.add("CONFIG_DOMAIN_MAX_LEN", cfg::DOMAIN_MAX_LEN)?;
    Ok(())
}
