//! Recovery phrases: encode/decode and the word list.

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use session_crypto::mnemonic;

use crate::errors::CoreResult;

/// Bytes (a multiple of 4) → words; with the checksum word unless `checksum` is false.
#[pyfunction]
#[pyo3(signature = (data, checksum = true))]
fn mnemonic_encode(data: &[u8], checksum: bool) -> CoreResult<String> {
    Ok(mnemonic::encode_words(data, checksum)?.to_string())
}

/// Words → bytes. `checksum=None`: a recovery phrase of 13/25 words (12/24 are refused:
/// a word is missing); `True`/`False`:
/// any number of words with/without the trailing checksum word.
#[pyfunction]
#[pyo3(signature = (phrase, checksum = None))]
fn mnemonic_decode<'py>(
    py: Python<'py>,
    phrase: &str,
    checksum: Option<bool>,
) -> CoreResult<Bound<'py, PyBytes>> {
    let data = match checksum {
        None => mnemonic::decode(phrase)?,
        Some(c) => {
            let words: Vec<&str> = phrase.split_whitespace().collect();
            mnemonic::decode_words(&words, c)?
        }
    };
    Ok(PyBytes::new(py, &data))
}

/// The English word list compiled into the core.
#[pyfunction]
fn mnemonic_words() -> Vec<&'static str> {
    mnemonic::words().to_vec()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(mnemonic_encode, m)?)?;
    m.add_function(wrap_pyfunction!(mnemonic_decode, m)?)?;
    m.add_function(wrap_pyfunction!(mnemonic_words, m)?)?;
    Ok(())
}
