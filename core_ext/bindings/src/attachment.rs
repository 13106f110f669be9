//! Legacy attachment encryption (AES-256-CBC + HMAC-SHA256, padded size buckets).

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use session_crypto::attachment as att;
use zeroize::Zeroizing;

use crate::errors::CoreResult;

/// Pads and encrypts; returns (blob, 64-byte key, SHA-256 digest).
#[pyfunction]
#[pyo3(signature = (data, key=None))]
fn attachment_encrypt<'py>(
    py: Python<'py>,
    data: &[u8],
    key: Option<&[u8]>,
) -> CoreResult<(
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
)> {
    let data = Zeroizing::new(data.to_vec());
    let key = key.map(|k| Zeroizing::new(k.to_vec()));
    let enc = py.detach(move || att::encrypt(&data, key.as_deref().map(|k| &k[..])))?;
    Ok((
        PyBytes::new(py, &enc.blob),
        PyBytes::new(py, &enc.key[..]),
        PyBytes::new(py, &enc.digest),
    ))
}

/// Verifies (MAC, optional digest) and decrypts; cuts to `size` when given.
#[pyfunction]
#[pyo3(signature = (blob, key, digest=None, size=None))]
fn attachment_decrypt<'py>(
    py: Python<'py>,
    blob: &[u8],
    key: &[u8],
    digest: Option<&[u8]>,
    size: Option<usize>,
) -> CoreResult<Bound<'py, PyBytes>> {
    let blob = blob.to_vec();
    let key = Zeroizing::new(key.to_vec());
    let digest = digest.map(<[u8]>::to_vec);
    let plain =
        py.detach(move || att::decrypt(&blob, &key, digest.as_deref(), size).map(Zeroizing::new))?;
    Ok(PyBytes::new(py, &plain))
}

/// Padded plaintext size for `n` file bytes.
#[pyfunction]
fn attachment_padded_size(n: usize) -> usize {
    att::padded_size(n)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(attachment_encrypt, m)?)?;
    m.add_function(wrap_pyfunction!(attachment_decrypt, m)?)?;
    m.add_function(wrap_pyfunction!(attachment_padded_size, m)?)?;
    m.add("ATTACHMENT_KEY_LEN", att::KEY_LEN)?;
    Ok(())
}
