//! The single place where core errors become Python exceptions.
//!
//! Exception classes are declared in Python (`session/errors.py`) and imported here, so there
//! is one definition shared by users, docs and Rust.

use pyo3::prelude::*;

pyo3::import_exception!(session.errors, InvalidInput);
pyo3::import_exception!(session.errors, InvalidKey);
pyo3::import_exception!(session.errors, InvalidSessionID);
pyo3::import_exception!(session.errors, MnemonicError);
pyo3::import_exception!(session.errors, UnknownWord);
pyo3::import_exception!(session.errors, ChecksumMismatch);
pyo3::import_exception!(session.errors, PaddingError);
pyo3::import_exception!(session.errors, DecodeError);
pyo3::import_exception!(session.errors, DecryptionError);
pyo3::import_exception!(session.errors, InvalidSignature);
pyo3::import_exception!(session.errors, OnionError);

/// Any error of the pure crates, on its way to Python.
#[derive(Debug)]
pub enum CoreError {
    Crypto(session_crypto::Error),
    Onion(session_onion::Error),
    Swarm(session_swarm::Error),
    Link(session_link::Error),
}

impl From<session_crypto::Error> for CoreError {
    fn from(e: session_crypto::Error) -> Self {
        CoreError::Crypto(e)
    }
}
impl From<session_onion::Error> for CoreError {
    fn from(e: session_onion::Error) -> Self {
        CoreError::Onion(e)
    }
}
impl From<session_swarm::Error> for CoreError {
    fn from(e: session_swarm::Error) -> Self {
        CoreError::Swarm(e)
    }
}

impl From<session_link::Error> for CoreError {
    fn from(e: session_link::Error) -> Self {
        CoreError::Link(e)
    }
}

/// Result alias for binding functions.
pub type CoreResult<T> = Result<T, CoreError>;

impl From<CoreError> for PyErr {
    fn from(e: CoreError) -> PyErr {
        use session_crypto::Error as C;
        use session_onion::Error as O;
        use session_swarm::Error as S;
        match e {
            CoreError::Crypto(err) => {
                let msg = err.to_string();
                match err {
                    C::InvalidLength { .. } | C::TooLarge { .. } => InvalidInput::new_err(msg),
                    C::InvalidKey(_) => InvalidKey::new_err(msg),
                    C::InvalidSessionId(_) => InvalidSessionID::new_err(msg),
                    C::UnknownWord { .. } => UnknownWord::new_err(msg),
                    C::ChecksumMismatch => ChecksumMismatch::new_err(msg),
                    C::MnemonicLength(_)
                    | C::MnemonicWordCount { .. }
                    | C::MnemonicOverflow(_)
                    | C::MnemonicMissingWord { .. } => MnemonicError::new_err(msg),
                    C::DecryptionFailed(_) => DecryptionError::new_err(msg),
                    C::InvalidSignature => InvalidSignature::new_err(msg),
                    C::BadPadding(_) => PaddingError::new_err(msg),
                    _ => InvalidInput::new_err(msg),
                }
            }
            CoreError::Onion(err) => {
                let msg = err.to_string();
                match err {
                    O::InvalidKey(_) => InvalidKey::new_err(msg),
                    O::Bencode(_) => DecodeError::new_err(msg),
                    O::InvalidInput(_)
                    | O::EmptyPath
                    | O::UnknownEncType(_)
                    | O::UnsupportedEncType(_) => InvalidInput::new_err(msg),
                    other => OnionError::new_err((msg, other.status())),
                }
            }
            CoreError::Swarm(err) => {
                let msg = err.to_string();
                match err {
                    S::InvalidAccountId(_) => InvalidSessionID::new_err(msg),
                    _ => InvalidInput::new_err(msg),
                }
            }
            CoreError::Link(err) => {
                use session_link::Error as L;
                let msg = err.to_string();
                match err {
                    L::InvalidKey(_) => InvalidKey::new_err(msg),
                    L::Handshake(_) | L::Decrypt => DecryptionError::new_err(msg),
                    L::Malformed(_) => DecodeError::new_err(msg),
                    _ => InvalidInput::new_err(msg),
                }
            }
        }
    }
}
