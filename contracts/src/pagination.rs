//! Cursor pagination for every list: a validated page request and an opaque cursor over a stable
//! order. `has_more` is true exactly when another row exists after the page.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::envelope::Pagination;
use crate::error::ApiError;

/// The default page size.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest page size.
pub const MAX_LIMIT: u32 = 200;

/// A validated page request.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRequest {
    /// Rows per page, 1–200.
    pub limit: u32,
    /// Where the previous page stopped, decoded.
    pub after: Option<serde_json::Value>,
}

impl PageRequest {
    /// Checks `limit` and decodes `cursor`; a bad value is a 400 naming the field.
    pub fn parse(limit: Option<i64>, cursor: Option<&str>) -> Result<Self, ApiError> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(l) if (1..=i64::from(MAX_LIMIT)).contains(&l) => l as u32,
            Some(l) => {
                return Err(ApiError::invalid_field(
                    "limit",
                    format!("must be between 1 and {MAX_LIMIT}, got {l}"),
                ));
            }
        };
        let after = match cursor.filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => Some(decode(c).ok_or_else(|| {
                ApiError::invalid_field("cursor", "is not a cursor this server issued")
            })?),
        };
        Ok(Self { limit, after })
    }

    /// How many rows to fetch: one more than the page, to learn whether more exist.
    pub fn fetch(&self) -> u64 {
        u64::from(self.limit) + 1
    }

    /// Cuts the fetched rows to the page and builds the pagination, with a cursor made from the
    /// last row's key when more rows follow.
    pub fn page<T>(
        &self,
        mut rows: Vec<T>,
        key: impl Fn(&T) -> serde_json::Value,
    ) -> (Vec<T>, Pagination) {
        let has_more = rows.len() > self.limit as usize;
        rows.truncate(self.limit as usize);
        let cursor = if has_more {
            rows.last().map(|last| encode(&key(last)))
        } else {
            None
        };
        (
            rows,
            Pagination {
                limit: self.limit,
                cursor,
                has_more,
            },
        )
    }
}

/// Encodes a key as an opaque cursor.
pub fn encode(key: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:{key}"))
}

fn decode(cursor: &str) -> Option<serde_json::Value> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    serde_json::from_str(text.strip_prefix("v1:")?).ok()
}

/// A page request over a text key (IDs or paths): the keyset condition, order and limit of one
/// page of a list in key order.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyPage {
    /// The validated request.
    pub request: PageRequest,
    /// The key the previous page ended at.
    pub after: Option<String>,
}

impl KeyPage {
    /// Parses `limit` and `cursor`; the cursor must carry a text key.
    pub fn parse(limit: Option<i64>, cursor: Option<&str>) -> Result<Self, ApiError> {
        let request = PageRequest::parse(limit, cursor)?;
        let after = match &request.after {
            None => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(ApiError::invalid_field(
                    "cursor",
                    "is not a cursor this list issued",
                ));
            }
        };
        Ok(Self { request, after })
    }

    /// Adds the keyset condition, order and limit on `column` of `table` to `select`.
    pub fn apply(
        &self,
        select: &mut crate::storage::sea_query::SelectStatement,
        table: &str,
        column: &str,
    ) {
        use crate::storage::sea_query::{Alias, Expr, ExprTrait, Order};
        let key = (Alias::new(table), Alias::new(column));
        if let Some(after) = &self.after {
            select.and_where(Expr::col(key.clone()).gt(after.as_str()));
        }
        select.order_by(key, Order::Asc).limit(self.request.fetch());
    }

    /// Cuts the fetched rows to the page.
    pub fn finish<T>(&self, rows: Vec<T>, key: impl Fn(&T) -> String) -> (Vec<T>, Pagination) {
        self.request
            .page(rows, |row| serde_json::Value::String(key(row)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_pages_take_only_text_cursors() {
        let cursor = encode(&serde_json::json!(5));
        assert!(KeyPage::parse(None, Some(&cursor)).is_err());
        let cursor = encode(&serde_json::json!("user_a"));
        assert_eq!(
            KeyPage::parse(None, Some(&cursor))
                .unwrap()
                .after
                .as_deref(),
            Some("user_a")
        );
    }
    use crate::ErrorCode;

    #[test]
    fn limits_default_and_are_bounded() {
        assert_eq!(PageRequest::parse(None, None).unwrap().limit, 50);
        assert_eq!(PageRequest::parse(Some(200), None).unwrap().limit, 200);
        for bad in [0, 201, -1] {
            let err = PageRequest::parse(Some(bad), None).unwrap_err();
            assert_eq!(err.code, ErrorCode::ValidationFailed);
            assert!(err.details["fields"]["limit"].is_string());
        }
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let key = serde_json::json!([17, "audit_x"]);
        let req = PageRequest::parse(Some(2), Some(&encode(&key))).unwrap();
        assert_eq!(req.after, Some(key));
        for bad in ["%%%", "bm90LWEtY3Vyc29y", "djE6e2Jyb2tlbg"] {
            let err = PageRequest::parse(None, Some(bad)).unwrap_err();
            assert!(err.details["fields"]["cursor"].is_string(), "{bad}");
        }
    }

    #[test]
    fn pages_report_has_more_exactly_when_a_row_follows() {
        let req = PageRequest::parse(Some(2), None).unwrap();
        let (rows, p) = req.page(vec![1, 2, 3], |r| serde_json::json!(r));
        assert_eq!((rows, p.has_more), (vec![1, 2], true));
        assert_eq!(
            PageRequest::parse(None, p.cursor.as_deref()).unwrap().after,
            Some(serde_json::json!(2))
        );
        let (rows, p) = req.page(vec![1, 2], |r| serde_json::json!(r));
        assert_eq!((rows, p.has_more, p.cursor), (vec![1, 2], false, None));
    }
}
