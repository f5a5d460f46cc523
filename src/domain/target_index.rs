//! Which of a tenant's webhooks may want an event, found without looking at
//! every one: an index over their event type patterns and, within each, the
//! label values their filters allow.
//!
//! Each target is filed under each of its patterns (an exact type, an
//! `object.*`, or `*`); within a pattern, a target whose label filter names
//! a label is filed under that label's allowed values (its first label: any
//! one narrows it enough), the others apart. An event looks up its type, its
//! object and `*`, and in each the values its labels carry: the candidates,
//! a superset of the targets that want it, on which the full check
//! (patterns, every label, the `data` filter) then runs. With 1 000 webhooks
//! filtering one campaign each, an event is checked against the few for its
//! campaign, not the thousand.

use std::collections::HashMap;

use super::{
    labels::Labels,
    patterns::{Pattern, object_of},
    reach::PARTNER_LABEL,
    targets::Target,
};

#[derive(Default)]
pub struct TargetIndex {
    exact: HashMap<String, Bucket>,
    objects: HashMap<String, Bucket>,
    all: Bucket,
}

#[derive(Default)]
struct Bucket {
    /// Targets without a label filter.
    unlabelled: Vec<usize>,
    /// Targets by the label their filter is filed under, then by each value
    /// it allows.
    by_label: HashMap<String, HashMap<String, Vec<usize>>>,
}

impl Bucket {
    fn add(&mut self, index: usize, target: &Target) {
        // A partner's webhook takes only events labelled with its login:
        // filed under it, thousands of partners cost an event one lookup.
        if let Some(login) = &target.for_login {
            let by_value = self.by_label.entry(PARTNER_LABEL.to_owned()).or_default();
            by_value.entry(login.clone()).or_default().push(index);
            return;
        }
        match target.filter.iter().next() {
            None => self.unlabelled.push(index),
            Some((label, values)) => {
                let by_value = self.by_label.entry(label.clone()).or_default();
                for value in values {
                    by_value.entry(value.clone()).or_default().push(index);
                }
            }
        }
    }

    fn candidates(&self, labels: &Labels, out: &mut Vec<usize>) {
        out.extend_from_slice(&self.unlabelled);
        for (label, by_value) in &self.by_label {
            if let Some(found) = labels.get(label).and_then(|value| by_value.get(value)) {
                out.extend_from_slice(found);
            }
        }
    }
}

impl TargetIndex {
    pub fn build(targets: &[Target]) -> Self {
        let mut index = Self::default();
        for (i, target) in targets.iter().enumerate() {
            for pattern in &target.patterns {
                let bucket = match pattern {
                    Pattern::All => &mut index.all,
                    Pattern::Object(object) => index.objects.entry(object.clone()).or_default(),
                    Pattern::Exact(name) => index.exact.entry(name.clone()).or_default(),
                };
                bucket.add(i, target);
            }
        }
        index
    }

    /// Positions of the targets that may want an event of `event_type`
    /// with `labels`, in order, each once.
    pub fn candidates(&self, event_type: &str, labels: &Labels) -> Vec<usize> {
        let mut out = Vec::new();
        if let Some(bucket) = self.exact.get(event_type) {
            bucket.candidates(labels, &mut out);
        }
        if let Some(bucket) = self.objects.get(object_of(event_type)) {
            bucket.candidates(labels, &mut out);
        }
        self.all.candidates(labels, &mut out);
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::domain::labels::{LabelFilter, filter_from_json};

    fn target(patterns: &[&str], filter: Value) -> Target {
        Target {
            webhook_id: crate::ids::WebhookId::new(),
            patterns: patterns
                .iter()
                .map(|p| Pattern::parse(p).expect("pattern"))
                .collect(),
            filter: filter_from_json(&filter),
            data_filter: None,
            endpoint_ids: Vec::new(),
            ordering: None,
            for_login: None,
        }
    }

    #[test]
    fn an_event_finds_only_targets_for_its_type_and_label_values() {
        let targets = vec![
            target(&["conversion.created"], json!({ "campaignId": "42" })),
            target(&["conversion.*"], json!({ "campaignId": ["43", "44"] })),
            target(&["*"], json!({})),
            target(&["offer.created"], json!({})),
            target(&["conversion.created", "conversion.*"], json!({})),
        ];
        let index = TargetIndex::build(&targets);
        let labels = |c: &str| Labels::from([("campaignId".to_owned(), c.to_owned())]);
        assert_eq!(
            index.candidates("conversion.created", &labels("42")),
            [0, 2, 4]
        );
        assert_eq!(
            index.candidates("conversion.updated", &labels("44")),
            [1, 2, 4]
        );
        assert_eq!(index.candidates("offer.created", &Labels::new()), [2, 3]);
    }

    fn any_filter() -> impl Strategy<Value = LabelFilter> {
        prop::collection::btree_map("[ab]", prop::collection::vec("[xyz]", 1..3), 0..3)
    }

    proptest! {
        /// The index never misses a target that wants the event.
        #[test]
        fn candidates_hold_every_target_that_wants_the_event(
            specs in prop::collection::vec((prop::sample::select(vec!["a.x", "a.*", "*", "b.y"]), any_filter()), 0..12),
            event_type in prop::sample::select(vec!["a.x", "a.z", "b.y", "hookline.endpoint.failing"]),
            labels in prop::collection::btree_map("[abc]", "[xyz]", 0..3),
        ) {
            let targets: Vec<Target> = specs
                .iter()
                .map(|(pattern, filter)| {
                    let mut t = target(&[pattern], json!({}));
                    t.filter = filter.clone();
                    t
                })
                .collect();
            let index = TargetIndex::build(&targets);
            let found = index.candidates(event_type, &labels);
            let data = json!({});
            for (i, t) in targets.iter().enumerate() {
                if t.wants(event_type, &labels, &data) {
                    prop_assert!(found.contains(&i), "missed target {}", i);
                }
            }
        }
    }
}
