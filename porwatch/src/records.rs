//! Owned copies of decoded records, for tests and tools that keep them.

use std::borrow::Cow;

use porwatch_trace::{kind_spec, FieldValue, Hint, Record};

/// An owned field value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnedValue {
    U64(u64),
    I64(i64),
    Bytes(Vec<u8>),
}

impl From<FieldValue<'_>> for OwnedValue {
    fn from(v: FieldValue<'_>) -> Self {
        match v {
            FieldValue::U64(v) => OwnedValue::U64(v),
            FieldValue::I64(v) => OwnedValue::I64(v),
            FieldValue::Bytes(b) => OwnedValue::Bytes(b.to_vec()),
        }
    }
}

/// An owned record: kind by name, fields by name in wire order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedRecord {
    /// The CPU that wrote it (porwatch's index; `seq` is that CPU's).
    pub cpu: u32,
    pub seq: u64,
    pub ts: u64,
    /// Kind name (`trap`, ...; `unknown` for unknown kinds).
    pub kind: String,
    /// Kind code on the wire.
    pub kind_code: u8,
    pub fields: Vec<(String, OwnedValue)>,
}

impl From<&Record<'_>> for OwnedRecord {
    fn from(r: &Record<'_>) -> Self {
        OwnedRecord {
            cpu: r.cpu,
            seq: r.seq,
            ts: r.ts,
            kind: r.event.kind_name().to_string(),
            kind_code: r.event.kind_code(),
            fields: r.event.fields().map(|(spec, v)| (spec.name.to_string(), v.into())).collect(),
        }
    }
}

impl OwnedRecord {
    /// The field called `name`.
    pub fn get(&self, name: &str) -> Option<&OwnedValue> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// A `u64` field.
    pub fn get_u64(&self, name: &str) -> Option<u64> {
        match self.get(name)? {
            OwnedValue::U64(v) => Some(*v),
            _ => None,
        }
    }

    /// An `i64` field.
    pub fn get_i64(&self, name: &str) -> Option<i64> {
        match self.get(name)? {
            OwnedValue::I64(v) => Some(*v),
            _ => None,
        }
    }

    /// A `bytes` field.
    pub fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        match self.get(name)? {
            OwnedValue::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// A `bytes` field as (lossy UTF-8) text.
    pub fn get_text(&self, name: &str) -> Option<Cow<'_, str>> {
        self.get_bytes(name).map(String::from_utf8_lossy)
    }

    /// Name of the value of an enum field (`outcome` → `"emulated"`).
    pub fn get_enum(&self, name: &str) -> Option<&'static str> {
        let spec = kind_spec(self.kind_code)?.fields.iter().find(|f| f.name == name)?;
        match spec.hint {
            Hint::Enum(_) => spec.hint.enum_name(self.get_u64(name)?),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use porwatch_trace::Event;

    #[test]
    fn accessors() {
        let r = OwnedRecord::from(&Record {
            cpu: 0,
            seq: 1,
            ts: 2,
            event: Event::Psci { function: 0x8400_0000, arg0: 1, arg1: 2, arg2: 3, result: -1, conduit: 1 },
        });
        assert_eq!(r.kind, "psci");
        assert_eq!(r.kind_code, 7);
        assert_eq!(r.get_u64("function"), Some(0x8400_0000));
        assert_eq!(r.get_i64("result"), Some(-1));
        assert_eq!(r.get_u64("result"), None);
        assert_eq!(r.get_enum("conduit"), Some("hvc"));
        assert_eq!(r.get_enum("function"), None);
        assert_eq!(r.get("nope"), None);
        let p = OwnedRecord::from(&Record { cpu: 0, seq: 0, ts: 0, event: Event::Panic { message: b"hi" } });
        assert_eq!(p.get_text("message").as_deref(), Some("hi"));
        assert_eq!(p.get_bytes("message"), Some(&b"hi"[..]));
    }
}
