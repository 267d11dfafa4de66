//! `/v1/invoices` and `/v1/receipts`: the billing documents the store
//! keeps. Closing a subscription period writes an invoice; every top-up
//! writes a receipt. A list names its account; both are newest first and
//! shown as the subscriber's own `/billing/` endpoints show them.

use axum::Json;
use faregate_rails::plans::document_json;
use faregate_store::DocumentKind;
use serde::Deserialize;
use serde_json::Value;

use super::views::{Page, paginate};
use super::{find_account, page_limit};
use crate::extract::{PathParam, QueryParams, StoreAccess};
use crate::problem::{Code, Problem};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    /// Whose documents; required.
    account: Option<String>,
    limit: Option<u32>,
    /// The `next` of the previous page: documents before this `seq`.
    before: Option<i64>,
}

/// `GET /v1/invoices?account=`.
pub(super) async fn invoices(
    access: StoreAccess,
    query: QueryParams<ListParams>,
) -> Result<Json<Page<Value>>, Problem> {
    list(access, query, DocumentKind::Invoice).await
}

/// `GET /v1/receipts?account=`.
pub(super) async fn receipts(
    access: StoreAccess,
    query: QueryParams<ListParams>,
) -> Result<Json<Page<Value>>, Problem> {
    list(access, query, DocumentKind::Receipt).await
}

async fn list(
    StoreAccess(credits): StoreAccess,
    QueryParams(q): QueryParams<ListParams>,
    kind: DocumentKind,
) -> Result<Json<Page<Value>>, Problem> {
    let limit = page_limit(q.limit)?;
    let Some(id) = q.account else {
        return Err(Problem::new(
            Code::AccountRequired,
            format!("name the account: /v1/{}s?account=acct_…", kind.as_str()),
        ));
    };
    let account = find_account(&credits, &id).await?;
    let found = credits
        .store()
        .documents(
            Some(&account.id),
            Some(kind),
            q.before,
            u32::try_from(limit + 1).unwrap_or(u32::MAX),
        )
        .await?;
    let (found, next) = paginate(found, limit, |d| d.seq.to_string());
    Ok(Json(Page {
        data: found.iter().map(document_json).collect(),
        next,
    }))
}

/// `GET /v1/invoices/{id}`.
pub(super) async fn invoice(
    access: StoreAccess,
    id: PathParam<String>,
) -> Result<Json<Value>, Problem> {
    show(access, id, DocumentKind::Invoice).await
}

/// `GET /v1/receipts/{id}`.
pub(super) async fn receipt(
    access: StoreAccess,
    id: PathParam<String>,
) -> Result<Json<Value>, Problem> {
    show(access, id, DocumentKind::Receipt).await
}

async fn show(
    StoreAccess(credits): StoreAccess,
    PathParam(id): PathParam<String>,
    kind: DocumentKind,
) -> Result<Json<Value>, Problem> {
    match credits.store().document(&id).await? {
        Some(doc) if doc.kind == kind => Ok(Json(document_json(&doc))),
        _ => Err(not_found(kind, &id)),
    }
}

fn not_found(kind: DocumentKind, id: &str) -> Problem {
    let code = match kind {
        DocumentKind::Invoice => Code::InvoiceNotFound,
        DocumentKind::Receipt => Code::ReceiptNotFound,
    };
    Problem::new(code, format!("no {} {id}", kind.as_str()))
}
