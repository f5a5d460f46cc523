//! Parsed operations, kept by their text.
//!
//! Clients send the same few operations over and over with different
//! variables (`publishEvent` above all), and parsing one was the largest
//! single cost of a small request: about a sixth of the server's
//! instructions per event at a steady 500 events/s. A document depends on
//! nothing but its text (the schema never changes while the process runs),
//! so the parse of a text seen before is taken from here.
//!
//! Only the parse is skipped. The other extensions' checks (nesting, NUL
//! text, exact numbers, the response budget) run on every request, since
//! they wrap this one, and validation runs on every request too, because it
//! checks the variables. A text that fails to parse is not kept: it fails
//! again, with the same error, every time.
//!
//! Bounded by bytes of text: a document longer than [`LONGEST`] is never
//! kept, and the least recently used ones go once the texts kept pass
//! [`BUDGET`]. The parsed form is a small multiple of its text.

use std::sync::Arc;

use async_graphql::{
    ServerResult, Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery},
    parser::types::ExecutableDocument,
};

use crate::kept::KeptByText;

/// Longest text kept, in bytes.
const LONGEST: usize = 16 * 1024;
/// Bytes of text kept in all.
const BUDGET: usize = 256 * 1024;

type Documents = KeptByText<Arc<ExecutableDocument>>;

/// The cache, shared by every request of one schema.
pub struct ParsedDocuments {
    documents: Arc<Documents>,
}

impl Default for ParsedDocuments {
    fn default() -> Self {
        Self {
            documents: Arc::new(KeptByText::new(LONGEST, BUDGET)),
        }
    }
}

impl ExtensionFactory for ParsedDocuments {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ParsedDocumentsExtension {
            documents: self.documents.clone(),
        })
    }
}

struct ParsedDocumentsExtension {
    documents: Arc<Documents>,
}

#[async_trait::async_trait]
impl Extension for ParsedDocumentsExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        // Execution takes the document by value: a copy of the kept one.
        if let Some(document) = self.documents.get(query) {
            return Ok(ExecutableDocument::clone(&document));
        }
        let document = next.run(ctx, query, variables).await?;
        self.documents.keep(query, Arc::new(document.clone()));
        Ok(document)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_graphql::{EmptyMutation, EmptySubscription, Request, Schema};

    use super::*;

    /// Counts the parses that reach it; placed inside the cache.
    struct Parses(Arc<AtomicUsize>);

    impl ExtensionFactory for Parses {
        fn create(&self) -> Arc<dyn Extension> {
            Arc::new(ParsesExtension(self.0.clone()))
        }
    }

    struct ParsesExtension(Arc<AtomicUsize>);

    #[async_trait::async_trait]
    impl Extension for ParsesExtension {
        async fn parse_query(
            &self,
            ctx: &ExtensionContext<'_>,
            query: &str,
            variables: &Variables,
            next: NextParseQuery<'_>,
        ) -> ServerResult<ExecutableDocument> {
            self.0.fetch_add(1, Ordering::Relaxed);
            next.run(ctx, query, variables).await
        }
    }

    struct Root;

    #[async_graphql::Object]
    impl Root {
        async fn double(&self, n: i32) -> i32 {
            n * 2
        }
    }

    #[tokio::test]
    async fn a_schema_parses_each_text_once_and_still_reads_each_requests_variables() {
        let parses = Arc::new(AtomicUsize::new(0));
        let schema = Schema::build(Root, EmptyMutation, EmptySubscription)
            .extension(ParsedDocuments::default())
            .extension(Parses(parses.clone()))
            .finish();
        let query = "query D($n: Int!) { double(n: $n) }";
        for n in [1, 2, 3] {
            let request =
                Request::new(query).variables(Variables::from_json(serde_json::json!({ "n": n })));
            let response = schema.execute(request).await;
            assert!(response.errors.is_empty(), "{:?}", response.errors);
            let data = response.data.into_json().expect("json");
            assert_eq!(data, serde_json::json!({ "double": n * 2 }));
        }
        let count = || parses.load(Ordering::Relaxed);
        assert_eq!(count(), 1, "parsed once, then taken from the cache");
        // Validation still runs on every request: a wrong variable fails.
        let wrong =
            Request::new(query).variables(Variables::from_json(serde_json::json!({ "n": "two" })));
        assert!(!schema.execute(wrong).await.errors.is_empty());
        // A text that does not parse is never kept: it fails every time.
        for _ in 0..2 {
            let response = schema.execute(Request::new("query { double(n: ")).await;
            assert!(!response.errors.is_empty());
        }
        assert_eq!(count(), 3, "the broken text was parsed (and failed) twice");
    }
}
