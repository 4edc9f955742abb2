//! Bounds-checked payload writer and reader used by the generated
//! encode/decode code. Neither can panic.

use crate::{varint, DecodeError};

/// Appends to a fixed buffer; every method returns `None` once full.
pub(crate) struct Writer<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl<'b> Writer<'b> {
    pub(crate) fn new(buf: &'b mut [u8]) -> Self {
        Writer { buf, len: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn byte(&mut self, b: u8) -> Option<()> {
        *self.buf.get_mut(self.len)? = b;
        self.len += 1;
        Some(())
    }

    pub(crate) fn u64(&mut self, v: u64) -> Option<()> {
        let n = varint::encode(v, self.buf.get_mut(self.len..)?)?;
        self.len += n;
        Some(())
    }

    pub(crate) fn i64(&mut self, v: i64) -> Option<()> {
        self.u64(varint::zigzag(v))
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) -> Option<()> {
        self.u64(b.len() as u64)?;
        self.raw(b)
    }

    pub(crate) fn raw(&mut self, b: &[u8]) -> Option<()> {
        let end = self.len.checked_add(b.len())?;
        self.buf.get_mut(self.len..end)?.copy_from_slice(b);
        self.len = end;
        Some(())
    }
}

/// Consumes a payload front to back.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    pub(crate) fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        match varint::decode(self.data) {
            Ok((v, n)) => {
                self.data = self.data.get(n..).unwrap_or(&[]);
                Ok(v)
            }
            Err(varint::VarintError::Truncated) => Err(DecodeError::Truncated { field }),
            Err(varint::VarintError::Overflow) => Err(DecodeError::BadVarint { field }),
        }
    }

    pub(crate) fn i64(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        self.u64(field).map(varint::unzigzag)
    }

    pub(crate) fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.u64(field)?;
        let len = usize::try_from(len).map_err(|_| DecodeError::Truncated { field })?;
        let (head, rest) = self.data.split_at_checked(len).ok_or(DecodeError::Truncated { field })?;
        self.data = rest;
        Ok(head)
    }

    /// Everything not consumed yet.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.data
    }
}
