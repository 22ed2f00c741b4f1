//! Cursor pagination: `?limit=&cursor=` in, `{data, nextCursor, hasMore}` out. The cursor is
//! the id of the last item of the previous page (ids sort by creation time).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::store::PageRows;

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1–100 (default 20).
    pub limit: Option<i64>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT as i64).contains(&n) => Ok(n as usize),
            Some(_) => Err(ApiError::validation(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            )),
        }
    }

    pub fn cursor(&self) -> Result<Option<&str>, ApiError> {
        match self.cursor.as_deref() {
            None | Some("") => Ok(None),
            Some(c)
                if c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                Ok(Some(c))
            }
            Some(_) => Err(ApiError::validation(
                "cursor",
                "not a cursor returned by this API",
            )),
        }
    }
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

impl<T> Page<T> {
    /// Builds a page from rows, taking the cursor from the last item's id.
    pub fn from_rows(rows: PageRows<T>, id_of: impl Fn(&T) -> &str) -> Page<T> {
        let next_cursor = if rows.has_more {
            rows.items.last().map(|x| id_of(x).to_string())
        } else {
            None
        };
        Page {
            data: rows.items,
            next_cursor,
            has_more: rows.has_more,
        }
    }
}
