//! Messages of 03 groups: sign, pad and encrypt under the group key; decrypt trying each key.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use session_crypto::group_message as gm;
use zeroize::Zeroizing;

use crate::errors::{CoreError, CoreResult};
use crate::identity::PyIdentity;

fn key32(key: &[u8]) -> CoreResult<Zeroizing<[u8; 32]>> {
    let arr: [u8; 32] = key
        .try_into()
        .map_err(|_| session_crypto::Error::InvalidLength {
            what: "a group key",
            expected: "32",
            got: key.len(),
        })?;
    Ok(Zeroizing::new(arr))
}

/// Encrypts `plaintext` for the group under `group_key`, signed by `sender`.
#[pyfunction]
#[pyo3(signature = (sender, group_key, plaintext, compress = true, padding = 256))]
fn group_encrypt_message<'py>(
    py: Python<'py>,
    sender: &Bound<'py, PyIdentity>,
    group_key: &[u8],
    plaintext: &[u8],
    compress: bool,
    padding: usize,
) -> CoreResult<Bound<'py, PyBytes>> {
    let key = key32(group_key)?;
    let keys = sender.get().keys();
    let ct = py.detach(|| gm::encrypt(keys, &key, plaintext, compress, padding))?;
    Ok(PyBytes::new(py, &ct))
}

/// Decrypts a group message: (plaintext, sender Session ID, index of the key that opened it).
#[pyfunction]
fn group_decrypt_message<'py>(
    py: Python<'py>,
    group_keys: Vec<Vec<u8>>,
    ciphertext: &[u8],
) -> PyResult<Bound<'py, PyTuple>> {
    let mut keys = Zeroizing::new(Vec::with_capacity(group_keys.len()));
    for k in &group_keys {
        keys.push(*key32(k)?);
    }
    let msg = py
        .detach(|| gm::decrypt(&keys, ciphertext))
        .map_err(CoreError::from)?;
    let t = (
        PyBytes::new(py, &msg.plaintext),
        msg.sender_session_id(),
        msg.key_index,
    );
    t.into_pyobject(py)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(group_encrypt_message, m)?)?;
    m.add_function(wrap_pyfunction!(group_decrypt_message, m)?)?;
    m.add("GROUP_MESSAGE_MAX_PLAINTEXT", gm::MAX_PLAINTEXT)?;
    Ok(())
}
