//! zstd compression for config pushes and group messages (bounded decompression).

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use session_crypto::compression;

use crate::errors::CoreResult;

/// zstd of `data` (level 1 equivalent).
#[pyfunction]
fn zstd_compress<'py>(py: Python<'py>, data: &[u8]) -> Bound<'py, PyBytes> {
    let out = py.detach(|| compression::compress(data));
    PyBytes::new(py, &out)
}

/// Decompresses one zstd frame of at most `max_size` bytes of output.
#[pyfunction]
fn zstd_decompress<'py>(
    py: Python<'py>,
    data: &[u8],
    max_size: usize,
) -> CoreResult<Bound<'py, PyBytes>> {
    let out = py.detach(|| compression::decompress(data, max_size))?;
    Ok(PyBytes::new(py, &out))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(zstd_compress, m)?)?;
    m.add_function(wrap_pyfunction!(zstd_decompress, m)?)?;
    Ok(())
}
