//! Swarm authentication of 03-group members: admin-issued auth data, subaccount request
//! signatures and the storage server's check.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use session_crypto::{keys, subaccount as sub};
use zeroize::Zeroizing;

use crate::errors::{CoreError, CoreResult};
use crate::identity::PyIdentity;

fn seed32(seed: &[u8]) -> CoreResult<Zeroizing<[u8; 32]>> {
    let arr: [u8; 32] = seed
        .try_into()
        .map_err(|_| session_crypto::Error::InvalidKey("a group seed must be 32 bytes"))?;
    Ok(Zeroizing::new(arr))
}

fn pk32(pk: &[u8]) -> CoreResult<[u8; 32]> {
    Ok(pk
        .try_into()
        .map_err(|_| session_crypto::Error::InvalidKey("a group public key must be 32 bytes"))?)
}

/// What an admin issues for a member: the auth data, or only the token.
fn grant<'py>(
    py: Python<'py>,
    group_seed: &[u8],
    member_session_id: &str,
    write: bool,
    delete: bool,
    token_only: bool,
) -> CoreResult<Bound<'py, PyBytes>> {
    let seed = seed32(group_seed)?;
    let x = keys::parse_session_id(member_session_id)?;
    Ok(if token_only {
        PyBytes::new(py, &sub::make_token(&seed, &x, write, delete)?)
    } else {
        PyBytes::new(py, &sub::make_auth_data(&seed, &x, write, delete)?)
    })
}

/// Admin: the 100-byte auth data granting `member_session_id` access to the group's swarm.
#[pyfunction]
#[pyo3(signature = (group_seed, member_session_id, write = true, delete = false))]
fn subaccount_auth_data<'py>(
    py: Python<'py>,
    group_seed: &[u8],
    member_session_id: &str,
    write: bool,
    delete: bool,
) -> CoreResult<Bound<'py, PyBytes>> {
    grant(py, group_seed, member_session_id, write, delete, false)
}

/// Admin: the 36-byte token the member will present (to revoke it, for instance).
#[pyfunction]
#[pyo3(signature = (group_seed, member_session_id, write = true, delete = false))]
fn subaccount_token<'py>(
    py: Python<'py>,
    group_seed: &[u8],
    member_session_id: &str,
    write: bool,
    delete: bool,
) -> CoreResult<Bound<'py, PyBytes>> {
    grant(py, group_seed, member_session_id, write, delete, true)
}

/// Member: (subaccount token, admin signature, request signature) for `message`.
#[pyfunction]
fn subaccount_sign<'py>(
    py: Python<'py>,
    member: &Bound<'py, PyIdentity>,
    auth_data: &[u8],
    message: &[u8],
) -> PyResult<Bound<'py, PyTuple>> {
    let s = sub::sign(member.get().keys(), auth_data, message).map_err(CoreError::from)?;
    let t = (
        PyBytes::new(py, &s.token),
        PyBytes::new(py, &s.subaccount_sig),
        PyBytes::new(py, &s.signature),
    );
    t.into_pyobject(py)
}

/// Member: raises unless `auth_data` is the group's valid grant for `member` with these rights.
#[pyfunction]
#[pyo3(signature = (group_pk, member, auth_data, write = false, delete = false))]
fn subaccount_verify_auth_data(
    group_pk: &[u8],
    member: &Bound<'_, PyIdentity>,
    auth_data: &[u8],
    write: bool,
    delete: bool,
) -> CoreResult<()> {
    Ok(sub::verify_auth_data(
        &pk32(group_pk)?,
        member.get().keys(),
        auth_data,
        write,
        delete,
    )?)
}

/// Storage server: raises unless the subaccount may make this request on the group's swarm.
#[pyfunction]
#[pyo3(signature = (group_pk, token, subaccount_sig, signature, message, write = false, delete = false))]
#[allow(clippy::too_many_arguments)]
fn subaccount_verify_request(
    group_pk: &[u8],
    token: &[u8],
    subaccount_sig: &[u8],
    signature: &[u8],
    message: &[u8],
    write: bool,
    delete: bool,
) -> CoreResult<()> {
    Ok(sub::verify_request(
        &pk32(group_pk)?,
        token,
        subaccount_sig,
        signature,
        message,
        write,
        delete,
    )?)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(subaccount_auth_data, m)?)?;
    m.add_function(wrap_pyfunction!(subaccount_token, m)?)?;
    m.add_function(wrap_pyfunction!(subaccount_sign, m)?)?;
    m.add_function(wrap_pyfunction!(subaccount_verify_auth_data, m)?)?;
    m.add_function(wrap_pyfunction!(subaccount_verify_request, m)?)?;
    Ok(())
}
