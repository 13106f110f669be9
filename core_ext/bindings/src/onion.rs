//! Onion requests: hop ciphers, layer codec, builder, peeler, replies, v4 bencode.
//!
//! Inputs are taken as `&[u8]` borrowed from immutable `bytes` objects, so the GIL can be
//! released around the crypto without copying (nothing can mutate a `bytes` object).

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use rayon::prelude::*;
use session_onion as core;
use session_onion::bencode::Kind;
use session_onion::{Decision, EncType, PeelError};
use zeroize::Zeroizing;

use crate::errors::{CoreError, CoreResult};
use crate::identity::PyIdentity;

fn enc(name: &str) -> CoreResult<EncType> {
    Ok(EncType::parse(name)?)
}

fn key32(b: &[u8], what: &'static str) -> CoreResult<[u8; 32]> {
    Ok(core::hop::key32(b, what)?)
}

/// Destination-side reply encryption for one peeled layer.
#[pyclass(frozen, module = "session._core", name = "ReplyCipher")]
pub struct PyReplyCipher(core::ReplyCipher);

#[pymethods]
impl PyReplyCipher {
    /// Encrypts `response` with the layer's key (then base64 when the layer asked for it).
    fn encrypt<'py>(&self, py: Python<'py>, response: &[u8]) -> Bound<'py, PyBytes> {
        let out = py.detach(|| self.0.encrypt(response));
        PyBytes::new(py, &out)
    }

    /// Wraps as the storage server does (`{"status": status, "body": body}`) and encrypts.
    fn encrypt_status<'py>(
        &self,
        py: Python<'py>,
        status: u16,
        body: &[u8],
    ) -> CoreResult<Bound<'py, PyBytes>> {
        let out = py.detach(|| self.0.encrypt_status(status, body))?;
        Ok(PyBytes::new(py, &out))
    }

    #[getter]
    fn enc_type(&self) -> &'static str {
        self.0.enc_type().as_str()
    }

    #[getter]
    fn base64(&self) -> bool {
        self.0.base64()
    }

    #[getter]
    fn json(&self) -> bool {
        self.0.embed_json()
    }

    fn __repr__(&self) -> String {
        format!(
            "ReplyCipher(enc_type={:?}, base64={}, json={})",
            self.0.enc_type().as_str(),
            if self.0.base64() { "True" } else { "False" },
            if self.0.embed_json() { "True" } else { "False" }
        )
    }
}

/// Client-side key that opens the destination's reply.
#[pyclass(frozen, module = "session._core", name = "ReplyKey")]
pub struct PyReplyKey(core::ReplyKey);

#[pymethods]
impl PyReplyKey {
    /// Opens a reply: raw ciphertext, its base64 form, or the legacy `{"result": b64}` wrapper.
    fn decrypt<'py>(&self, py: Python<'py>, body: &[u8]) -> CoreResult<Bound<'py, PyBytes>> {
        let out = py.detach(|| self.0.decrypt(body).map(Zeroizing::new))?;
        Ok(PyBytes::new(py, &out))
    }

    #[getter]
    fn enc_type(&self) -> &'static str {
        self.0.enc_type().as_str()
    }

    fn __repr__(&self) -> String {
        format!("ReplyKey(enc_type={:?})", self.0.enc_type().as_str())
    }
}

/// This node is the destination: run `payload` as a storage RPC, answer through `reply`.
#[pyclass(frozen, module = "session._core", name = "Deliver")]
pub struct PyDeliver {
    #[pyo3(get)]
    payload: Py<PyBytes>,
    #[pyo3(get)]
    reply: Py<PyReplyCipher>,
}

#[pymethods]
impl PyDeliver {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Deliver(payload=<{} bytes>)",
            self.payload.bind(py).as_bytes().len()
        )
    }
}

/// Forward `frame` unchanged to the node whose Ed25519 key is `next_ed25519`.
#[pyclass(frozen, module = "session._core", name = "Relay")]
pub struct PyRelay {
    #[pyo3(get)]
    next_ed25519: String,
    #[pyo3(get)]
    frame: Py<PyBytes>,
    #[pyo3(get)]
    hop_no: usize,
}

#[pymethods]
impl PyRelay {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Relay(next_ed25519={:?}, frame=<{} bytes>, hop_no={})",
            self.next_ed25519,
            self.frame.bind(py).as_bytes().len(),
            self.hop_no
        )
    }
}

/// POST `payload` to `url` (= `scheme://host[:port]target`) and pass the reply back unchanged.
#[pyclass(frozen, module = "session._core", name = "Proxy")]
pub struct PyProxy {
    #[pyo3(get)]
    host: String,
    #[pyo3(get)]
    port: u16,
    #[pyo3(get)]
    scheme: String,
    #[pyo3(get)]
    target: String,
    #[pyo3(get)]
    payload: Py<PyBytes>,
    #[pyo3(get)]
    reply: Py<PyReplyCipher>,
}

#[pymethods]
impl PyProxy {
    #[getter]
    fn url(&self) -> String {
        core::peel::proxy_url(&self.scheme, &self.host, self.port, &self.target)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Proxy(url={:?}, payload=<{} bytes>)",
            self.url(),
            self.payload.bind(py).as_bytes().len()
        )
    }
}

fn decision_to_py(py: Python<'_>, d: Decision) -> PyResult<Py<PyAny>> {
    Ok(match d {
        Decision::Deliver { payload, reply } => Py::new(
            py,
            PyDeliver {
                payload: PyBytes::new(py, &payload).unbind(),
                reply: Py::new(py, PyReplyCipher(reply))?,
            },
        )?
        .into_any(),
        Decision::Relay {
            next_ed25519,
            frame,
            hop_no,
        } => Py::new(
            py,
            PyRelay {
                next_ed25519,
                frame: PyBytes::new(py, &frame).unbind(),
                hop_no,
            },
        )?
        .into_any(),
        Decision::Proxy {
            host,
            port,
            scheme,
            target,
            payload,
            reply,
        } => Py::new(
            py,
            PyProxy {
                host,
                port,
                scheme,
                target,
                payload: PyBytes::new(py, &payload).unbind(),
                reply: Py::new(py, PyReplyCipher(reply))?,
            },
        )?
        .into_any(),
    })
}

/// The `OnionError` for a failed peel; carries `.reply` (a ReplyCipher or None): when set, the
/// node answers with `reply.encrypt_status(status, message)` instead of a plain error.
fn peel_error(py: Python<'_>, e: PeelError) -> PyErr {
    let err: PyErr = CoreError::from(e.error).into();
    let reply: Py<PyAny> = match e.reply {
        Some(r) => match Py::new(py, PyReplyCipher(r)) {
            Ok(obj) => obj.into_any(),
            Err(e) => return e,
        },
        None => py.None(),
    };
    if let Err(e) = err.value(py).setattr("reply", reply) {
        return e;
    }
    err
}

/// A node's onion peeler, holding its X25519 secret key inside Rust.
#[pyclass(frozen, module = "session._core", name = "Peeler")]
pub struct PyPeeler(core::Peeler);

#[pymethods]
impl PyPeeler {
    /// `Peeler(identity_or_secret)`: a `session.identity.Identity` or a 32-byte X25519 secret.
    #[new]
    fn new(identity_or_secret: &Bound<'_, PyAny>) -> CoreResult<Self> {
        if let Ok(id) = identity_or_secret.cast::<PyIdentity>() {
            let sk = Zeroizing::new(id.get().x25519_secret());
            return Ok(PyPeeler(core::Peeler::new(&sk)));
        }
        if let Ok(b) = identity_or_secret.cast::<PyBytes>() {
            let sk = Zeroizing::new(key32(b.as_bytes(), "X25519 secret key must be 32 bytes")?);
            return Ok(PyPeeler(core::Peeler::new(&sk)));
        }
        Err(CoreError::from(core::Error::InvalidInput(
            "Peeler needs an Identity or a 32-byte X25519 secret key".into(),
        )))
    }

    /// From a raw 32-byte X25519 secret key.
    #[classmethod]
    fn from_x25519_secret(
        _cls: &Bound<'_, pyo3::types::PyType>,
        secret: &[u8],
    ) -> CoreResult<Self> {
        let sk = Zeroizing::new(key32(secret, "X25519 secret key must be 32 bytes")?);
        Ok(PyPeeler(core::Peeler::new(&sk)))
    }

    /// The node's X25519 public key.
    #[getter]
    fn x25519_public<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.public_key())
    }

    /// Peels one frame: returns Deliver, Relay or Proxy; raises OnionError (with `.status` and
    /// `.reply`).
    fn peel(&self, py: Python<'_>, frame: &[u8]) -> PyResult<Py<PyAny>> {
        match py.detach(|| self.0.peel(frame)) {
            Ok(d) => decision_to_py(py, d),
            Err(e) => Err(peel_error(py, e)),
        }
    }

    /// Peels many frames in parallel (rayon); failures come back as OnionError instances.
    fn peel_many<'py>(
        &self,
        py: Python<'py>,
        frames: Vec<Bound<'py, PyBytes>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let slices: Vec<&[u8]> = frames.iter().map(|b| b.as_bytes()).collect();
        let results: Vec<Result<Decision, PeelError>> =
            py.detach(|| slices.par_iter().map(|f| self.0.peel(f)).collect());
        let out = PyList::empty(py);
        for r in results {
            match r {
                Ok(d) => out.append(decision_to_py(py, d)?)?,
                Err(e) => out.append(peel_error(py, e).into_value(py))?,
            }
        }
        Ok(out)
    }

    /// What a v4 HTTP server does with a proxied body: returns `(v4 request, ReplyCipher)`.
    fn open_request<'py>(
        &self,
        py: Python<'py>,
        body: &[u8],
    ) -> CoreResult<(Bound<'py, PyBytes>, PyReplyCipher)> {
        let (pt, reply) = py.detach(|| self.0.open_request(body))?;
        Ok((PyBytes::new(py, &pt), PyReplyCipher(reply)))
    }

    fn __repr__(&self) -> String {
        format!(
            "Peeler(x25519_public={:?})",
            hex::encode(self.0.public_key())
        )
    }
}

/// Client-side hop encryption (random nonce unless `nonce` is given, for vectors only).
#[pyfunction]
#[pyo3(signature = (enc_type, client_secret, node_public, plaintext, nonce=None))]
fn onion_encrypt_hop<'py>(
    py: Python<'py>,
    enc_type: &str,
    client_secret: &[u8],
    node_public: &[u8],
    plaintext: &[u8],
    nonce: Option<&[u8]>,
) -> CoreResult<Bound<'py, PyBytes>> {
    let e = enc(enc_type)?;
    let sk = Zeroizing::new(key32(
        client_secret,
        "client X25519 secret key must be 32 bytes",
    )?);
    let pk = key32(node_public, "node X25519 public key must be 32 bytes")?;
    let out = py.detach(|| core::hop::encrypt_hop_with_nonce(e, &sk, &pk, plaintext, nonce))?;
    Ok(PyBytes::new(py, &out))
}

/// Node-side hop decryption.
#[pyfunction]
fn onion_decrypt_hop<'py>(
    py: Python<'py>,
    enc_type: &str,
    node_secret: &[u8],
    client_public: &[u8],
    ciphertext: &[u8],
) -> CoreResult<Bound<'py, PyBytes>> {
    let e = enc(enc_type)?;
    let sk = Zeroizing::new(key32(
        node_secret,
        "node X25519 secret key must be 32 bytes",
    )?);
    let pk = key32(client_public, "client X25519 public key must be 32 bytes")?;
    let out = py.detach(|| core::decrypt_hop(e, &sk, &pk, ciphertext).map(Zeroizing::new))?;
    Ok(PyBytes::new(py, &out))
}

/// `LE32(len blob) ‖ blob ‖ json` (json must be a JSON object's text).
#[pyfunction]
fn onion_layer_encode<'py>(
    py: Python<'py>,
    blob: &[u8],
    json: &[u8],
) -> CoreResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(py, &core::layer::encode(blob, json)?))
}

/// Splits a layer into `(blob, json text)`; the JSON is checked to be one object.
#[pyfunction]
fn onion_layer_decode<'py>(
    py: Python<'py>,
    data: &[u8],
) -> CoreResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let (blob, json) = core::layer::decode(data)?;
    Ok((PyBytes::new(py, blob), PyBytes::new(py, json)))
}

fn hops(path: Vec<(String, Vec<u8>)>) -> CoreResult<Vec<core::HopNode>> {
    path.into_iter()
        .map(|(ed, x)| {
            Ok(core::HopNode {
                ed25519_hex: ed,
                x25519: key32(&x, "hop X25519 public key must be 32 bytes")?,
            })
        })
        .collect()
}

fn run_build<'py>(
    py: Python<'py>,
    path: Vec<core::HopNode>,
    dest: core::Destination,
    payload: &[u8],
    enc_type: &str,
) -> CoreResult<(Bound<'py, PyBytes>, PyReplyKey)> {
    let e = enc(enc_type)?;
    let (frame, key) = py.detach(|| core::build(&path, &dest, payload, e))?;
    Ok((PyBytes::new(py, &frame), PyReplyKey(key)))
}

/// Builds an onion to a storage node: returns `(frame for the guard, ReplyKey)`.
#[pyfunction]
fn onion_build_to_node<'py>(
    py: Python<'py>,
    path: Vec<(String, Vec<u8>)>,
    ed25519_hex: String,
    x25519: &[u8],
    payload: &[u8],
    enc_type: &str,
) -> CoreResult<(Bound<'py, PyBytes>, PyReplyKey)> {
    let dest = core::Destination::Node(core::HopNode {
        ed25519_hex,
        x25519: key32(x25519, "destination X25519 public key must be 32 bytes")?,
    });
    run_build(py, hops(path)?, dest, payload, enc_type)
}

/// Builds an onion to a v4 HTTP server: returns `(frame for the guard, ReplyKey)`.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn onion_build_to_server<'py>(
    py: Python<'py>,
    path: Vec<(String, Vec<u8>)>,
    host: String,
    target: String,
    x25519: &[u8],
    scheme: String,
    port: u16,
    payload: &[u8],
    enc_type: &str,
) -> CoreResult<(Bound<'py, PyBytes>, PyReplyKey)> {
    let dest = core::Destination::Server {
        host,
        target,
        x25519: key32(x25519, "server X25519 public key must be 32 bytes")?,
        scheme,
        port,
    };
    run_build(py, hops(path)?, dest, payload, enc_type)
}

fn kind(k: &str) -> PyResult<Kind> {
    match k {
        "request" => Ok(Kind::Request),
        "response" => Ok(Kind::Response),
        _ => Err(PyTypeError::new_err("kind must be 'request' or 'response'")),
    }
}

/// v4 framing: `l <len>:<meta json> [<len>:<body>] e`.
#[pyfunction]
#[pyo3(signature = (kind_name, meta_json, body=None))]
fn onion_v4_encode<'py>(
    py: Python<'py>,
    kind_name: &str,
    meta_json: &[u8],
    body: Option<&[u8]>,
) -> PyResult<Bound<'py, PyBytes>> {
    let k = kind(kind_name)?;
    let out = core::bencode::encode(k, meta_json, body).map_err(CoreError::from)?;
    Ok(PyBytes::new(py, &out))
}

/// Decodes v4 framing into `(meta json text, body or None)`.
#[pyfunction]
fn onion_v4_decode<'py>(
    py: Python<'py>,
    kind_name: &str,
    data: &[u8],
) -> PyResult<(Bound<'py, PyBytes>, Option<Bound<'py, PyBytes>>)> {
    let k = kind(kind_name)?;
    let (meta, body) = core::bencode::decode(k, data).map_err(CoreError::from)?;
    Ok((PyBytes::new(py, meta), body.map(|b| PyBytes::new(py, b))))
}

/// Whether a proxy target passes the storage server's URL filter.
#[pyfunction]
fn onion_url_target_allowed(target: &str) -> bool {
    core::url_target_allowed(target)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyReplyCipher>()?;
    m.add_class::<PyReplyKey>()?;
    m.add_class::<PyDeliver>()?;
    m.add_class::<PyRelay>()?;
    m.add_class::<PyProxy>()?;
    m.add_class::<PyPeeler>()?;
    m.add_function(wrap_pyfunction!(onion_encrypt_hop, m)?)?;
    m.add_function(wrap_pyfunction!(onion_decrypt_hop, m)?)?;
    m.add_function(wrap_pyfunction!(onion_layer_encode, m)?)?;
    m.add_function(wrap_pyfunction!(onion_layer_decode, m)?)?;
    m.add_function(wrap_pyfunction!(onion_build_to_node, m)?)?;
    m.add_function(wrap_pyfunction!(onion_build_to_server, m)?)?;
    m.add_function(wrap_pyfunction!(onion_v4_encode, m)?)?;
    m.add_function(wrap_pyfunction!(onion_v4_decode, m)?)?;
    m.add_function(wrap_pyfunction!(onion_url_target_allowed, m)?)?;
    m.add("ONION_MAX_HOPS", core::MAX_ONION_HOPS)?;
    Ok(())
}
