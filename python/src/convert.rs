//! Values crossing the boundary: Python values to registry values (params,
//! metadata, inline artifacts) and back, engine records to plain Python
//! values, and ids parsed from their string forms.

use std::collections::BTreeMap;
use std::str::FromStr;

use modelvault::query::Value;
use modelvault::{BlobId, EntityId};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::errors::{map, Error, InvalidInput, R};

pub(crate) fn entity(s: &str) -> R<EntityId> {
    map(EntityId::from_str(s))
}

pub(crate) fn blob_id(s: &str) -> R<BlobId> {
    map(BlobId::from_str(s))
}

/// A Python value as a registry value: int, float, bool, str, or a list or
/// tuple of those. Anything else (a dict, None, an object) is a TypeError
/// naming the key it was given for.
pub(crate) fn to_value(key: &str, v: &Bound<'_, PyAny>) -> R<Value> {
    if v.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(v.extract()?));
    }
    if v.is_instance_of::<PyInt>() {
        return v.extract::<i64>().map(Value::Int).map_err(|_| {
            InvalidInput::new_err(format!(
                "invalid value of {key:?}: integer out of the 64-bit range"
            ))
        });
    }
    if v.is_instance_of::<PyFloat>() {
        return Ok(Value::Float(v.extract()?));
    }
    if v.is_instance_of::<PyString>() {
        return Ok(Value::Str(v.extract()?));
    }
    if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
        let mut out = Vec::new();
        for item in v.try_iter()? {
            out.push(to_value(key, &item?)?);
        }
        return Ok(Value::List(out));
    }
    // Other numbers (NumPy scalars, say) by the protocols int and float use.
    if v.hasattr("__index__")? {
        if let Ok(i) = v.extract::<i64>() {
            return Ok(Value::Int(i));
        }
    } else if v.hasattr("__float__")? {
        if let Ok(f) = v.extract::<f64>() {
            return Ok(Value::Float(f));
        }
    }
    Err(PyTypeError::new_err(format!(
        "value of {key:?} must be int, float, bool, str or a list of them, not {}",
        v.get_type().name()?
    )))
}

/// A dict of str keys as registry values (`None`: none).
pub(crate) fn to_values(d: Option<&Bound<'_, PyDict>>) -> R<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    if let Some(d) = d {
        for (k, v) in d.iter() {
            let k: String = k
                .extract()
                .map_err(|_| PyTypeError::new_err("keys must be str"))?;
            let v = to_value(&k, &v)?;
            out.insert(k, v);
        }
    }
    Ok(out)
}

pub(crate) fn value_to_py(py: Python<'_>, v: &Value) -> R<PyObject> {
    Ok(match v {
        Value::Int(i) => i.into_pyobject(py)?.into_any().unbind(),
        Value::Float(f) => f.into_pyobject(py)?.into_any().unbind(),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any().unbind(),
        Value::Str(s) => PyString::new(py, s).into_any().unbind(),
        Value::List(l) => {
            let items = l
                .iter()
                .map(|x| value_to_py(py, x))
                .collect::<R<Vec<_>>>()?;
            PyList::new(py, items)?.into_any().unbind()
        }
    })
}

pub(crate) fn values_to_py(py: Python<'_>, m: &BTreeMap<String, Value>) -> R<PyObject> {
    let d = PyDict::new(py);
    for (k, v) in m {
        d.set_item(k, value_to_py(py, v)?)?;
    }
    Ok(d.into_any().unbind())
}

/// A serializable record as Python values, through its JSON form (the
/// records' human-readable serde forms are the ones the HTTP API uses).
pub(crate) fn record<T: serde::Serialize>(py: Python<'_>, v: &T) -> R<PyObject> {
    let s = serde_json::to_string(v).map_err(|e| Error::new_err(format!("internal error: {e}")))?;
    Ok(py.import("json")?.call_method1("loads", (s,))?.unbind())
}

/// A record as `record` gives it, with the registry values under `key`
/// replaced by the values as stored (JSON has no NaN or infinities).
pub(crate) fn record_with_values<T: serde::Serialize>(
    py: Python<'_>,
    v: &T,
    key: &str,
    values: &BTreeMap<String, Value>,
) -> R<PyObject> {
    let d = record(py, v)?;
    d.bind(py).set_item(key, values_to_py(py, values)?)?;
    Ok(d)
}
