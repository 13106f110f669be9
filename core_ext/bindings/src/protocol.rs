//! 1:1 message encryption (sign-then-sealed-box), padding and BLAKE2b.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use session_crypto::{hash, keys, padding, protocol};

use crate::errors::{CoreError, CoreResult};
use crate::identity::PyIdentity;

/// Work at least this large is done without the GIL.
const DETACH_MIN: usize = 1024;

#[pyfunction]
fn pad_message<'py>(py: Python<'py>, data: &[u8]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &padding::pad(data))
}

#[pyfunction]
fn unpad_message<'py>(py: Python<'py>, data: &[u8]) -> CoreResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(py, padding::unpad(data)?))
}

type EncryptFn = fn(&keys::SessionKeys, &[u8; 32], &[u8]) -> session_crypto::Result<Vec<u8>>;

/// Parses the recipient, then runs `encrypt` with the sender's keys without the GIL.
fn encrypt_with<'py>(
    py: Python<'py>,
    sender: &Bound<'py, PyIdentity>,
    recipient_session_id: &str,
    plaintext: &[u8],
    encrypt: EncryptFn,
) -> CoreResult<Bound<'py, PyBytes>> {
    let recipient = keys::parse_session_id(recipient_session_id)?;
    let keys = sender.get().keys();
    let ct = py.detach(|| encrypt(keys, &recipient, plaintext))?;
    Ok(PyBytes::new(py, &ct))
}

/// Sign-then-seal `plaintext` for a Session ID (the caller pads first).
#[pyfunction]
fn session_encrypt<'py>(
    py: Python<'py>,
    sender: &Bound<'py, PyIdentity>,
    recipient_session_id: &str,
    plaintext: &[u8],
) -> CoreResult<Bound<'py, PyBytes>> {
    encrypt_with(
        py,
        sender,
        recipient_session_id,
        plaintext,
        protocol::encrypt_for_recipient,
    )
}

/// libsession's deterministic variant (same inputs → same ciphertext).
#[pyfunction]
fn session_encrypt_deterministic<'py>(
    py: Python<'py>,
    sender: &Bound<'py, PyIdentity>,
    recipient_session_id: &str,
    plaintext: &[u8],
) -> CoreResult<Bound<'py, PyBytes>> {
    encrypt_with(
        py,
        sender,
        recipient_session_id,
        plaintext,
        protocol::encrypt_for_recipient_deterministic,
    )
}

fn decrypted_tuple<'py>(py: Python<'py>, d: &protocol::Decrypted) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(
        py,
        [
            PyBytes::new(py, &d.plaintext).into_any(),
            d.sender_session_id().into_pyobject(py)?.into_any(),
        ],
    )
}

/// Opens and verifies one message: `(plaintext, sender Session ID)`.
#[pyfunction]
fn session_decrypt<'py>(
    py: Python<'py>,
    recipient: &Bound<'py, PyIdentity>,
    ciphertext: &[u8],
) -> PyResult<Bound<'py, PyTuple>> {
    let keys = recipient.get().keys();
    let d = py
        .detach(|| protocol::decrypt_incoming(keys, ciphertext))
        .map_err(CoreError::from)?;
    decrypted_tuple(py, &d)
}

/// Opens many messages in parallel in one GIL-free call. Each result is a
/// `(plaintext, sender)` tuple or the exception instance for that item (not raised).
#[pyfunction]
fn session_decrypt_many<'py>(
    py: Python<'py>,
    recipient: &Bound<'py, PyIdentity>,
    ciphertexts: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    let mut held: Vec<Bound<'py, PyBytes>> = Vec::new();
    for item in ciphertexts.try_iter()? {
        held.push(item?.downcast_into::<PyBytes>()?);
    }
    let slices: Vec<&[u8]> = held.iter().map(|b| b.as_bytes()).collect();
    let keys = recipient.get().keys();
    let results: Vec<_> =
        py.detach(|| crate::map_batch(&slices, |ct| protocol::decrypt_incoming(keys, ct)));
    let out = PyList::empty(py);
    for r in results {
        match r {
            Ok(d) => out.append(decrypted_tuple(py, &d)?)?,
            Err(e) => out.append(PyErr::from(CoreError::from(e)).into_value(py))?,
        }
    }
    Ok(out)
}

/// BLAKE2b (libsodium generichash): digest 1..=64 bytes, optional key up to 64 bytes.
#[pyfunction]
#[pyo3(signature = (data, key = None, digest_size = 32))]
fn blake2b<'py>(
    py: Python<'py>,
    data: &[u8],
    key: Option<&[u8]>,
    digest_size: usize,
) -> CoreResult<Bound<'py, PyBytes>> {
    let d = if data.len() >= DETACH_MIN * 64 {
        py.detach(|| hash::blake2b(data, key, digest_size))?
    } else {
        hash::blake2b(data, key, digest_size)?
    };
    Ok(PyBytes::new(py, &d))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(pad_message, m)?)?;
    m.add_function(wrap_pyfunction!(unpad_message, m)?)?;
    m.add_function(wrap_pyfunction!(session_encrypt, m)?)?;
    m.add_function(wrap_pyfunction!(session_encrypt_deterministic, m)?)?;
    m.add_function(wrap_pyfunction!(session_decrypt, m)?)?;
    m.add_function(wrap_pyfunction!(session_decrypt_many, m)?)?;
    m.add_function(wrap_pyfunction!(blake2b, m)?)?;
    Ok(())
}
