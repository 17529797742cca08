//! Messages as JSON, written straight into the response body: ids as
//! hyphenated UUIDs, timestamps as RFC 3339 UTC with microseconds and `Z`,
//! every field present (`null` when absent).

use std::io::Write;

use uuid::Uuid;

use crate::store::Message;
use crate::time::{write_rfc3339_micros, Civil, RFC3339_MICROS_LEN};

/// JSON for `Message` (strings escaped by serde_json).
pub fn write_message(out: &mut impl Write, m: &Message) -> std::io::Result<()> {
    out.write_all(b"{\"id\":")?;
    uuid(out, Some(m.id))?;
    out.write_all(b",\"conversation_id\":")?;
    uuid(out, Some(m.conversation_id))?;
    out.write_all(b",\"sender_id\":")?;
    uuid(out, m.sender_id)?;
    out.write_all(b",\"contact_id\":")?;
    uuid(out, m.contact_id)?;
    out.write_all(b",\"content\":")?;
    string(out, Some(&m.content))?;
    out.write_all(b",\"message_type\":")?;
    string(out, m.message_type.as_deref())?;
    out.write_all(b",\"content_type\":")?;
    string(out, m.content_type.as_deref())?;
    out.write_all(b",\"private\":")?;
    out.write_all(match m.private {
        Some(true) => b"true",
        Some(false) => b"false",
        None => b"null",
    })?;
    out.write_all(b",\"status\":")?;
    string(out, m.status.as_deref())?;
    out.write_all(b",\"source_id\":")?;
    string(out, m.source_id.as_deref())?;
    out.write_all(b",\"created_at\":")?;
    timestamp(out, m.created_at)?;
    out.write_all(b",\"updated_at\":")?;
    timestamp(out, m.updated_at)?;
    out.write_all(b"}")
}

/// `[m, m, ...]`.
pub fn write_messages(out: &mut impl Write, messages: &[Message]) -> std::io::Result<()> {
    out.write_all(b"[")?;
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        write_message(out, m)?;
    }
    out.write_all(b"]")
}

fn uuid(out: &mut impl Write, u: Option<Uuid>) -> std::io::Result<()> {
    match u {
        Some(u) => {
            let mut buf = [0u8; 38];
            buf[0] = b'"';
            u.hyphenated().encode_lower(&mut buf[1..37]);
            buf[37] = b'"';
            out.write_all(&buf)
        }
        None => out.write_all(b"null"),
    }
}

fn string(out: &mut impl Write, s: Option<&str>) -> std::io::Result<()> {
    match s {
        Some(s) => serde_json::to_writer(out, s).map_err(std::io::Error::other),
        None => out.write_all(b"null"),
    }
}

fn timestamp(out: &mut impl Write, micros: Option<i64>) -> std::io::Result<()> {
    match micros {
        Some(t) => {
            let mut buf = [0u8; RFC3339_MICROS_LEN];
            write_rfc3339_micros(&Civil::from_unix_micros(t), &mut buf);
            out.write_all(b"\"")?;
            out.write_all(&buf)?;
            out.write_all(b"\"")
        }
        None => out.write_all(b"null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_json_shape() {
        let m = Message {
            id: Uuid::from_bytes([1; 16]),
            conversation_id: Uuid::from_bytes([2; 16]),
            sender_id: None,
            contact_id: Some(Uuid::from_bytes([3; 16])),
            content: "Olá \"aspas\"\n😀".into(),
            message_type: Some("outgoing".into()),
            content_type: Some("text".into()),
            private: Some(false),
            status: Some("sent".into()),
            source_id: None,
            created_at: Some(1_796_390_570_123_456),
            updated_at: None,
        };
        let mut out = Vec::new();
        write_message(&mut out, &m).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["id"], "01010101-0101-0101-0101-010101010101");
        assert_eq!(v["sender_id"], serde_json::Value::Null);
        assert_eq!(v["content"], "Olá \"aspas\"\n😀");
        assert_eq!(v["private"], false);
        assert_eq!(v["created_at"], "2026-12-04T13:22:50.123456Z");
        assert_eq!(v["updated_at"], serde_json::Value::Null);
        assert_eq!(v.as_object().unwrap().len(), 12);
    }
}
