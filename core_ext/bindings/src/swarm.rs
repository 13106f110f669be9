//! Swarm math: swarm space, closest swarm, message hash, and the `SwarmIndex` class.
//!
//! Lookups take microseconds, so they keep the GIL (releasing it would cost more than the
//! work); hashing large messages releases it.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use session_swarm as sw;

use crate::errors::CoreResult;

/// Messages at least this large are hashed with the GIL released.
const DETACH_HASH_BYTES: usize = 4096;

fn swarm_ids_arg(obj: &Bound<'_, PyAny>) -> CoreResult<Vec<u64>> {
    if obj.is_instance_of::<pyo3::types::PyString>() || obj.is_instance_of::<pyo3::types::PyBytes>()
    {
        return Err(sw::Error::InvalidSwarmId.into());
    }
    if let Ok(ids) = obj.extract::<Vec<u64>>() {
        return Ok(ids);
    }
    // Any other iterable (generator, set, range, ...): element by element.
    let iter = obj.try_iter().map_err(|_| sw::Error::InvalidSwarmId)?;
    let mut ids = Vec::new();
    for item in iter {
        let item = item.map_err(|_| sw::Error::InvalidSwarmId)?;
        ids.push(
            item.extract::<u64>()
                .map_err(|_| sw::Error::InvalidSwarmId)?,
        );
    }
    Ok(ids)
}

fn namespace_arg(obj: &Bound<'_, PyAny>) -> CoreResult<i16> {
    if obj.is_instance_of::<pyo3::types::PyBool>() {
        return Err(sw::Error::InvalidNamespace(format!("{obj}")).into());
    }
    obj.extract::<i16>().map_err(|_| {
        let shown = obj
            .repr()
            .map(|r| r.to_string())
            .unwrap_or_else(|_| "?".into());
        let shown: String = shown.chars().take(40).collect();
        sw::Error::InvalidNamespace(shown).into()
    })
}

/// Swarm-space position (u64) of a 66-hex-digit account ID (any prefix byte).
#[pyfunction]
fn swarm_space(account_id: &str) -> CoreResult<u64> {
    Ok(sw::swarm_space(account_id)?)
}

/// Closest swarm id for an account ID over swarm ids in any order.
#[pyfunction]
fn closest_swarm(account_id: &str, swarm_ids: &Bound<'_, PyAny>) -> CoreResult<u64> {
    let space = sw::AccountId::parse(account_id)?.swarm_space();
    // Scanned while iterating (any iterable), without collecting the ids first.
    if swarm_ids.is_instance_of::<pyo3::types::PyString>()
        || swarm_ids.is_instance_of::<pyo3::types::PyBytes>()
    {
        return Err(sw::Error::InvalidSwarmId.into());
    }
    let mut scan = sw::ClosestScan::new(space);
    for item in swarm_ids
        .try_iter()
        .map_err(|_| sw::Error::InvalidSwarmId)?
    {
        let item = item.map_err(|_| sw::Error::InvalidSwarmId)?;
        scan.push(
            item.extract::<u64>()
                .map_err(|_| sw::Error::InvalidSwarmId)?,
        )?;
    }
    Ok(scan.finish()?)
}

/// Storage message hash: unpadded base64 of BLAKE2b-256(account ‖ namespace ‖ data).
#[pyfunction]
fn message_hash(
    py: Python<'_>,
    account_id: &str,
    namespace: &Bound<'_, PyAny>,
    data: &[u8],
) -> CoreResult<String> {
    let account = sw::AccountId::parse(account_id)?;
    let ns = namespace_arg(namespace)?;
    Ok(if data.len() >= DETACH_HASH_BYTES {
        let owned = data.to_vec();
        py.detach(move || sw::message_hash_of(&account, ns, &owned))
    } else {
        sw::message_hash_of(&account, ns, data)
    })
}

/// Sorted, deduplicated swarm ids for repeated closest-swarm lookups (binary search).
#[pyclass(frozen, module = "session._core", name = "SwarmIndex")]
pub struct PySwarmIndex(sw::SwarmIndex);

#[pymethods]
impl PySwarmIndex {
    #[new]
    fn new(swarm_ids: &Bound<'_, PyAny>) -> CoreResult<Self> {
        Ok(Self(sw::SwarmIndex::new(swarm_ids_arg(swarm_ids)?)?))
    }

    /// Closest swarm id for a 66-hex-digit account ID.
    fn closest(&self, account_id: &str) -> CoreResult<u64> {
        Ok(self.0.closest(account_id)?)
    }

    /// The swarm ids, ascending.
    #[getter]
    fn swarm_ids<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.0.ids())
    }

    fn __len__(&self) -> usize {
        self.0.len()
    }

    fn __contains__(&self, swarm_id: &Bound<'_, PyAny>) -> bool {
        swarm_id
            .extract::<u64>()
            .map(|id| self.0.contains(id))
            .unwrap_or(false)
    }

    fn __repr__(&self) -> String {
        format!("SwarmIndex({} swarms)", self.0.len())
    }
}

/// A plain unsigned ``store`` body's fields, ``(prefix, key, namespace, timestamp, expiry,
/// data)``, or None: the request is something else, and the full parser decides
/// (``session.proto.rpc.parse_request``; see ``session_swarm::plain_store``).
#[pyfunction]
#[allow(clippy::type_complexity)]
fn parse_plain_store<'py>(
    py: Python<'py>,
    body: &[u8],
) -> Option<(u8, Bound<'py, PyBytes>, i16, i64, i64, Bound<'py, PyBytes>)> {
    let s = sw::parse_plain_store(body)?;
    Some((
        s.prefix,
        PyBytes::new(py, &s.key),
        s.namespace,
        s.timestamp,
        s.expiry,
        PyBytes::new(py, &s.data),
    ))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(swarm_space, m)?)?;
    m.add_function(wrap_pyfunction!(closest_swarm, m)?)?;
    m.add_function(wrap_pyfunction!(message_hash, m)?)?;
    m.add_function(wrap_pyfunction!(parse_plain_store, m)?)?;
    m.add_class::<PySwarmIndex>()?;
    Ok(())
}
