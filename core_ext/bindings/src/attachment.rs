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

/// Streaming encryptor: same bytes as `attachment_encrypt`, chunk by chunk (memory stays flat).
#[pyclass(module = "session._core", name = "AttachmentEncryptor")]
struct AttachmentEncryptor {
    inner: Option<att::StreamEncryptor>,
    key: Zeroizing<[u8; att::KEY_LEN]>,
}

#[pymethods]
impl AttachmentEncryptor {
    /// Starts encrypting a file of `size` bytes (random IV; random key unless given).
    #[new]
    #[pyo3(signature = (size, key=None))]
    fn new(size: usize, key: Option<&[u8]>) -> CoreResult<Self> {
        let (inner, k) = att::StreamEncryptor::random(key, size)?;
        Ok(Self {
            inner: Some(inner),
            key: k,
        })
    }

    /// The 64-byte key (goes into the attachment pointer).
    #[getter]
    fn key<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.key[..])
    }

    /// Encrypts the next chunk; returns the ciphertext ready so far (IV first).
    fn update<'py>(&mut self, py: Python<'py>, data: &[u8]) -> CoreResult<Bound<'py, PyBytes>> {
        let inner = self.inner.as_mut().ok_or(finished())?;
        let out = py.detach(|| inner.update(data))?;
        Ok(PyBytes::new(py, &out))
    }

    /// Pads and finishes; returns (last ciphertext bytes with the MAC, SHA-256 digest of the blob).
    fn finalize<'py>(
        &mut self,
        py: Python<'py>,
    ) -> CoreResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
        let inner = self.inner.take().ok_or(finished())?;
        let (tail, digest) = py.detach(move || inner.finalize())?;
        Ok((PyBytes::new(py, &tail), PyBytes::new(py, &digest)))
    }
}

/// Streaming decryptor: output is unverified until `finalize` returns without raising.
#[pyclass(module = "session._core", name = "AttachmentDecryptor")]
struct AttachmentDecryptor {
    inner: Option<att::StreamDecryptor>,
}

#[pymethods]
impl AttachmentDecryptor {
    #[new]
    #[pyo3(signature = (key, digest=None, size=None))]
    fn new(key: &[u8], digest: Option<&[u8]>, size: Option<usize>) -> CoreResult<Self> {
        Ok(Self {
            inner: Some(att::StreamDecryptor::new(key, digest, size)?),
        })
    }

    /// Takes the next chunk of the blob; returns plaintext ready so far (not yet verified).
    fn update<'py>(&mut self, py: Python<'py>, data: &[u8]) -> CoreResult<Bound<'py, PyBytes>> {
        let inner = self.inner.as_mut().ok_or(finished())?;
        let out = py.detach(|| Zeroizing::new(inner.update(data)));
        Ok(PyBytes::new(py, &out))
    }

    /// Checks MAC and digest; returns the last plaintext bytes or raises DecryptionError.
    fn finalize<'py>(&mut self, py: Python<'py>) -> CoreResult<Bound<'py, PyBytes>> {
        let inner = self.inner.take().ok_or(finished())?;
        let out = py.detach(move || inner.finalize().map(Zeroizing::new))?;
        Ok(PyBytes::new(py, &out))
    }
}

fn finished() -> session_crypto::Error {
    session_crypto::Error::InvalidValue {
        what: "attachment stream",
        reason: "finalize() was already called",
    }
}

/// Padded plaintext size for `n` file bytes.
#[pyfunction]
fn attachment_padded_size(n: usize) -> usize {
    att::padded_size(n)
}

/// Encrypts a profile picture: IV (12) ‖ AES-256-GCM(image) ‖ tag (16).
#[pyfunction]
fn profile_pic_encrypt<'py>(
    py: Python<'py>,
    image: &[u8],
    key: &[u8],
) -> CoreResult<Bound<'py, PyBytes>> {
    let out = py.detach(|| session_crypto::profile_pic::encrypt(image, key))?;
    Ok(PyBytes::new(py, &out))
}

/// Verifies and decrypts a profile picture blob.
#[pyfunction]
fn profile_pic_decrypt<'py>(
    py: Python<'py>,
    blob: &[u8],
    key: &[u8],
) -> CoreResult<Bound<'py, PyBytes>> {
    let out = py.detach(|| session_crypto::profile_pic::decrypt(blob, key))?;
    Ok(PyBytes::new(py, &out))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(attachment_encrypt, m)?)?;
    m.add_function(wrap_pyfunction!(attachment_decrypt, m)?)?;
    m.add_function(wrap_pyfunction!(attachment_padded_size, m)?)?;
    m.add_class::<AttachmentEncryptor>()?;
    m.add_function(wrap_pyfunction!(profile_pic_encrypt, m)?)?;
    m.add_function(wrap_pyfunction!(profile_pic_decrypt, m)?)?;
    m.add_class::<AttachmentDecryptor>()?;
    m.add("ATTACHMENT_KEY_LEN", att::KEY_LEN)?;
    Ok(())
}
