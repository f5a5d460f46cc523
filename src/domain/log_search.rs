//! Searching the delivery log: deliveries and attempts by time range,
//! status or outcome, webhook, endpoint, event type and HTTP status, newest
//! first. Every filter narrows within the tenant; an attempt's webhook or
//! event type is matched through a subquery on its delivery and event. A
//! page reads the tenant's rows newest first (by id) until it is full, so a
//! filter that matches rarely reads further back than one that matches
//! often.

use entity::{
    delivery,
    delivery_attempt::{self, AttemptOutcome},
    event,
};
use sea_orm::{
    ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select,
    sea_query::{Expr, Query},
};

use super::{
    deliveries::{DeliveryFilter, DeliveryService, id_is},
    pagination::{Page, PageRequest},
    reach::partner_webhooks,
    validate,
};
use crate::{
    error::AppResult,
    ids::{DeliveryId, EndpointId, IdFilter, WebhookId},
};

/// Which attempts to list.
#[derive(Clone, Debug, Default)]
pub struct AttemptFilter {
    pub webhook_id: Option<IdFilter<WebhookId>>,
    pub endpoint_id: Option<IdFilter<EndpointId>>,
    pub delivery_id: Option<IdFilter<DeliveryId>>,
    pub event_type: Option<String>,
    pub outcome: Option<AttemptOutcome>,
    pub http_status: Option<i32>,
    /// Started at or after (epoch ms).
    pub since: Option<i64>,
    /// Started before (epoch ms).
    pub until: Option<i64>,
    /// Only attempts for the webhooks of this partner login.
    pub for_login: Option<String>,
}

/// The ids of the tenant's events of one type.
fn of_event_type(tenant: &str, event_type: &str) -> sea_orm::sea_query::SelectStatement {
    Query::select()
        .column(event::Column::Id)
        .from(event::Entity)
        .and_where(event::Column::TenantId.eq(tenant))
        .and_where(event::Column::EventType.eq(event_type))
        .to_owned()
}

/// Checks an event type given as a filter: any text up to a type's length.
fn check_event_type(field: &str, event_type: Option<&str>) -> AppResult<Option<String>> {
    validate::optional_text(field, event_type, 200)
}

impl DeliveryService {
    /// Deliveries, newest first, narrowed by `filter`.
    pub async fn list(
        &self,
        tenant: &str,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> AppResult<Page<delivery::Model>> {
        let event_type = check_event_type("filter.eventType", filter.event_type.as_deref())?;
        let mut query = delivery::Entity::find()
            .filter(delivery::Column::TenantId.eq(tenant))
            .order_by_desc(delivery::Column::Id)
            .limit(page.fetch_limit());
        if let Some(after) = &page.after {
            query = query.filter(delivery::Column::Id.lt(after.as_str()));
        }
        if let Some(webhook_id) = &filter.webhook_id {
            query = query.filter(id_is(delivery::Column::WebhookId, webhook_id));
        }
        if let Some(login) = &filter.for_login {
            query = query
                .filter(delivery::Column::WebhookId.in_subquery(partner_webhooks(tenant, login)));
        }
        if let Some(event_id) = &filter.event_id {
            query = query.filter(id_is(delivery::Column::EventId, event_id));
        }
        if let Some(endpoint_id) = &filter.endpoint_id {
            query = query.filter(id_is(delivery::Column::EndpointId, endpoint_id));
        }
        if let Some(status) = filter.status {
            query = query.filter(delivery::Column::Status.eq(status));
        }
        if let Some(event_type) = &event_type {
            query = query
                .filter(delivery::Column::EventId.in_subquery(of_event_type(tenant, event_type)));
        }
        if let Some(status) = filter.http_status {
            query = query.filter(delivery::Column::LastResponseStatus.eq(status));
        }
        if let Some(since) = filter.since {
            query = query.filter(delivery::Column::CreatedAt.gte(since));
        }
        if let Some(until) = filter.until {
            query = query.filter(delivery::Column::CreatedAt.lt(until));
        }
        let (rows, _) = self.log.read(|db| Box::pin(query.clone().all(db))).await?;
        Ok(Page::from_rows(rows, page))
    }

    /// Attempts, newest first, narrowed by `filter`, each with its delivery.
    pub async fn search_attempts(
        &self,
        tenant: &str,
        filter: &AttemptFilter,
        page: &PageRequest,
    ) -> AppResult<Page<(delivery_attempt::Model, delivery::Model)>> {
        let event_type = check_event_type("filter.eventType", filter.event_type.as_deref())?;
        let query = attempts_query(tenant, filter, event_type.as_deref(), page);
        // Both reads on one database, so every attempt finds its delivery.
        let ((rows, deliveries), _) = self
            .log
            .read(|db| {
                let (query, tenant) = (query.clone(), tenant.to_owned());
                Box::pin(async move {
                    let rows = query.all(db).await?;
                    let ids: Vec<&str> = rows.iter().map(|a| a.delivery_id.as_str()).collect();
                    let deliveries = delivery::Entity::find()
                        .filter(delivery::Column::TenantId.eq(tenant))
                        .filter(delivery::Column::Id.is_in(ids))
                        .all(db)
                        .await?;
                    Ok((rows, deliveries))
                })
            })
            .await?;
        let attempts = Page::from_rows(rows, page);
        let deliveries: std::collections::HashMap<DeliveryId, delivery::Model> =
            deliveries.into_iter().map(|d| (d.id.clone(), d)).collect();
        let Page {
            items,
            has_next,
            has_previous,
        } = attempts;
        Ok(Page {
            // An attempt whose delivery was deleted since is left out.
            items: items
                .into_iter()
                .filter_map(|a| deliveries.get(&a.delivery_id).cloned().map(|d| (a, d)))
                .collect(),
            has_next,
            has_previous,
        })
    }
}

fn attempts_query(
    tenant: &str,
    filter: &AttemptFilter,
    event_type: Option<&str>,
    page: &PageRequest,
) -> Select<delivery_attempt::Entity> {
    use delivery_attempt::Column;
    let mut query = delivery_attempt::Entity::find()
        .filter(Column::TenantId.eq(tenant))
        .order_by_desc(Column::Id)
        .limit(page.fetch_limit());
    if let Some(after) = &page.after {
        query = query.filter(Column::Id.lt(after.as_str()));
    }
    let mut deliveries = Query::select()
        .column(delivery::Column::Id)
        .from(delivery::Entity)
        .and_where(delivery::Column::TenantId.eq(tenant))
        .to_owned();
    let mut narrowed = false;
    if let Some(webhook_id) = &filter.webhook_id {
        deliveries.and_where(id_is(delivery::Column::WebhookId, webhook_id));
        narrowed = true;
    }
    if let Some(login) = &filter.for_login {
        deliveries
            .and_where(delivery::Column::WebhookId.in_subquery(partner_webhooks(tenant, login)));
        narrowed = true;
    }
    if let Some(event_type) = event_type {
        deliveries
            .and_where(delivery::Column::EventId.in_subquery(of_event_type(tenant, event_type)));
        narrowed = true;
    }
    if narrowed {
        query = query.filter(Column::DeliveryId.in_subquery(deliveries));
    }
    if let Some(endpoint_id) = &filter.endpoint_id {
        query = query.filter(match endpoint_id {
            IdFilter::Is(id) => Column::EndpointId.eq(id.as_str()),
            IdFilter::MatchesNothing => Expr::cust("1 = 0"),
        });
    }
    if let Some(delivery_id) = &filter.delivery_id {
        query = query.filter(match delivery_id {
            IdFilter::Is(id) => Column::DeliveryId.eq(id.as_str()),
            IdFilter::MatchesNothing => Expr::cust("1 = 0"),
        });
    }
    if let Some(outcome) = filter.outcome {
        query = query.filter(Column::Outcome.eq(outcome));
    }
    if let Some(status) = filter.http_status {
        query = query.filter(Column::ResponseStatus.eq(status));
    }
    if let Some(since) = filter.since {
        query = query.filter(Column::StartedAt.gte(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(Column::StartedAt.lt(until));
    }
    query
}
