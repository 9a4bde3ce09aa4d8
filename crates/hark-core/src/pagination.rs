//! Page-based pagination with the Speakr response shape.

use serde::Serialize;

use crate::DomainError;

pub const DEFAULT_PER_PAGE: u32 = 25;
pub const MAX_PER_PAGE: u32 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u32,
    pub per_page: u32,
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest {
            page: 1,
            per_page: DEFAULT_PER_PAGE,
        }
    }
}

impl PageRequest {
    /// Validates raw query values, so a bad value gets a message that names the rule.
    pub fn parse(page: Option<&str>, per_page: Option<&str>) -> Result<Self, DomainError> {
        let page = match page {
            None => 1,
            Some(raw) => raw
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|p| *p >= 1)
                .ok_or_else(|| {
                    DomainError::invalid("page", "must be a whole number of at least 1")
                })?,
        };
        let per_page = match per_page {
            None => DEFAULT_PER_PAGE,
            Some(raw) => raw
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_PER_PAGE).contains(n))
                .ok_or_else(|| {
                    DomainError::invalid("per_page", "must be a whole number from 1 to 100")
                })?,
        };
        Ok(PageRequest { page, per_page })
    }

    pub fn limit(&self) -> i64 {
        i64::from(self.per_page)
    }

    pub fn offset(&self) -> i64 {
        (i64::from(self.page) - 1) * i64::from(self.per_page)
    }

    pub fn describe(&self, total: u64) -> Pagination {
        let per_page = u64::from(self.per_page);
        let total_pages = total.div_ceil(per_page);
        let page = u64::from(self.page);
        Pagination {
            page: self.page,
            per_page: self.per_page,
            total,
            total_pages,
            has_next: page < total_pages,
            has_prev: page > 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Pagination {
    pub page: u32,
    pub per_page: u32,
    pub total: u64,
    pub total_pages: u64,
    pub has_next: bool,
    pub has_prev: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(
            PageRequest::parse(None, None).unwrap(),
            PageRequest::default()
        );
        assert_eq!(
            PageRequest::parse(Some("3"), Some("100")).unwrap().offset(),
            200
        );
        for (page, per_page) in [
            (Some("0"), None),
            (Some("-1"), None),
            (Some("x"), None),
            (None, Some("0")),
            (None, Some("101")),
            (None, Some("")),
            (Some("99999999999"), None),
        ] {
            assert!(
                PageRequest::parse(page, per_page).is_err(),
                "{page:?} {per_page:?}"
            );
        }
    }

    #[test]
    fn describes_pages() {
        let p = PageRequest {
            page: 1,
            per_page: 25,
        }
        .describe(42);
        assert_eq!((p.total_pages, p.has_next, p.has_prev), (2, true, false));
        let p = PageRequest {
            page: 2,
            per_page: 25,
        }
        .describe(42);
        assert_eq!((p.has_next, p.has_prev), (false, true));
        let p = PageRequest {
            page: 1,
            per_page: 25,
        }
        .describe(0);
        assert_eq!((p.total_pages, p.has_next, p.has_prev), (0, false, false));
        let p = PageRequest {
            page: 5,
            per_page: 10,
        }
        .describe(20);
        assert_eq!((p.has_next, p.has_prev), (false, true));
    }
}
