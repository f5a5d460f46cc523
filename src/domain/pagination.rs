//! Cursor pages. Lists are ordered by a unique key (an id, which sorts by
//! creation time, or a name), and the cursor is that key.

use crate::error::AppError;

pub const DEFAULT_PAGE_SIZE: u64 = 20;
pub const MAX_PAGE_SIZE: u64 = 100;

#[derive(Clone, Debug)]
pub struct PageRequest {
    pub first: u64,
    pub after: Option<String>,
}

impl PageRequest {
    pub fn new(first: Option<i32>, after: Option<String>) -> Result<Self, AppError> {
        let first = match first {
            None => DEFAULT_PAGE_SIZE,
            Some(n) if n >= 1 && i64::from(n) <= MAX_PAGE_SIZE as i64 => n as u64,
            Some(_) => {
                return Err(AppError::bad_input(
                    "first",
                    format!("must be between 1 and {MAX_PAGE_SIZE}"),
                ));
            }
        };
        if after.as_ref().is_some_and(|cursor| cursor.len() > 128) {
            return Err(AppError::bad_input("after", "is not a valid cursor"));
        }
        Ok(Self { first, after })
    }

    /// How many rows to fetch: one more than asked, to learn whether there is
    /// a next page.
    pub fn fetch_limit(&self) -> u64 {
        self.first + 1
    }
}

#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_next: bool,
    pub has_previous: bool,
}

impl<T> Page<T> {
    /// Trims the extra row fetched by [`PageRequest::fetch_limit`].
    pub fn from_rows(mut rows: Vec<T>, request: &PageRequest) -> Self {
        let has_next = rows.len() as u64 > request.first;
        rows.truncate(request.first as usize);
        Self {
            items: rows,
            has_next,
            has_previous: request.after.is_some(),
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            has_next: self.has_next,
            has_previous: self.has_previous,
        }
    }
}
