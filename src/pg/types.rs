//! Values in PostgreSQL's binary format: parameters going out, columns
//! coming back. Only the types the service stores are supported (uuid,
//! text/varchar, bool, int2/4/8, timestamp/timestamptz, and arrays of
//! these), each with a fixed encoding, so nothing is guessed at run time.

use bytes::BytesMut;
use postgres_protocol::message::backend::DataRowBody;
use postgres_protocol::types as wire;
use postgres_protocol::IsNull;
pub use postgres_protocol::Oid;
use smallvec::SmallVec;

use super::error::{Error, Result};

/// Type OIDs (`pg_type.oid`), fixed for built-in types.
pub mod oid {
    use postgres_protocol::Oid;
    pub const BOOL: Oid = 16;
    pub const INT8: Oid = 20;
    pub const INT2: Oid = 21;
    pub const INT4: Oid = 23;
    pub const TEXT: Oid = 25;
    pub const VARCHAR: Oid = 1043;
    pub const TIMESTAMP: Oid = 1114;
    pub const TIMESTAMPTZ: Oid = 1184;
    pub const UUID: Oid = 2950;
    pub const BOOL_ARRAY: Oid = 1000;
    pub const INT2_ARRAY: Oid = 1005;
    pub const INT4_ARRAY: Oid = 1007;
    pub const TEXT_ARRAY: Oid = 1009;
    pub const VARCHAR_ARRAY: Oid = 1015;
    pub const INT8_ARRAY: Oid = 1016;
    pub const TIMESTAMP_ARRAY: Oid = 1115;
    pub const TIMESTAMPTZ_ARRAY: Oid = 1185;
    pub const UUID_ARRAY: Oid = 2951;
}

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
pub const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

/// A parameter value. Timestamps are microseconds since the Unix epoch, in
/// UTC (for `timestamp` columns, the UTC wall-clock time).
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    Null,
    Bool(bool),
    Int2(i16),
    Int4(i32),
    Int8(i64),
    /// text or varchar.
    Text(&'a str),
    Uuid([u8; 16]),
    Timestamp(i64),
    /// A one-dimensional array of `element` values (any may be `Null`).
    Array {
        element: Oid,
        items: &'a [Param<'a>],
    },
}

impl Param<'_> {
    /// Appends the binary encoding; `IsNull::Yes` for `Null`.
    pub(crate) fn encode(
        &self,
        buf: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *self {
            Param::Null => return Ok(IsNull::Yes),
            Param::Bool(v) => wire::bool_to_sql(v, buf),
            Param::Int2(v) => wire::int2_to_sql(v, buf),
            Param::Int4(v) => wire::int4_to_sql(v, buf),
            Param::Int8(v) => wire::int8_to_sql(v, buf),
            Param::Text(v) => wire::text_to_sql(v, buf),
            Param::Uuid(v) => wire::uuid_to_sql(v, buf),
            Param::Timestamp(unix_micros) => {
                wire::timestamp_to_sql(unix_micros - PG_EPOCH_UNIX_MICROS, buf)
            }
            Param::Array { element, items } => {
                if items.iter().any(|p| matches!(p, Param::Array { .. })) {
                    return Err("nested arrays are not supported".into());
                }
                let len = i32::try_from(items.len()).map_err(|_| "array too long")?;
                wire::array_to_sql(
                    [wire::ArrayDimension {
                        len,
                        lower_bound: 1,
                    }],
                    element,
                    items.iter(),
                    |p, buf| p.encode(buf),
                    buf,
                )?;
            }
        }
        Ok(IsNull::No)
    }
}

/// The rows and row count of one statement.
#[derive(Debug, Default)]
pub struct Rows {
    pub(crate) rows: Vec<DataRowBody>,
    /// From the command tag: rows inserted, updated, deleted or selected.
    pub affected: u64,
}

impl Rows {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<Result<Row<'_>>> {
        self.rows.get(i).map(Row::new)
    }

    pub fn iter(&self) -> impl Iterator<Item = Result<Row<'_>>> {
        self.rows.iter().map(Row::new)
    }
}

/// One row: column values borrowed from the received message.
pub struct Row<'a> {
    buf: &'a [u8],
    /// (offset, length) per column; length -1 is NULL.
    cols: SmallVec<[(u32, i32); 16]>,
}

impl<'a> Row<'a> {
    fn new(body: &'a DataRowBody) -> Result<Row<'a>> {
        let buf = body.buffer();
        let bad = || Error::Protocol("malformed DataRow".into());
        // DataRowBody's buffer starts after the column count.
        let mut cols = SmallVec::new();
        let mut pos = 0usize;
        while pos < buf.len() {
            let len_bytes: [u8; 4] = buf
                .get(pos..pos + 4)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(bad)?;
            let len = i32::from_be_bytes(len_bytes);
            pos += 4;
            cols.push((pos as u32, len));
            if len > 0 {
                pos = pos
                    .checked_add(len as usize)
                    .filter(|p| *p <= buf.len())
                    .ok_or_else(bad)?;
            }
        }
        Ok(Row { buf, cols })
    }

    pub fn len(&self) -> usize {
        self.cols.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cols.is_empty()
    }

    /// The raw value of column `i`, `None` for NULL.
    pub fn raw(&self, i: usize) -> Result<Option<&'a [u8]>> {
        let (off, len) = *self
            .cols
            .get(i)
            .ok_or_else(|| Error::Type(format!("no column {i}")))?;
        if len < 0 {
            return Ok(None);
        }
        let (off, len) = (off as usize, len as usize);
        Ok(self.buf.get(off..off + len))
    }

    fn non_null(&self, i: usize) -> Result<&'a [u8]> {
        self.raw(i)?
            .ok_or_else(|| Error::Type(format!("column {i} is NULL")))
    }

    pub fn uuid(&self, i: usize) -> Result<[u8; 16]> {
        wire::uuid_from_sql(self.non_null(i)?).map_err(|e| type_err(i, e))
    }

    pub fn opt_uuid(&self, i: usize) -> Result<Option<[u8; 16]>> {
        self.raw(i)?
            .map(|b| wire::uuid_from_sql(b).map_err(|e| type_err(i, e)))
            .transpose()
    }

    pub fn text(&self, i: usize) -> Result<&'a str> {
        wire::text_from_sql(self.non_null(i)?).map_err(|e| type_err(i, e))
    }

    pub fn opt_text(&self, i: usize) -> Result<Option<&'a str>> {
        self.raw(i)?
            .map(|b| wire::text_from_sql(b).map_err(|e| type_err(i, e)))
            .transpose()
    }

    pub fn bool(&self, i: usize) -> Result<bool> {
        wire::bool_from_sql(self.non_null(i)?).map_err(|e| type_err(i, e))
    }

    pub fn opt_bool(&self, i: usize) -> Result<Option<bool>> {
        self.raw(i)?
            .map(|b| wire::bool_from_sql(b).map_err(|e| type_err(i, e)))
            .transpose()
    }

    pub fn i16(&self, i: usize) -> Result<i16> {
        wire::int2_from_sql(self.non_null(i)?).map_err(|e| type_err(i, e))
    }

    pub fn i32(&self, i: usize) -> Result<i32> {
        wire::int4_from_sql(self.non_null(i)?).map_err(|e| type_err(i, e))
    }

    pub fn i64(&self, i: usize) -> Result<i64> {
        wire::int8_from_sql(self.non_null(i)?).map_err(|e| type_err(i, e))
    }

    /// A timestamp or timestamptz as microseconds since the Unix epoch.
    pub fn timestamp(&self, i: usize) -> Result<i64> {
        let pg = wire::timestamp_from_sql(self.non_null(i)?).map_err(|e| type_err(i, e))?;
        Ok(pg.saturating_add(PG_EPOCH_UNIX_MICROS))
    }

    pub fn opt_timestamp(&self, i: usize) -> Result<Option<i64>> {
        match self.raw(i)? {
            None => Ok(None),
            Some(_) => self.timestamp(i).map(Some),
        }
    }

    /// A one-dimensional array, each element decoded by `f` (`None` for NULL).
    pub fn array<T>(
        &self,
        i: usize,
        mut f: impl FnMut(Option<&'a [u8]>) -> Result<T>,
    ) -> Result<Vec<T>> {
        use fallible_iterator::FallibleIterator;
        let arr = wire::array_from_sql(self.non_null(i)?).map_err(|e| type_err(i, e))?;
        let mut values = arr.values();
        let mut out = Vec::new();
        while let Some(v) = values.next().map_err(|e| type_err(i, e))? {
            out.push(f(v)?);
        }
        Ok(out)
    }
}

fn type_err(i: usize, e: Box<dyn std::error::Error + Sync + Send>) -> Error {
    Error::Type(format!("column {i}: {e}"))
}

/// Decoders for array elements, for [`Row::array`].
pub mod element {
    use super::*;

    pub fn text(v: Option<&[u8]>) -> Result<Option<String>> {
        v.map(|b| {
            wire::text_from_sql(b)
                .map(str::to_string)
                .map_err(|e| Error::Type(e.to_string()))
        })
        .transpose()
    }

    pub fn uuid(v: Option<&[u8]>) -> Result<Option<[u8; 16]>> {
        v.map(|b| wire::uuid_from_sql(b).map_err(|e| Error::Type(e.to_string())))
            .transpose()
    }
}
