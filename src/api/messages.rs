//! The message endpoints: create one, create a batch, get one, change one
//! (delivery receipts and edits), and page through a conversation.

use std::io::Write;

use super::error::ApiError;
use super::json::{write_message, write_messages};
use super::router::Params;
use super::validate;
use super::Api;
use crate::http::{Request, Response};
use crate::store::{Cursor, Message, StoreError};

type Outcome = Result<(), ApiError>;

fn created(res: &mut Response<'_>, m: &Message) {
    res.set_status(201);
    let _ = res.header(
        "Location",
        &format!("/api/v1/messages/{}", m.id.hyphenated()),
    );
    let _ = write_message(&mut res.body(), m);
}

/// `200` with the message, or `404`.
fn found(res: &mut Response<'_>, m: Option<Message>) -> Outcome {
    let m = m.ok_or_else(|| ApiError::not_found("no message with that id"))?;
    let _ = write_message(&mut res.body(), &m);
    Ok(())
}

/// `POST /api/v1/messages`.
pub fn create(api: &Api, req: &Request<'_>, _: &Params<'_>, res: &mut Response<'_>) -> Outcome {
    let obj = validate::json_body(req)?;
    let new = validate::new_message(&obj, "")?;
    let m = api.store.insert(&new)?;
    created(res, &m);
    Ok(())
}

/// `POST /api/v1/messages/batch`: all or nothing, answered in request order.
pub fn create_batch(
    api: &Api,
    req: &Request<'_>,
    _: &Params<'_>,
    res: &mut Response<'_>,
) -> Outcome {
    let obj = validate::json_body(req)?;
    let items = validate::batch(&obj)?;
    let stored = api.store.insert_batch(&items)?;
    res.set_status(201);
    let mut body = res.body();
    let _ = body.write_all(b"{\"data\":");
    let _ = write_messages(&mut body, &stored);
    let _ = body.write_all(b"}");
    Ok(())
}

/// `GET /api/v1/messages/{id}`.
pub fn get(api: &Api, _: &Request<'_>, params: &Params<'_>, res: &mut Response<'_>) -> Outcome {
    let id = validate::path_uuid(params.get(0), "id")?;
    found(res, api.store.get(id)?)
}

/// `PATCH /api/v1/messages/{id}`: `status` and/or `content`; moves `updated_at`.
pub fn update(
    api: &Api,
    req: &Request<'_>,
    params: &Params<'_>,
    res: &mut Response<'_>,
) -> Outcome {
    let id = validate::path_uuid(params.get(0), "id")?;
    let obj = validate::json_body(req)?;
    let change = validate::change(&obj)?;
    found(res, api.store.update(id, change.status, change.content)?)
}

/// `GET /api/v1/conversations/{conversation_id}/messages`.
pub fn list(api: &Api, req: &Request<'_>, params: &Params<'_>, res: &mut Response<'_>) -> Outcome {
    let conversation = validate::path_uuid(params.get(0), "conversation_id")?;
    let (limit, cursor) = validate::page_query(req.query)?;
    let page = match api.store.page(conversation, limit, cursor) {
        Ok(page) => page,
        Err(StoreError::CursorNotFound) => {
            let field = match cursor {
                Cursor::After(_) => "after",
                _ => "before",
            };
            return Err(ApiError::field(
                field,
                format!("{field} is not a message of this conversation"),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let mut body = res.body();
    let _ = body.write_all(b"{\"data\":");
    let _ = write_messages(&mut body, &page.messages);
    let _ = write!(
        body,
        ",\"meta\":{{\"count\":{},\"has_more\":{}}}}}",
        page.messages.len(),
        page.has_more
    );
    Ok(())
}
