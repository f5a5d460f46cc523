//! Results kept by the text they were computed from, bounded by bytes.
//!
//! Two things are computed from a client's text alone and asked for again
//! on nearly every request: the parse of a GraphQL operation
//! (`graphql::documents`) and the signature check of a bearer token
//! (`auth`). [`KeptByText`] keeps the last of them, least recently used out
//! first: a text longer than `longest` is never kept, and the texts kept add
//! up to at most `budget` bytes.

use std::sync::{Mutex, MutexGuard};

use hashlink::LruCache;

pub struct KeptByText<V> {
    longest: usize,
    budget: usize,
    kept: Mutex<Kept<V>>,
}

struct Kept<V> {
    by_text: LruCache<Box<str>, V>,
    /// Bytes of the texts in `by_text`.
    bytes: usize,
}

impl<V: Clone> KeptByText<V> {
    pub fn new(longest: usize, budget: usize) -> Self {
        Self {
            longest,
            budget,
            kept: Mutex::new(Kept {
                by_text: LruCache::new_unbounded(),
                bytes: 0,
            }),
        }
    }

    fn kept(&self) -> MutexGuard<'_, Kept<V>> {
        self.kept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What was kept for `text`, marked as used just now.
    pub fn get(&self, text: &str) -> Option<V> {
        if text.len() > self.longest {
            return None;
        }
        self.kept().by_text.get(text).cloned()
    }

    pub fn keep(&self, text: &str, value: V) {
        if text.len() > self.longest {
            return;
        }
        let mut kept = self.kept();
        if kept.by_text.insert(text.into(), value).is_none() {
            kept.bytes += text.len();
        }
        while kept.bytes > self.budget {
            let Some((gone, _)) = kept.by_text.remove_lru() else {
                break;
            };
            kept.bytes -= gone.len();
        }
    }

    pub fn forget(&self, text: &str) {
        let mut kept = self.kept();
        if kept.by_text.remove(text).is_some() {
            kept.bytes -= text.len();
        }
    }

    /// Bytes of the texts kept.
    pub fn bytes(&self) -> usize {
        self.kept().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_go_once_the_texts_pass_the_budget() {
        let kept = KeptByText::new(100, 6);
        kept.keep("aa", 1);
        kept.keep("bb", 2);
        kept.keep("cc", 3);
        // `aa` was used last, so `bb` goes when `dd` comes.
        assert_eq!(kept.get("aa"), Some(1));
        kept.keep("dd", 4);
        assert_eq!(kept.get("bb"), None, "least recently used");
        assert_eq!(
            (kept.get("aa"), kept.get("cc"), kept.get("dd")),
            (Some(1), Some(3), Some(4))
        );
        assert_eq!(kept.bytes(), 6);
        // Keeping a text again replaces its value and does not count it twice.
        kept.keep("dd", 5);
        assert_eq!((kept.get("dd"), kept.bytes()), (Some(5), 6));
        kept.forget("dd");
        kept.forget("dd");
        assert_eq!((kept.get("dd"), kept.bytes()), (None, 4));
    }

    #[test]
    fn a_text_longer_than_the_longest_is_never_kept() {
        let kept = KeptByText::new(3, 100);
        kept.keep("abcd", 1);
        assert_eq!((kept.get("abcd"), kept.bytes()), (None, 0));
        kept.keep("abc", 2);
        assert_eq!(kept.get("abc"), Some(2));
    }
}
