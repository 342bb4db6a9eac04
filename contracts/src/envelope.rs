//! Success envelopes (`{data, request_id}` and `{data, pagination, request_id}`) and the
//! per-request ID that every envelope carries.
//!
//! The ID reaches an envelope, and an error's envelope, through a task-local the pipeline scopes
//! around each request: poem builds an error's response in `ResponseError::as_response`, which
//! sees no request, and every handler would otherwise pass the ID to every envelope it builds.
//! That is the one ambient read of it, and it only labels responses: what is recorded (audit
//! records, decision traces) takes the ID explicitly, as
//! [`RequestId`](crate::services::RequestId) in the request's extensions.

use poem_openapi::Object;
use poem_openapi::types::{ParseFromJSON, ToJSON};

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs `fut` with `id` as the current request ID. The kernel's request pipeline calls this.
///
/// A plain function returning the scope, not an `async fn`: an `async fn` would hold `fut` twice
/// (as its argument and inside the scope it awaits), doubling the future a request's pipeline
/// builds and copies.
pub fn with_request_id<F: std::future::Future>(
    id: String,
    fut: F,
) -> impl std::future::Future<Output = F::Output> {
    REQUEST_ID.scope(id, fut)
}

/// The ID of the request being served, or `req_unknown` outside a request. Crate-private: only
/// envelopes read it; what is recorded takes [`RequestId`](crate::services::RequestId).
pub(crate) fn current_request_id() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| crate::services::RequestId::NONE.to_owned())
}

/// A single-object response.
#[derive(Debug, Clone, Object)]
pub struct Envelope<T: ParseFromJSON + ToJSON> {
    /// The payload.
    pub data: T,
    /// The request this response answers.
    pub request_id: String,
}

impl<T: ParseFromJSON + ToJSON> Envelope<T> {
    /// Wraps `data`, stamped with the current request ID.
    pub fn new(data: T) -> Self {
        Self {
            data,
            request_id: current_request_id(),
        }
    }
}

/// Where a list stopped, and whether it goes on.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
pub struct Pagination {
    /// The page size that was applied.
    pub limit: u32,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub cursor: Option<String>,
    /// True exactly when more items follow this page.
    pub has_more: bool,
}

impl Pagination {
    /// A complete list in one page.
    pub fn single_page(limit: u32) -> Self {
        Self {
            limit,
            cursor: None,
            has_more: false,
        }
    }
}

/// A list response.
#[derive(Debug, Clone, Object)]
pub struct ListEnvelope<T: ParseFromJSON + ToJSON> {
    /// The items of this page.
    pub data: Vec<T>,
    /// How to get the next page.
    pub pagination: Pagination,
    /// The request this response answers.
    pub request_id: String,
}

impl<T: ParseFromJSON + ToJSON> ListEnvelope<T> {
    /// Wraps one page of items, stamped with the current request ID.
    pub fn new(data: Vec<T>, pagination: Pagination) -> Self {
        Self {
            data,
            pagination,
            request_id: current_request_id(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pipeline runs every request inside both scopes ([`with_request_id`] and
    /// [`crate::feed::with_revision_slot`]). As `async fn`s each held the future it wraps twice,
    /// so together they quadrupled the request's future (the kernel's `handle` was 9.5 KB).
    #[test]
    fn the_request_scopes_hold_the_future_they_wrap_once() {
        let inner = || async {
            let held = [1u8; 4096];
            std::future::ready(()).await;
            held.len()
        };
        let inner_size = std::mem::size_of_val(&inner());
        let sizes = [
            std::mem::size_of_val(&with_request_id("req_test".to_owned(), inner())),
            std::mem::size_of_val(&crate::feed::with_revision_slot(
                std::sync::Arc::default(),
                inner(),
            )),
        ];
        for size in sizes {
            assert!(
                size <= inner_size + 64,
                "{size} bytes around a future of {inner_size}"
            );
        }
    }
}
