//! `_core.Identity` (an account's keys, kept in Rust) and Ed25519 / Session ID helpers.
//!
//! The Python class `session.identity.Identity` subclasses `_core.Identity`, so every binding
//! that needs an account (onion, blinding, ...) takes a `PyIdentity` and reads the keys
//! through the `pub(crate)` accessors below; secret keys never become Python objects.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use session_crypto::keys::{self, SessionKeys};
use session_crypto::{mnemonic, Error};

use crate::errors::CoreResult;

/// An account: seed, Ed25519 and X25519 keys (wiped from memory when dropped).
#[pyclass(frozen, subclass, name = "Identity", module = "session._core")]
pub(crate) struct PyIdentity {
    keys: SessionKeys,
}

impl PyIdentity {
    /// The derived keys, for other bindings.
    pub(crate) fn keys(&self) -> &SessionKeys {
        &self.keys
    }

    /// The X25519 secret key (clamped).
    pub(crate) fn x25519_secret(&self) -> [u8; 32] {
        self.keys.x25519_secret().to_bytes()
    }
}

#[pymethods]
impl PyIdentity {
    /// `Identity()` makes a new random account, `Identity(seed)` restores one from a 16-byte
    /// (or legacy 32-byte) seed, `Identity(phrase=...)` from a recovery phrase.
    #[new]
    #[pyo3(signature = (seed = None, *, phrase = None))]
    fn py_new(seed: Option<&[u8]>, phrase: Option<&str>) -> CoreResult<Self> {
        let keys = match (seed, phrase) {
            (None, None) => SessionKeys::generate(),
            (Some(seed), None) => SessionKeys::from_seed(seed)?,
            (None, Some(phrase)) => SessionKeys::from_seed(&mnemonic::decode(phrase)?)?,
            (Some(_), Some(_)) => {
                return Err(Error::InvalidValue {
                    what: "Identity arguments",
                    reason: "give either a seed or a recovery phrase, not both",
                }
                .into())
            }
        };
        Ok(PyIdentity { keys })
    }

    /// "05" + hex of the X25519 public key.
    #[getter]
    fn session_id(&self) -> String {
        self.keys.session_id()
    }

    #[getter]
    fn ed25519_public<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.keys.ed25519_public())
    }

    #[getter]
    fn x25519_public<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.keys.x25519_public())
    }

    /// The recovery phrase: 13 words (16-byte seed) or 25 words (legacy 32-byte seed).
    #[getter]
    fn mnemonic(&self) -> CoreResult<String> {
        Ok(mnemonic::encode(&self.keys.recovery_seed())?.to_string())
    }

    /// Detached 64-byte Ed25519 signature.
    fn sign<'py>(&self, py: Python<'py>, message: &[u8]) -> Bound<'py, PyBytes> {
        let sig = if message.len() > 4096 {
            py.detach(|| self.keys.sign(message))
        } else {
            self.keys.sign(message)
        };
        PyBytes::new(py, &sig)
    }

    /// The seed as given (16 bytes, or 32 for legacy accounts): an explicit export.
    fn seed<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.keys.recovery_seed())
    }

    /// The raw 32-byte X25519 secret key, for transports such as CurveZMQ that need the raw
    /// key (the node links). An explicit export: keep it out of logs and files.
    fn export_x25519_secret<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let mut secret = self.x25519_secret();
        let out = PyBytes::new(py, &secret);
        secret.iter_mut().for_each(|b| *b = 0);
        out
    }

    fn __repr__(&self) -> String {
        format!("Identity({})", self.keys.session_id())
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        match other.downcast::<PyIdentity>() {
            Ok(o) => o.get().keys.x25519_public() == self.keys.x25519_public(),
            Err(_) => false,
        }
    }

    fn __hash__(&self) -> u64 {
        let pk = self.keys.x25519_public();
        u64::from_le_bytes([pk[0], pk[1], pk[2], pk[3], pk[4], pk[5], pk[6], pk[7]])
    }
}

/// Verifies a detached Ed25519 signature (libsodium acceptance rules); raises
/// InvalidSignature when it does not verify.
#[pyfunction]
fn ed25519_verify(ed25519_public: &[u8], message: &[u8], signature: &[u8]) -> CoreResult<()> {
    Ok(keys::verify_slices(ed25519_public, message, signature)?)
}

/// Verifies many `(public key, message, signature)` triples in parallel without the GIL.
/// Items with a wrong-length key or signature count as not verifying.
#[pyfunction]
fn ed25519_verify_many(py: Python<'_>, items: &Bound<'_, PyAny>) -> PyResult<Vec<bool>> {
    let mut held: Vec<(Bound<'_, PyBytes>, Bound<'_, PyBytes>, Bound<'_, PyBytes>)> = Vec::new();
    for item in items.try_iter()? {
        let item = item?;
        let t = item.downcast::<PyTuple>()?;
        held.push(t.extract()?);
    }
    let slices: Vec<(&[u8], &[u8], &[u8])> = held
        .iter()
        .map(|(k, m, s)| (k.as_bytes(), m.as_bytes(), s.as_bytes()))
        .collect();
    Ok(py.detach(|| crate::map_batch(&slices, |(k, m, s)| keys::verify_slices(k, m, s).is_ok())))
}

/// "05" + 64 hex digits → the 32-byte X25519 public key.
#[pyfunction]
fn parse_session_id<'py>(py: Python<'py>, text: &str) -> CoreResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(py, &keys::parse_session_id(text)?))
}

/// Ed25519 public key → X25519 public key (libsodium conversion rules).
#[pyfunction]
fn ed25519_pk_to_x25519<'py>(
    py: Python<'py>,
    ed25519_public: &[u8],
) -> CoreResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(
        py,
        &keys::ed25519_pk_to_x25519_slice(ed25519_public)?,
    ))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyIdentity>()?;
    m.add_function(wrap_pyfunction!(ed25519_verify, m)?)?;
    m.add_function(wrap_pyfunction!(ed25519_verify_many, m)?)?;
    m.add_function(wrap_pyfunction!(parse_session_id, m)?)?;
    m.add_function(wrap_pyfunction!(ed25519_pk_to_x25519, m)?)?;
    Ok(())
}
