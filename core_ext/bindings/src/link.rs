//! Node-to-node links (`session_link`): the Noise handshake and the sealed, length-prefixed
//! messages a node's link writes and reads (the Python side owns the sockets).

use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyList};
use session_link as sl;

use crate::errors::CoreResult;

/// Inputs at least this long are handled with the GIL released (a bulk onion frame, a file).
const DETACH_MIN: usize = 64 * 1024;

/// One side of a link's handshake (`initiator` connects, `responder` listens).
#[pyclass(module = "session._core", name = "LinkHandshake")]
struct LinkHandshake {
    inner: Option<sl::Handshake>,
}

fn used() -> sl::Error {
    sl::Error::Handshake("this handshake already became a link".into())
}

#[pymethods]
impl LinkHandshake {
    /// The connecting side: our X25519 secret key and the listener's public key.
    #[staticmethod]
    fn initiator(local_secret: &[u8], remote_public: &[u8]) -> CoreResult<Self> {
        Ok(Self {
            inner: Some(sl::Handshake::initiator(local_secret, remote_public)?),
        })
    }

    /// The listening side: our X25519 secret key.
    #[staticmethod]
    fn responder(local_secret: &[u8]) -> CoreResult<Self> {
        Ok(Self {
            inner: Some(sl::Handshake::responder(local_secret)?),
        })
    }

    /// Our next handshake message as a frame ready to write.
    fn write<'py>(&mut self, py: Python<'py>) -> CoreResult<Bound<'py, PyBytes>> {
        let hs = self.inner.as_mut().ok_or_else(used)?;
        Ok(PyBytes::new(py, &hs.write()?))
    }

    /// Read the peer's handshake message (a frame's content, without its 4-byte length).
    fn read(&mut self, message: &[u8]) -> CoreResult<()> {
        Ok(self.inner.as_mut().ok_or_else(used)?.read(message)?)
    }

    /// The peer's X25519 public key once its handshake message was read, else None.
    #[getter]
    fn remote_static<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        let k = self.inner.as_ref()?.remote_static()?;
        Some(PyBytes::new(py, &k))
    }

    /// The established link (once finished); the handshake cannot be used after.
    #[pyo3(name = "into_link")]
    fn take_link(&mut self) -> CoreResult<Link> {
        let hs = self.inner.take().ok_or_else(used)?;
        Ok(Link {
            inner: hs.into_link()?,
        })
    }
}

/// An established link: `seal` makes the frame of a message, `feed` opens what was read.
#[pyclass(module = "session._core", name = "Link")]
struct Link {
    inner: sl::Link,
}

#[pymethods]
impl Link {
    /// The frame of one message of `parts` (no parts: a heartbeat).
    fn seal<'py>(
        &mut self,
        py: Python<'py>,
        parts: Vec<PyBackedBytes>,
    ) -> CoreResult<Bound<'py, PyBytes>> {
        let slices: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
        let size: usize = slices.iter().map(|p| p.len()).sum();
        let inner = &mut self.inner;
        let frame = if size >= DETACH_MIN {
            py.detach(|| inner.seal(&slices))?
        } else {
            inner.seal(&slices)?
        };
        Ok(PyBytes::new(py, &frame))
    }

    /// Bytes read from the connection → the messages they complete (lists of parts; an empty
    /// list is a heartbeat). Raises when the peer sent what no link sends: close the link.
    fn feed<'py>(&mut self, py: Python<'py>, data: &[u8]) -> CoreResult<Bound<'py, PyList>> {
        let inner = &mut self.inner;
        let msgs = if data.len() >= DETACH_MIN || inner.pending() >= DETACH_MIN {
            py.detach(|| inner.feed(data))?
        } else {
            inner.feed(data)?
        };
        let out = PyList::empty(py);
        for m in msgs {
            let parts =
                PyList::new(py, m.parts().map(|p| PyBytes::new(py, p))).expect("a list of bytes");
            out.append(parts).expect("append to a new list");
        }
        Ok(out)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<LinkHandshake>()?;
    m.add_class::<Link>()?;
    Ok(())
}
