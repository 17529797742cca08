//! All of the service's SQL, and the translation of database errors into
//! the store's own, so that the API layer never sees the PostgreSQL client.
//!
//! Query plans on a table of 100 000 messages are kept in
//! `docs/query-plans.md`; each statement below is served by an index.

use std::fmt;
use std::time::Duration;

use uuid::Uuid;

use crate::pg::{self, oid, Param, Pool, Row, Statement};

/// Every column of `messages`, in the order `Message::from_row` reads them.
macro_rules! columns {
    () => {
        "id, conversation_id, sender_id, contact_id, content, message_type, content_type, \
         private, status, source_id, created_at, updated_at"
    };
}

static INSERT: Statement = Statement {
    sql: concat!(
        "INSERT INTO messages (conversation_id, sender_id, contact_id, content, message_type, \
         content_type, private, status, source_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         RETURNING ",
        columns!()
    ),
    param_types: &[
        oid::UUID,
        oid::UUID,
        oid::UUID,
        oid::TEXT,
        oid::VARCHAR,
        oid::VARCHAR,
        oid::BOOL,
        oid::VARCHAR,
        oid::VARCHAR,
    ],
};

/// The whole batch in one statement (so one transaction and one round
/// trip): parallel arrays unnested into rows. Ids are chosen here so that
/// the answer can be put in request order whatever order RETURNING uses.
static INSERT_BATCH: Statement = Statement {
    sql: concat!(
        "INSERT INTO messages (id, conversation_id, sender_id, contact_id, content, message_type, \
         content_type, private, status, source_id) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], \
         $6::varchar[], $7::varchar[], $8::bool[], $9::varchar[], $10::varchar[]) RETURNING ",
        columns!()
    ),
    param_types: &[
        oid::UUID_ARRAY,
        oid::UUID_ARRAY,
        oid::UUID_ARRAY,
        oid::UUID_ARRAY,
        oid::TEXT_ARRAY,
        oid::VARCHAR_ARRAY,
        oid::VARCHAR_ARRAY,
        oid::BOOL_ARRAY,
        oid::VARCHAR_ARRAY,
        oid::VARCHAR_ARRAY,
    ],
};

static GET: Statement = Statement {
    sql: concat!("SELECT ", columns!(), " FROM messages WHERE id = $1"),
    param_types: &[oid::UUID],
};

static UPDATE: Statement = Statement {
    sql: concat!(
        "UPDATE messages SET status = COALESCE($2, status), content = COALESCE($3, content), \
         updated_at = now() WHERE id = $1 RETURNING ",
        columns!()
    ),
    param_types: &[oid::UUID, oid::VARCHAR, oid::TEXT],
};

/// Whether a cursor is a message of the conversation.
static CURSOR_EXISTS: Statement = Statement {
    sql: "SELECT 1 FROM messages WHERE id = $1 AND conversation_id = $2",
    param_types: &[oid::UUID, oid::UUID],
};

static PAGE_NEWEST: Statement = Statement {
    sql: concat!(
        "SELECT ",
        columns!(),
        " FROM messages WHERE conversation_id = $1 \
         ORDER BY created_at DESC, id DESC LIMIT $2"
    ),
    param_types: &[oid::UUID, oid::INT8],
};

static PAGE_BEFORE: Statement = Statement {
    sql: concat!(
        "SELECT ",
        columns!(),
        " FROM messages WHERE conversation_id = $1 AND (created_at, id) < \
         (SELECT c.created_at, c.id FROM messages c WHERE c.id = $2 AND c.conversation_id = $1) \
         ORDER BY created_at DESC, id DESC LIMIT $3"
    ),
    param_types: &[oid::UUID, oid::UUID, oid::INT8],
};

static PAGE_AFTER: Statement = Statement {
    sql: concat!(
        "SELECT ",
        columns!(),
        " FROM messages WHERE conversation_id = $1 AND (created_at, id) > \
         (SELECT c.created_at, c.id FROM messages c WHERE c.id = $2 AND c.conversation_id = $1) \
         ORDER BY created_at ASC, id ASC LIMIT $3"
    ),
    param_types: &[oid::UUID, oid::UUID, oid::INT8],
};

/// A stored message. Timestamps are microseconds since the Unix epoch, UTC.
/// Columns the schema lets be NULL are options, though this service always
/// writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub sender_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub content: String,
    pub message_type: Option<String>,
    pub content_type: Option<String>,
    pub private: Option<bool>,
    pub status: Option<String>,
    pub source_id: Option<String>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}

impl Message {
    fn from_row(row: &Row<'_>) -> pg::Result<Message> {
        Ok(Message {
            id: Uuid::from_bytes(row.uuid(0)?),
            conversation_id: Uuid::from_bytes(row.uuid(1)?),
            sender_id: row.opt_uuid(2)?.map(Uuid::from_bytes),
            contact_id: row.opt_uuid(3)?.map(Uuid::from_bytes),
            content: row.text(4)?.to_string(),
            message_type: row.opt_text(5)?.map(str::to_string),
            content_type: row.opt_text(6)?.map(str::to_string),
            private: row.opt_bool(7)?,
            status: row.opt_text(8)?.map(str::to_string),
            source_id: row.opt_text(9)?.map(str::to_string),
            created_at: row.opt_timestamp(10)?,
            updated_at: row.opt_timestamp(11)?,
        })
    }
}

/// A message to create; every field already validated.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub conversation_id: Uuid,
    pub sender_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub content: String,
    pub message_type: &'static str,
    pub content_type: &'static str,
    pub private: bool,
    pub status: &'static str,
    pub source_id: Option<String>,
}

/// Which page of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    Newest,
    Before(Uuid),
    After(Uuid),
}

/// A page, oldest first, and whether more lie beyond it in the direction
/// of the query.
#[derive(Debug)]
pub struct Page {
    pub messages: Vec<Message>,
    pub has_more: bool,
}

/// A row a message refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    Conversation,
    Sender,
    Contact,
}

impl Reference {
    pub fn field(self) -> &'static str {
        match self {
            Reference::Conversation => "conversation_id",
            Reference::Sender => "sender_id",
            Reference::Contact => "contact_id",
        }
    }
}

#[derive(Debug)]
pub enum StoreError {
    /// The database cannot be reached in time.
    Unavailable(String),
    /// A referenced row does not exist; `index` is the batch item at fault.
    UnknownReference {
        reference: Reference,
        index: Option<usize>,
    },
    /// Text the database refuses (an encoding it cannot store).
    InvalidText(String),
    /// The paging cursor is not a message of the conversation.
    CursorNotFound,
    /// Anything else; the detail is for the log only.
    Internal(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The client's message already says what was unavailable.
            StoreError::Unavailable(m) => f.write_str(m),
            StoreError::UnknownReference { reference, index } => {
                write!(f, "unknown {}", reference.field())?;
                if let Some(i) = index {
                    write!(f, " in item {i}")?;
                }
                Ok(())
            }
            StoreError::InvalidText(m) => write!(f, "text refused: {m}"),
            StoreError::CursorNotFound => {
                f.write_str("cursor is not a message of the conversation")
            }
            StoreError::Internal(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for StoreError {}

fn map_error(e: pg::Error, batch: Option<&[NewMessage]>) -> StoreError {
    if e.is_unavailable() {
        return StoreError::Unavailable(e.to_string());
    }
    if let Some(db) = e.db() {
        match db.code.as_str() {
            "23503" => {
                let constraint = db.constraint.as_deref().unwrap_or("");
                let reference = if constraint.contains("sender") {
                    Reference::Sender
                } else if constraint.contains("contact") {
                    Reference::Contact
                } else {
                    Reference::Conversation
                };
                let index =
                    batch.and_then(|items| offending_item(items, reference, db.detail.as_deref()));
                return StoreError::UnknownReference { reference, index };
            }
            "22021" | "22P05" => return StoreError::InvalidText(db.message.clone()),
            _ => {}
        }
    }
    StoreError::Internal(e.to_string())
}

/// The batch item whose reference the error's detail names:
/// `Key (conversation_id)=(<uuid>) is not present in table "conversations".`
fn offending_item(
    items: &[NewMessage],
    reference: Reference,
    detail: Option<&str>,
) -> Option<usize> {
    let detail = detail?;
    let start = detail.find(")=(")? + 3;
    let end = start + detail.get(start..)?.find(')')?;
    let key = Uuid::parse_str(detail.get(start..end)?).ok()?;
    items.iter().position(|m| match reference {
        Reference::Conversation => m.conversation_id == key,
        Reference::Sender => m.sender_id == Some(key),
        Reference::Contact => m.contact_id == Some(key),
    })
}

fn uuid_param(u: Option<Uuid>) -> Param<'static> {
    match u {
        Some(u) => Param::Uuid(*u.as_bytes()),
        None => Param::Null,
    }
}

fn text_param(s: Option<&str>) -> Param<'_> {
    match s {
        Some(s) => Param::Text(s),
        None => Param::Null,
    }
}

fn array<'a>(element: pg::Oid, items: &'a [Param<'a>]) -> Param<'a> {
    Param::Array { element, items }
}

fn one(rows: &pg::Rows) -> pg::Result<Option<Message>> {
    match rows.get(0) {
        Some(row) => Message::from_row(&row?).map(Some),
        None => Ok(None),
    }
}

fn all(rows: &pg::Rows) -> pg::Result<Vec<Message>> {
    rows.iter().map(|r| Message::from_row(&r?)).collect()
}

#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

impl Store {
    pub fn new(pool: Pool) -> Store {
        Store { pool }
    }

    /// A database round trip within `timeout`, for `/ready`.
    pub fn ping(&self, timeout: Duration) -> Result<(), StoreError> {
        self.pool
            .ping(timeout)
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    pub fn insert(&self, m: &NewMessage) -> Result<Message, StoreError> {
        let params = [
            Param::Uuid(*m.conversation_id.as_bytes()),
            uuid_param(m.sender_id),
            uuid_param(m.contact_id),
            Param::Text(&m.content),
            Param::Text(m.message_type),
            Param::Text(m.content_type),
            Param::Bool(m.private),
            Param::Text(m.status),
            text_param(m.source_id.as_deref()),
        ];
        let rows = self
            .pool
            .query(&INSERT, &params)
            .map_err(|e| map_error(e, None))?;
        one(&rows)
            .map_err(|e| map_error(e, None))?
            .ok_or_else(|| StoreError::Internal("INSERT returned no row".into()))
    }

    /// Inserts all of `items` or none; the answer is in request order.
    pub fn insert_batch(&self, items: &[NewMessage]) -> Result<Vec<Message>, StoreError> {
        let ids: Vec<Uuid> = items.iter().map(|_| Uuid::new_v4()).collect();
        let col = |f: &dyn Fn(usize, &NewMessage) -> Param<'_>| -> Vec<Param<'_>> {
            items.iter().enumerate().map(|(i, m)| f(i, m)).collect()
        };
        let id = col(&|i, _| Param::Uuid(*ids[i].as_bytes()));
        let conversation = col(&|_, m| Param::Uuid(*m.conversation_id.as_bytes()));
        let sender = col(&|_, m| uuid_param(m.sender_id));
        let contact = col(&|_, m| uuid_param(m.contact_id));
        let content = col(&|_, m| Param::Text(&m.content));
        let message_type = col(&|_, m| Param::Text(m.message_type));
        let content_type = col(&|_, m| Param::Text(m.content_type));
        let private = col(&|_, m| Param::Bool(m.private));
        let status = col(&|_, m| Param::Text(m.status));
        let source = col(&|_, m| text_param(m.source_id.as_deref()));
        let params = [
            array(oid::UUID, &id),
            array(oid::UUID, &conversation),
            array(oid::UUID, &sender),
            array(oid::UUID, &contact),
            array(oid::TEXT, &content),
            array(oid::VARCHAR, &message_type),
            array(oid::VARCHAR, &content_type),
            array(oid::BOOL, &private),
            array(oid::VARCHAR, &status),
            array(oid::VARCHAR, &source),
        ];
        let rows = self
            .pool
            .query(&INSERT_BATCH, &params)
            .map_err(|e| map_error(e, Some(items)))?;
        let mut stored = all(&rows).map_err(|e| map_error(e, None))?;
        if stored.len() != items.len() {
            return Err(StoreError::Internal(format!(
                "batch insert returned {} rows for {} items",
                stored.len(),
                items.len()
            )));
        }
        // Request order, by the ids chosen above.
        let position: std::collections::HashMap<Uuid, usize> =
            ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        stored.sort_by_key(|m| position.get(&m.id).copied().unwrap_or(usize::MAX));
        Ok(stored)
    }

    pub fn get(&self, id: Uuid) -> Result<Option<Message>, StoreError> {
        let rows = self
            .pool
            .query(&GET, &[Param::Uuid(*id.as_bytes())])
            .map_err(|e| map_error(e, None))?;
        one(&rows).map_err(|e| map_error(e, None))
    }

    /// Sets what is given, and `updated_at` to now. `None` when there is no such message.
    pub fn update(
        &self,
        id: Uuid,
        status: Option<&str>,
        content: Option<&str>,
    ) -> Result<Option<Message>, StoreError> {
        let params = [
            Param::Uuid(*id.as_bytes()),
            text_param(status),
            text_param(content),
        ];
        let rows = self
            .pool
            .query(&UPDATE, &params)
            .map_err(|e| map_error(e, None))?;
        one(&rows).map_err(|e| map_error(e, None))
    }

    /// One page of a conversation, oldest first (keyset paging on `(created_at, id)`).
    pub fn page(
        &self,
        conversation: Uuid,
        limit: usize,
        cursor: Cursor,
    ) -> Result<Page, StoreError> {
        let conv = Param::Uuid(*conversation.as_bytes());
        // One row more than the page tells whether there is more.
        let fetch = Param::Int8(limit as i64 + 1);
        let (mut messages, newest_first) = match cursor {
            Cursor::Newest => {
                let rows = self
                    .pool
                    .query(&PAGE_NEWEST, &[conv, fetch])
                    .map_err(|e| map_error(e, None))?;
                (all(&rows).map_err(|e| map_error(e, None))?, true)
            }
            Cursor::Before(c) | Cursor::After(c) => {
                let c = Param::Uuid(*c.as_bytes());
                let (stmt, newest_first) = match cursor {
                    Cursor::Before(_) => (&PAGE_BEFORE, true),
                    _ => (&PAGE_AFTER, false),
                };
                // Both in one round trip.
                let exists = [c, conv];
                let page = [conv, c, fetch];
                let results = self
                    .pool
                    .batch(&[(&CURSOR_EXISTS, &exists), (stmt, &page)])
                    .map_err(|e| map_error(e, None))?;
                let (Some(found), Some(rows)) = (results.first(), results.get(1)) else {
                    return Err(StoreError::Internal(
                        "paging returned too few results".into(),
                    ));
                };
                if found.is_empty() {
                    return Err(StoreError::CursorNotFound);
                }
                (all(rows).map_err(|e| map_error(e, None))?, newest_first)
            }
        };
        let has_more = messages.len() > limit;
        messages.truncate(limit);
        if newest_first {
            messages.reverse();
        }
        Ok(Page { messages, has_more })
    }
}
