//! The built-in event catalog: every event the affiliate platforms in the
//! product brief announce (Scaleo, Trackdesk, Everflow, Ambassador and the
//! portfolio API), as `object.action`. Tenants add their own types on top.

/// A built-in event type.
#[derive(Clone, Copy, Debug)]
pub struct BuiltinType {
    pub name: &'static str,
    pub description: &'static str,
}

/// Sent by `sendTestEvent`, so receivers can check their setup.
pub const TEST_EVENT_TYPE: &str = "webhook.test";

const fn t(name: &'static str, description: &'static str) -> BuiltinType {
    BuiltinType { name, description }
}

/// Sorted by name.
pub static BUILTIN_TYPES: &[BuiltinType] = &[
    t("advertiser.created", "An advertiser was created."),
    t("advertiser.deleted", "An advertiser was deleted."),
    t("advertiser.updated", "An advertiser's details changed."),
    t(
        "affiliate.created",
        "An affiliate signed up or was added, in any way.",
    ),
    t("affiliate.deleted", "An affiliate was deleted."),
    t(
        "affiliate.status_changed",
        "An affiliate's status changed after registration; carries the previous and the new status.",
    ),
    t(
        "affiliate.tier_changed",
        "An affiliate moved between tiers (automation or manual); carries the previous and the new tier.",
    ),
    t("affiliate.updated", "An affiliate's details changed."),
    t("click.created", "A click was recorded."),
    t("click.tracked", "A click on a shared link was tracked."),
    t("commission.created", "A commission was created."),
    t(
        "commission.status_changed",
        "A commission's status changed (approved, denied, ...); carries the previous and the new status.",
    ),
    t(
        "contact.added_to_campaign",
        "A contact gained access to a campaign.",
    ),
    t(
        "contact.added_to_segment",
        "A contact was added to a segment.",
    ),
    t("contact.created", "A contact was created."),
    t(
        "contact.status_changed",
        "A contact's status changed (e.g. enrolled); carries the previous and the new status.",
    ),
    t("conversion.created", "A conversion was recorded."),
    t("conversion.deleted", "A conversion was deleted."),
    t(
        "conversion.status_changed",
        "A conversion's status changed (approved, rejected, ...); carries the previous and the new status.",
    ),
    t("conversion.updated", "A conversion's details changed."),
    t(
        "coupon.created",
        "A coupon was created, with its affiliate and offer.",
    ),
    t("creative.created", "A creative was created."),
    t("creative.deleted", "A creative was deleted."),
    t("creative.updated", "A creative changed."),
    t("goal.created", "A goal was created."),
    t("goal.deleted", "A goal was deleted."),
    t("goal.updated", "A goal changed."),
    // hookline's own (`domain::operational`): only hookline publishes them,
    // and `*` does not select them.
    t(
        "hookline.delivery.exhausted",
        "hookline: a delivery failed its last attempt and will not be tried again.",
    ),
    t(
        "hookline.endpoint.disabled",
        "hookline: an endpoint was disabled (410 Gone, failing for too long, or by an admin).",
    ),
    t(
        "hookline.endpoint.failing",
        "hookline: an endpoint failed the configured number of attempts in a row.",
    ),
    t(
        "hookline.endpoint.recovered",
        "hookline: an endpoint that was failing answered successfully again.",
    ),
    t("landing_page.created", "A landing page was created."),
    t("landing_page.deleted", "A landing page was deleted."),
    t("landing_page.updated", "A landing page changed."),
    t(
        "offer.created",
        "An offer was created; the payload is the full offer. New offer URLs or smart links do not fire it.",
    ),
    t("offer.deleted", "An offer was deleted."),
    t(
        "offer.updated",
        "An offer's own fields changed; edits to its goals, landing pages, creatives or promo codes do not fire it.",
    ),
    t("payout.created", "A payout was created."),
    t("referral.created", "A contact referred another contact."),
    t("settlement.created", "A settlement was created."),
    t("share.tracked", "A share was tracked."),
    t("smart_link.created", "A smart link was created."),
    t("smart_link.deleted", "A smart link was deleted."),
    t("smart_link.updated", "A smart link changed."),
    t("ticket.created", "An affiliate submitted a ticket."),
    t(
        "ticket.updated",
        "An affiliate ticket changed (status, note, ...).",
    ),
    t(
        TEST_EVENT_TYPE,
        "A test ping sent on request from the admin UI.",
    ),
];

pub fn builtin(name: &str) -> Option<&'static BuiltinType> {
    BUILTIN_TYPES
        .binary_search_by(|candidate| candidate.name.cmp(name))
        .ok()
        .map(|index| &BUILTIN_TYPES[index])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::patterns::check_type_name;

    #[test]
    fn catalog_is_sorted_unique_and_well_formed() {
        for pair in BUILTIN_TYPES.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} before {}",
                pair[0].name,
                pair[1].name
            );
        }
        for entry in BUILTIN_TYPES {
            check_type_name(entry.name).expect("well-formed name");
            assert!(builtin(entry.name).is_some());
        }
    }

    #[test]
    fn catalog_covers_every_seed_object() {
        for object in [
            "affiliate",
            "advertiser",
            "offer",
            "goal",
            "landing_page",
            "creative",
            "smart_link",
            "conversion",
            "click",
            "coupon",
            "settlement",
            "ticket",
            "contact",
            "commission",
            "payout",
            "referral",
            "share",
        ] {
            assert!(
                BUILTIN_TYPES
                    .iter()
                    .any(|t| t.name.starts_with(&format!("{object}."))),
                "no event for {object}"
            );
        }
    }
}
