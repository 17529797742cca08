//! Every rule of `shared/API.md` for what a client sends: content type,
//! JSON shape, each field's type and bounds, path and query parameters.
//! Errors name the field at fault with its full path
//! (`messages[3].conversation_id`). Unknown fields are ignored.

use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::ApiError;
use crate::http::Request;
use crate::store::{Cursor, NewMessage};

/// Characters of `content`.
pub const MAX_CONTENT_CHARS: usize = 150_000;
/// Characters of `source_id` (the column is `VARCHAR(255)`).
pub const MAX_SOURCE_ID_CHARS: usize = 255;
/// Items of a batch.
pub const MAX_BATCH_ITEMS: usize = 500;
/// Page size bounds and default.
pub const MAX_PAGE: usize = 100;
pub const DEFAULT_PAGE: usize = 20;

pub const MESSAGE_TYPES: [&str; 3] = ["incoming", "outgoing", "activity"];
pub const CONTENT_TYPES: [&str; 3] = ["text", "image", "file"];
pub const STATUSES: [&str; 4] = ["sent", "delivered", "read", "failed"];

/// `Content-Type: application/json`, parameters (`charset=utf-8`) allowed.
fn require_json(req: &Request<'_>) -> Result<(), ApiError> {
    let media = req
        .header("content-type")
        .map(|v| v.split(|b| *b == b';').next().unwrap_or(&[]))
        .map(|v| v.trim_ascii());
    match media {
        Some(m) if m.eq_ignore_ascii_case(b"application/json") => Ok(()),
        _ => Err(ApiError::new(
            415,
            "unsupported_media_type",
            "the body must be sent as Content-Type: application/json",
        )),
    }
}

/// A JSON object body: the content type checked, then the body parsed.
pub fn json_body(req: &Request<'_>) -> Result<Map<String, Value>, ApiError> {
    require_json(req)?;
    json_object(req.body)
}

/// Parses the body as a JSON object. serde_json refuses nesting past 128
/// levels, which keeps recursion well inside a coroutine's stack.
fn json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.is_empty() {
        return Err(ApiError::invalid_json(
            "the body is empty; a JSON object is expected",
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::invalid_json("the body must be a JSON object")),
        Err(e) => Err(ApiError::invalid_json(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}

/// A field's value, treating JSON `null` as absent.
fn get<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

fn uuid_field(
    obj: &Map<String, Value>,
    prefix: &str,
    name: &str,
    required: bool,
) -> Result<Option<Uuid>, ApiError> {
    let path = format!("{prefix}{name}");
    match get(obj, name) {
        None if required => Err(ApiError::field(&path, format!("{path} is required"))),
        None => Ok(None),
        Some(Value::String(s)) => parse_uuid(s)
            .map(Some)
            .ok_or_else(|| ApiError::field(&path, format!("{path} must be a UUID"))),
        Some(_) => Err(ApiError::field(
            &path,
            format!("{path} must be a UUID string"),
        )),
    }
}

/// A UUID in its usual hyphenated form (or the 32-digit simple form).
pub fn parse_uuid(s: &str) -> Option<Uuid> {
    if s.len() != 36 && s.len() != 32 {
        return None;
    }
    Uuid::parse_str(s).ok()
}

fn text_field<'a>(
    obj: &'a Map<String, Value>,
    prefix: &str,
    name: &str,
    required: bool,
    max_chars: usize,
) -> Result<Option<&'a str>, ApiError> {
    let path = format!("{prefix}{name}");
    let s = match get(obj, name) {
        None if required => return Err(ApiError::field(&path, format!("{path} is required"))),
        None => return Ok(None),
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(ApiError::field(&path, format!("{path} must be a string"))),
    };
    check_text(s, &path, max_chars)?;
    Ok(Some(s))
}

/// PostgreSQL text cannot hold NUL; bounds are in characters.
fn check_text(s: &str, path: &str, max_chars: usize) -> Result<(), ApiError> {
    if s.contains('\0') {
        return Err(ApiError::field(
            path,
            format!("{path} must not contain NUL characters"),
        ));
    }
    let chars = s.chars().count();
    if chars > max_chars {
        return Err(ApiError::field(
            path,
            format!("{path} must be at most {max_chars} characters (got {chars})"),
        ));
    }
    Ok(())
}

fn content_field<'a>(
    obj: &'a Map<String, Value>,
    prefix: &str,
    required: bool,
) -> Result<Option<&'a str>, ApiError> {
    let content = text_field(obj, prefix, "content", required, MAX_CONTENT_CHARS)?;
    if content == Some("") {
        let path = format!("{prefix}content");
        return Err(ApiError::field(&path, format!("{path} must not be empty")));
    }
    Ok(content)
}

fn one_of(
    obj: &Map<String, Value>,
    prefix: &str,
    name: &str,
    allowed: &[&'static str],
) -> Result<Option<&'static str>, ApiError> {
    let path = format!("{prefix}{name}");
    match get(obj, name) {
        None => Ok(None),
        Some(Value::String(s)) => allowed
            .iter()
            .find(|a| **a == s.as_str())
            .copied()
            .map(Some)
            .ok_or_else(|| {
                ApiError::field(
                    &path,
                    format!("{path} must be one of {}", allowed.join(", ")),
                )
            }),
        Some(_) => Err(ApiError::field(
            &path,
            format!("{path} must be one of {}", allowed.join(", ")),
        )),
    }
}

/// A create body (`prefix` is `messages[i].` inside a batch), defaults applied.
pub fn new_message(obj: &Map<String, Value>, prefix: &str) -> Result<NewMessage, ApiError> {
    let conversation_id = uuid_field(obj, prefix, "conversation_id", true)?.ok_or_else(|| {
        ApiError::field(
            format!("{prefix}conversation_id"),
            "conversation_id is required",
        )
    })?;
    let content = content_field(obj, prefix, true)?
        .unwrap_or_default()
        .to_string();
    let sender_id = uuid_field(obj, prefix, "sender_id", false)?;
    let contact_id = uuid_field(obj, prefix, "contact_id", false)?;
    let message_type = one_of(obj, prefix, "message_type", &MESSAGE_TYPES)?.unwrap_or("incoming");
    let content_type = one_of(obj, prefix, "content_type", &CONTENT_TYPES)?.unwrap_or("text");
    let status = one_of(obj, prefix, "status", &STATUSES)?.unwrap_or("sent");
    let private = match get(obj, "private") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            let path = format!("{prefix}private");
            return Err(ApiError::field(
                &path,
                format!("{path} must be true or false"),
            ));
        }
    };
    let source_id =
        text_field(obj, prefix, "source_id", false, MAX_SOURCE_ID_CHARS)?.map(str::to_string);
    Ok(NewMessage {
        conversation_id,
        sender_id,
        contact_id,
        content,
        message_type,
        content_type,
        private,
        status,
        source_id,
    })
}

/// A batch body: `{"messages": [...]}` with 1 to 500 items.
pub fn batch(obj: &Map<String, Value>) -> Result<Vec<NewMessage>, ApiError> {
    let items = match get(obj, "messages") {
        Some(Value::Array(items)) => items,
        None => return Err(ApiError::field("messages", "messages is required")),
        Some(_) => return Err(ApiError::field("messages", "messages must be an array")),
    };
    if items.is_empty() || items.len() > MAX_BATCH_ITEMS {
        return Err(ApiError::field(
            "messages",
            format!(
                "messages must hold 1 to {MAX_BATCH_ITEMS} items (got {})",
                items.len()
            ),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let prefix = format!("messages[{i}].");
            match item {
                Value::Object(obj) => new_message(obj, &prefix),
                _ => Err(ApiError::field(
                    format!("messages[{i}]"),
                    format!("messages[{i}] must be an object"),
                )),
            }
        })
        .collect()
}

/// A `PATCH` body: at least one of `status` and `content`.
pub struct Change<'a> {
    pub status: Option<&'static str>,
    pub content: Option<&'a str>,
}

pub fn change(obj: &Map<String, Value>) -> Result<Change<'_>, ApiError> {
    let status = one_of(obj, "", "status", &STATUSES)?;
    let content = content_field(obj, "", false)?;
    if status.is_none() && content.is_none() {
        return Err(ApiError::new(
            400,
            "invalid_field",
            "the body must set at least one of status and content",
        ));
    }
    Ok(Change { status, content })
}

/// A path parameter that must be a UUID.
pub fn path_uuid(value: Option<&str>, name: &str) -> Result<Uuid, ApiError> {
    value
        .and_then(parse_uuid)
        .ok_or_else(|| ApiError::field(name, format!("{name} must be a UUID")))
}

/// `limit`, `before`, `after` of the conversation listing.
pub fn page_query(query: &str) -> Result<(usize, Cursor), ApiError> {
    let mut limit = DEFAULT_PAGE;
    let mut before = None;
    let mut after = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "limit" => {
                limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| {
                        ApiError::field(
                            "limit",
                            format!("limit must be a whole number from 1 to {MAX_PAGE}"),
                        )
                    })?;
            }
            "before" => {
                before = Some(parse_uuid(value).ok_or_else(|| {
                    ApiError::field("before", "before must be a message id (UUID)")
                })?)
            }
            "after" => {
                after =
                    Some(parse_uuid(value).ok_or_else(|| {
                        ApiError::field("after", "after must be a message id (UUID)")
                    })?)
            }
            _ => {}
        }
    }
    let cursor = match (before, after) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                400,
                "invalid_field",
                "give at most one of before and after",
            ))
        }
        (Some(b), None) => Cursor::Before(b),
        (None, Some(a)) => Cursor::After(a),
        (None, None) => Cursor::Newest,
    };
    Ok((limit, cursor))
}
