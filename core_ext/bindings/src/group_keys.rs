//! Key messages of 03 groups: rekey, supplements for added members, and reading either.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use session_crypto::group_keys::{self as gk, KeyInfo, Reader};
use zeroize::Zeroizing;

use crate::errors::{CoreError, CoreResult};
use crate::identity::PyIdentity;

fn arr32(b: &[u8], what: &'static str) -> CoreResult<Zeroizing<[u8; 32]>> {
    let a: [u8; 32] = b
        .try_into()
        .map_err(|_| session_crypto::Error::InvalidKey(what))?;
    Ok(Zeroizing::new(a))
}

/// Admin: (signed rekey message, new key) for `generation` and these members.
#[pyfunction]
fn group_rekey<'py>(
    py: Python<'py>,
    group_seed: &[u8],
    member_session_ids: Vec<String>,
    generation: i64,
) -> PyResult<Bound<'py, PyTuple>> {
    let seed = arr32(group_seed, "a group seed must be 32 bytes")?;
    let (msg, key) = py
        .detach(|| gk::rekey(&seed, &member_session_ids, generation))
        .map_err(CoreError::from)?;
    (PyBytes::new(py, &msg), PyBytes::new(py, &key[..])).into_pyobject(py)
}

/// Admin: a supplement giving `session_ids` the keys `(generation, key, timestamp_ms)`.
#[pyfunction]
fn group_key_supplement<'py>(
    py: Python<'py>,
    group_seed: &[u8],
    session_ids: Vec<String>,
    keys: Vec<(i64, Vec<u8>, i64)>,
) -> CoreResult<Bound<'py, PyBytes>> {
    let seed = arr32(group_seed, "a group seed must be 32 bytes")?;
    let list = keys
        .into_iter()
        .map(|(generation, k, timestamp_ms)| {
            Ok(KeyInfo {
                generation,
                key: arr32(&k, "a group key must be 32 bytes")?,
                timestamp_ms,
            })
        })
        .collect::<CoreResult<Vec<_>>>()?;
    let msg = py.detach(|| gk::key_supplement(&seed, &session_ids, &list))?;
    Ok(PyBytes::new(py, &msg))
}

/// Reads a key message as an admin (`admin_seed`) or a member (`member`):
/// (list of (generation, key, timestamp_ms), generation, is_supplement).
#[pyfunction]
#[pyo3(signature = (group_pk, data, timestamp_ms, admin_seed = None, member = None))]
fn group_load_key_message<'py>(
    py: Python<'py>,
    group_pk: &[u8],
    data: &[u8],
    timestamp_ms: i64,
    admin_seed: Option<&[u8]>,
    member: Option<&Bound<'py, PyIdentity>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let pk = *arr32(group_pk, "a group public key must be 32 bytes")?;
    let seed = admin_seed
        .map(|s| arr32(s, "a group seed must be 32 bytes"))
        .transpose()?;
    let reader = match (&seed, member) {
        (Some(s), None) => Reader::Admin(s),
        (None, Some(m)) => Reader::Member(m.get().keys()),
        _ => {
            return Err(CoreError::from(session_crypto::Error::InvalidValue {
                what: "key message reader",
                reason: "give either the admin seed or the member identity",
            })
            .into())
        }
    };
    let loaded = py
        .detach(|| gk::load(&pk, data, timestamp_ms, &reader))
        .map_err(CoreError::from)?;
    let keys = PyList::empty(py);
    for k in &loaded.keys {
        keys.append((k.generation, PyBytes::new(py, &k.key[..]), k.timestamp_ms))?;
    }
    (keys, loaded.generation, loaded.supplement).into_pyobject(py)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(group_rekey, m)?)?;
    m.add_function(wrap_pyfunction!(group_key_supplement, m)?)?;
    m.add_function(wrap_pyfunction!(group_load_key_message, m)?)?;
    m.add("GROUP_MESSAGE_KEY_MULTIPLE", gk::MESSAGE_KEY_MULTIPLE)?;
    Ok(())
}
