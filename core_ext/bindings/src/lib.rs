//! `session._core`: the thin pyo3 layer over the pure crates.
//!
//! One file per concept; every function converts types, releases the GIL around crypto and
//! batch work (`Python::detach`), and turns errors into Python exceptions in one place
//! (`errors.rs`). Users import `session.*`, never this module.

use pyo3::prelude::*;
use pyo3::types::PyDict;

mod attachment;
mod blinding;
mod compression;
mod config;
mod errors;
mod group_keys;
mod group_message;
mod identity;
mod link;
mod mnemonic;
mod multi_encrypt;
mod onion;
mod ons;
mod protocol;
mod subaccount;
mod swarm;

/// Batches at least this long are spread over rayon's pool; shorter ones run on the calling
/// thread. Waking the pool (and its threads spinning before they sleep again) costs a call
/// tens of microseconds of CPU whatever its length, worth it only where the work saved on
/// the caller's clock is several times that (one item is ~100 us here).
const PARALLEL_MIN_ITEMS: usize = 8;

/// `f` over `items` in order: on rayon's pool for a batch of `PARALLEL_MIN_ITEMS` or more,
/// on this thread otherwise.
pub(crate) fn map_batch<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> R + Sync + Send,
) -> Vec<R> {
    use rayon::prelude::*;
    if items.len() >= PARALLEL_MIN_ITEMS {
        items.par_iter().map(f).collect()
    } else {
        items.iter().map(f).collect()
    }
}

fn build_info(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("version", env!("CARGO_PKG_VERSION"))?;
    d.set_item(
        "profile",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    )?;
    d.set_item("target_arch", std::env::consts::ARCH)?;
    d.set_item("target_os", std::env::consts::OS)?;
    let backends = PyDict::new(py);
    backends.set_item(
        "x25519",
        "x25519-dalek 2 (curve25519-dalek 4, serial/simd auto)",
    )?;
    backends.set_item("ed25519", "ed25519-dalek 2")?;
    backends.set_item("xchacha20poly1305", "RustCrypto chacha20poly1305 0.10")?;
    backends.set_item("aes-gcm", "RustCrypto aes-gcm 0.10")?;
    backends.set_item("sealed-box", "RustCrypto crypto_box 0.9")?;
    backends.set_item("blake2b", "RustCrypto blake2 0.10")?;
    d.set_item("crypto_backends", backends)?;
    #[cfg(target_arch = "x86_64")]
    {
        let feats = PyDict::new(py);
        feats.set_item("aes", std::arch::is_x86_feature_detected!("aes"))?;
        feats.set_item(
            "pclmulqdq",
            std::arch::is_x86_feature_detected!("pclmulqdq"),
        )?;
        feats.set_item("avx2", std::arch::is_x86_feature_detected!("avx2"))?;
        feats.set_item("sha", std::arch::is_x86_feature_detected!("sha"))?;
        d.set_item("cpu_features", feats)?;
    }
    #[cfg(not(target_arch = "x86_64"))]
    d.set_item("cpu_features", PyDict::new(py))?;
    d.set_item("threads", rayon::current_num_threads())?;
    Ok(d)
}

#[pymodule(gil_used = false)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("build_info", build_info(m.py())?)?;
    identity::register(m)?;
    mnemonic::register(m)?;
    protocol::register(m)?;
    onion::register(m)?;
    swarm::register(m)?;
    blinding::register(m)?;
    attachment::register(m)?;
    config::register(m)?;
    compression::register(m)?;
    group_keys::register(m)?;
    group_message::register(m)?;
    multi_encrypt::register(m)?;
    subaccount::register(m)?;
    ons::register(m)?;
    link::register(m)?;
    Ok(())
}
