export type Maybe<T> = T | null;
export type InputMaybe<T> = Maybe<T>;
export type Exact<T extends { [key: string]: unknown }> = { [K in keyof T]: T[K] };
export type MakeOptional<T, K extends keyof T> = Omit<T, K> & { [SubKey in K]?: Maybe<T[SubKey]> };
export type MakeMaybe<T, K extends keyof T> = Omit<T, K> & { [SubKey in K]: Maybe<T[SubKey]> };
export type MakeEmpty<T extends { [key: string]: unknown }, K extends keyof T> = { [_ in K]?: never };
export type Incremental<T> = T | { [P in keyof T]?: P extends ' $fragmentName' | '__typename' ? T[P] : never };
/** All built-in and custom scalars, mapped to their actual values */
export type Scalars = {
  ID: { input: string; output: string; }
  String: { input: string; output: string; }
  Boolean: { input: boolean; output: boolean; }
  Int: { input: number; output: number; }
  Float: { input: number; output: number; }
  /**
   * Implement the DateTime<Utc> scalar
   *
   * The input/output is a string in RFC3339 format.
   */
  DateTime: { input: string; output: string; }
  /** A scalar that can represent any JSON value. */
  JSON: { input: unknown; output: unknown; }
};

/** Why an attempt failed. */
export type AttemptErrorKind =
  /** The host resolved to a private, loopback or link-local address. */
  | 'BLOCKED_ADDRESS'
  /** The connection could not be made or broke. */
  | 'CONNECTION'
  /** The host name did not resolve. */
  | 'DNS'
  /** The endpoint answered with a status outside 2xx. */
  | 'NON_2XX'
  /**
   * No request was made: the webhook's body template or URL macros could
   * not be rendered for this event (a field it lacks, say). The delivery
   * fails at once; fix the template and retry it.
   */
  | 'RENDER'
  /** No complete answer within the webhook's timeout. */
  | 'TIMEOUT'
  /** The TLS handshake failed. */
  | 'TLS';

/** Which attempts `deliveryAttempts` lists; every field narrows. */
export type AttemptFilter = {
  deliveryId?: InputMaybe<Scalars['ID']['input']>;
  endpointId?: InputMaybe<Scalars['ID']['input']>;
  /** Attempts at events of this type. */
  eventType?: InputMaybe<Scalars['String']['input']>;
  /** Answered with this HTTP status. */
  httpStatus?: InputMaybe<Scalars['Int']['input']>;
  outcome?: InputMaybe<AttemptOutcome>;
  /** Started at or after. */
  since?: InputMaybe<Scalars['DateTime']['input']>;
  /** Started before. */
  until?: InputMaybe<Scalars['DateTime']['input']>;
  webhookId?: InputMaybe<Scalars['ID']['input']>;
};

export type AttemptOutcome =
  | 'FAILED'
  | 'SUCCEEDED';

export type CreateEventTypeInput = {
  description: Scalars['String']['input'];
  /** `object.action`, lowercase, e.g. `invoice.paid`. */
  name: Scalars['String']['input'];
  /**
   * JSON Schema for the payload; publishing refuses data that fails it. At
   * most 64 KiB, 100 branches per `allOf`/`anyOf`/`oneOf`, and a weight
   * of 2 000 subschemas (`$ref`s expanded), `enum` values and `required`
   * names; `$ref` only inside the schema and never in a cycle.
   */
  schema?: InputMaybe<Scalars['JSON']['input']>;
};

export type CreateWebhookInput = {
  /**
   * With `payloadFormat: TEMPLATE`: a minijinja template of the JSON body,
   * rendered with the event (`id`, `type`, `timestamp`, `data`); at most
   * 16 KiB, checked when saved.
   */
  bodyTemplate?: InputMaybe<Scalars['String']['input']>;
  /** Only events whose `data` passes these conditions. */
  dataFilter?: InputMaybe<DataFilterInput>;
  description?: InputMaybe<Scalars['String']['input']>;
  /** One to ten endpoints; every matching event goes to each. */
  endpoints: Array<EndpointInput>;
  /** Exact event type names, `object.*` or `*`. */
  eventTypes: Array<Scalars['String']['input']>;
  /**
   * The partner login the webhook belongs to (seed 002's "For Login"):
   * that partner manages it, and it receives only events whose `login`
   * label is this login. Set only when created; a partner's own
   * webhooks always belong to it.
   */
  forLogin?: InputMaybe<Scalars['String']['input']>;
  /**
   * Only events carrying all these labels, each with one of the values
   * allowed: `{"campaignId": "42"}`, `{"campaignId": ["42", "43"]}`.
   */
  labelFilter?: InputMaybe<Scalars['JSON']['input']>;
  /**
   * POST unless given; `GET` and `POST_FORM` make postbacks from the
   * endpoint URL's macros.
   */
  method?: InputMaybe<DeliveryMethod>;
  name: Scalars['String']['input'];
  /** Deliver in order (see `OrderingInput`); unordered when not given. */
  ordering?: InputMaybe<OrderingInput>;
  /** ENVELOPE unless given. */
  payloadFormat?: InputMaybe<PayloadFormat>;
  /** Defaults to 16 attempts over about 31 hours. */
  retryPolicy?: InputMaybe<RetryPolicyInput>;
  /** HMAC_SHA256 (shared secret, `v1`) unless given. */
  signatureScheme?: InputMaybe<SignatureScheme>;
  /** ACTIVE unless given. */
  status?: InputMaybe<WebhookStatusInput>;
  team?: InputMaybe<Scalars['String']['input']>;
  /** Default 15 000 ms; 100 to 30 000. */
  timeoutMs?: InputMaybe<Scalars['Int']['input']>;
};

/**
 * A condition on the event's `data`: exactly one of `all`, `any`, `not`,
 * or `field` with one or more tests (which must all hold). For example
 * `{ all: [{ field: "status", in: ["approved", "paid"] },
 * { field: "payout", gte: 10 }] }`. At most 4 levels deep and 64
 * conditions; checked when saved.
 */
export type DataFilterInput = {
  /** Every condition holds. */
  all?: InputMaybe<Array<DataFilterInput>>;
  /** At least one condition holds. */
  any?: InputMaybe<Array<DataFilterInput>>;
  /** The field equals this string, number or boolean (numbers by value). */
  equals?: InputMaybe<Scalars['JSON']['input']>;
  /** The field is present (`true`, even when null) or absent (`false`). */
  exists?: InputMaybe<Scalars['Boolean']['input']>;
  /** A field of `data` by dotted path: `status`, `offer.id`, `items.0.sku`. */
  field?: InputMaybe<Scalars['String']['input']>;
  /** The field is a number greater than this. */
  gt?: InputMaybe<Scalars['Float']['input']>;
  gte?: InputMaybe<Scalars['Float']['input']>;
  /** The field equals one of these (at most 100). */
  in?: InputMaybe<Array<Scalars['JSON']['input']>>;
  lt?: InputMaybe<Scalars['Float']['input']>;
  lte?: InputMaybe<Scalars['Float']['input']>;
  /** The condition does not hold. */
  not?: InputMaybe<DataFilterInput>;
};

export type DeliveryAttemptFilter = {
  /** An exact type, `object.*` or `*`. */
  eventType?: InputMaybe<Scalars['String']['input']>;
  outcome?: InputMaybe<AttemptOutcome>;
  webhookId?: InputMaybe<Scalars['ID']['input']>;
};

export type DeliveryFilter = {
  endpointId?: InputMaybe<Scalars['ID']['input']>;
  eventId?: InputMaybe<Scalars['ID']['input']>;
  /** Deliveries of events of this type. */
  eventType?: InputMaybe<Scalars['String']['input']>;
  /** Whose last attempt was answered with this HTTP status. */
  httpStatus?: InputMaybe<Scalars['Int']['input']>;
  /** Created at or after. */
  since?: InputMaybe<Scalars['DateTime']['input']>;
  status?: InputMaybe<DeliveryStatus>;
  /** Created before. */
  until?: InputMaybe<Scalars['DateTime']['input']>;
  webhookId?: InputMaybe<Scalars['ID']['input']>;
};

/** How a webhook's requests are made. */
export type DeliveryMethod =
  /**
   * A postback: `GET` the endpoint URL, its macros filled in
   * (`?click_id={{ data.clickId }}`), without a body. Signed over the
   * request's path and query in place of a body.
   */
  | 'GET'
  /** A `POST` with a JSON body (see `PayloadFormat`). The default. */
  | 'POST'
  /**
   * A postback as a form: `POST` the URL's query, macros filled in, as an
   * `application/x-www-form-urlencoded` body to the URL without it.
   */
  | 'POST_FORM';

export type DeliveryStatus =
  /** Stopped by an admin, or its webhook was paused or disabled. */
  | 'CANCELLED'
  /** Every attempt failed, or the endpoint answered 410 Gone. */
  | 'FAILED'
  /** Not attempted yet. */
  | 'PENDING'
  /** Attempts failed; another is scheduled (`nextAttemptAt`). */
  | 'RETRYING'
  /** An attempt got a 2xx. */
  | 'SUCCEEDED';

export type DeliveryStatusFilter = {
  webhookId?: InputMaybe<Scalars['ID']['input']>;
};

export type EndpointInput = {
  /** Extra headers sent with every request (not `content-type`, `host` or `webhook-*`). */
  headers?: InputMaybe<Array<HeaderInput>>;
  /**
   * Most requests a second to this endpoint, from all instances together:
   * 1 to 10 000, or null for no limit. Deliveries over the limit wait
   * their turn; none is dropped.
   */
  rateLimitPerSecond?: InputMaybe<Scalars['Int']['input']>;
  /** Absolute http(s) URL, at most 2 048 characters. */
  url: Scalars['String']['input'];
};

export type EndpointStatus =
  /** Receives deliveries. */
  | 'ACTIVE'
  /**
   * Receives nothing: hookline disabled it (`410 Gone`, or every attempt
   * failing for the configured period) or an admin did. `enableEndpoint`
   * brings it back.
   */
  | 'DISABLED';

export type EventFilter = {
  /** Published at or after. */
  since?: InputMaybe<Scalars['DateTime']['input']>;
  /** Only events of this type. */
  type?: InputMaybe<Scalars['String']['input']>;
  /** Published before. */
  until?: InputMaybe<Scalars['DateTime']['input']>;
};

export type EventPublishedFilter = {
  /** An exact type, `object.*` or `*`. */
  type?: InputMaybe<Scalars['String']['input']>;
};

export type EventTypeFilter = {
  /** Only types with this action, e.g. `created`. */
  action?: InputMaybe<Scalars['String']['input']>;
  /** Include archived custom types (default false). */
  includeArchived?: Scalars['Boolean']['input'];
  /** Only types of this object, e.g. `offer`. */
  object?: InputMaybe<Scalars['String']['input']>;
  /** Case-insensitive text in the name or description. */
  search?: InputMaybe<Scalars['String']['input']>;
};

export type HeaderInput = {
  name: Scalars['String']['input'];
  value: Scalars['String']['input'];
};

/**
 * Ordered delivery: the deliveries of one sequence are attempted one at a
 * time, in publish order; a failing one holds back its sequence alone, and
 * once it fails for good (or is cancelled) the next goes.
 */
export type OrderingInput = {
  /**
   * A label name: one sequence per endpoint and value of this label
   * (events without it share one). Omitted: one sequence per endpoint.
   */
  key?: InputMaybe<Scalars['String']['input']>;
};

/** What a webhook's `POST` carries. */
export type PayloadFormat =
  /**
   * The event's `data` alone, byte for byte as published (keys in their
   * order), for receivers that expect the object itself.
   */
  | 'DATA_ONLY'
  /** `{"id","type","timestamp","data"}`: the event with its envelope (the default). */
  | 'ENVELOPE'
  /**
   * `bodyTemplate` rendered for each event: values are written as JSON
   * (`{{ data.name }}` is `"Ann"`), and the result must be JSON.
   */
  | 'TEMPLATE';

/** A made-up event to preview a webhook's requests with. */
export type PreviewSampleInput = {
  data: Scalars['JSON']['input'];
  /** Labels, for `wouldDeliver`. */
  labels?: InputMaybe<Scalars['JSON']['input']>;
  /** Its event type (need not be one the webhook subscribes to). */
  type: Scalars['String']['input'];
};

export type PublishEventInput = {
  /**
   * The payload: public ids, and for `*.status_changed` both the previous
   * and the new status.
   */
  data: Scalars['JSON']['input'];
  /**
   * Publishing again with the same key within 24 hours returns the first
   * event instead of creating another.
   */
  idempotencyKey?: InputMaybe<Scalars['String']['input']>;
  /** String labels webhooks can filter on, e.g. `{"campaignId": "42"}`. */
  labels?: InputMaybe<Scalars['JSON']['input']>;
  /** When it happened; now if omitted. */
  occurredAt?: InputMaybe<Scalars['DateTime']['input']>;
  /** A known event type, `object.action`. */
  type: Scalars['String']['input'];
};

/**
 * Which deliveries a recovery re-queues: those of one webhook, or of one
 * endpoint (give exactly one), created in `[since, until)`.
 */
export type RecoveryFilter = {
  endpointId?: InputMaybe<Scalars['ID']['input']>;
  since: Scalars['DateTime']['input'];
  /** Settled statuses to re-queue: FAILED and CANCELLED when not given. */
  statuses?: InputMaybe<Array<DeliveryStatus>>;
  until?: InputMaybe<Scalars['DateTime']['input']>;
  webhookId?: InputMaybe<Scalars['ID']['input']>;
};

export type RecoveryState =
  /** Stopped by an admin; what it had re-queued stays queued. */
  | 'CANCELLED'
  /**
   * Every matching delivery was re-queued (they may still be being
   * attempted: see `open`).
   */
  | 'COMPLETED'
  /** Re-queueing, a chunk at a time. */
  | 'RUNNING';

export type RetryPolicyInput = {
  /** Wait after the first failure, in ms (at least 10). */
  initialIntervalMs: Scalars['Int']['input'];
  /** Attempts in all, the first included: 1 to 50. */
  maxAttempts: Scalars['Int']['input'];
  /** Longest wait between attempts, in ms (at most 7 days). */
  maxIntervalMs: Scalars['Int']['input'];
};

export type Role =
  | 'ADMIN'
  /** An affiliate or advertiser: its own webhooks and their deliveries only. */
  | 'PARTNER'
  | 'PUBLISHER'
  | 'VIEWER';

/** How deliveries are signed (Standard Webhooks). */
export type SignatureScheme =
  /**
   * `v1a,` signatures: ed25519, verified with the webhook's `whpk_`
   * `publicKey`; the private key never leaves hookline.
   */
  | 'ED25519'
  /** `v1,` signatures: HMAC-SHA256 with the shared `whsec_` secret. */
  | 'HMAC_SHA256';

export type UpdateEventTypeInput = {
  description?: InputMaybe<Scalars['String']['input']>;
  /** A new schema (same bounds as when creating), or null to remove it. */
  schema?: InputMaybe<Scalars['JSON']['input']>;
};

export type UpdateWebhookInput = {
  /** A new body template (with `payloadFormat: TEMPLATE`), or null to drop it. */
  bodyTemplate?: InputMaybe<Scalars['String']['input']>;
  /** New conditions on `data`, or null to deliver regardless of it. */
  dataFilter?: InputMaybe<DataFilterInput>;
  description?: InputMaybe<Scalars['String']['input']>;
  /** Replaces the endpoint list; endpoints whose URL stays keep their history. */
  endpoints?: InputMaybe<Array<EndpointInput>>;
  eventTypes?: InputMaybe<Array<Scalars['String']['input']>>;
  /** New filter, or null to deliver regardless of labels. */
  labelFilter?: InputMaybe<Scalars['JSON']['input']>;
  method?: InputMaybe<DeliveryMethod>;
  name?: InputMaybe<Scalars['String']['input']>;
  /**
   * Ordered delivery, or null for none: applies to deliveries made from
   * then on.
   */
  ordering?: InputMaybe<OrderingInput>;
  /** Leaving `TEMPLATE` drops the template. */
  payloadFormat?: InputMaybe<PayloadFormat>;
  retryPolicy?: InputMaybe<RetryPolicyInput>;
  status?: InputMaybe<WebhookStatusInput>;
  /** New team, or null to clear it. */
  team?: InputMaybe<Scalars['String']['input']>;
  timeoutMs?: InputMaybe<Scalars['Int']['input']>;
};

export type WebhookFilter = {
  /** Webhooks that receive this event type, exactly or through a wildcard. */
  eventType?: InputMaybe<Scalars['String']['input']>;
  /**
   * Only the webhooks of this partner login (a partner always sees only
   * its own).
   */
  forLogin?: InputMaybe<Scalars['String']['input']>;
  /** Case-insensitive text in the name or description. */
  search?: InputMaybe<Scalars['String']['input']>;
  status?: InputMaybe<WebhookStatus>;
  team?: InputMaybe<Scalars['String']['input']>;
};

export type WebhookStatus =
  /** Receives events. */
  | 'ACTIVE'
  /**
   * Disabled by hookline when none of its endpoints was left active (each
   * is disabled alone after `410 Gone` or persistent failure); an admin
   * sets it ACTIVE again, which enables its endpoints too, or enables one
   * endpoint with `enableEndpoint`.
   */
  | 'DISABLED'
  /** Paused by an admin: receives nothing until set ACTIVE again. */
  | 'PAUSED';

/** The statuses an admin may set. */
export type WebhookStatusInput =
  | 'ACTIVE'
  | 'PAUSED';

export type WebhookSummaryFragment = { id: string, name: string, eventTypes: Array<string>, status: WebhookStatus, createdAt: string, lastSentAt: string | null, endpoints: Array<{ id: string, url: string }> };

export type ListWebhooksQueryVariables = Exact<{
  first?: InputMaybe<Scalars['Int']['input']>;
  after?: InputMaybe<Scalars['String']['input']>;
  filter?: InputMaybe<WebhookFilter>;
}>;


export type ListWebhooksQuery = { webhooks: { edges: Array<{ cursor: string, node: { id: string, name: string, eventTypes: Array<string>, status: WebhookStatus, createdAt: string, lastSentAt: string | null, endpoints: Array<{ id: string, url: string }> } }>, pageInfo: { hasNextPage: boolean, endCursor: string | null } } };

export type CreateWebhookMutationVariables = Exact<{
  input: CreateWebhookInput;
}>;


export type CreateWebhookMutation = { createWebhook: { secret: string, webhook: { id: string, name: string, eventTypes: Array<string>, status: WebhookStatus, createdAt: string, lastSentAt: string | null, retryPolicy: { maxAttempts: number, initialIntervalMs: number, maxIntervalMs: number }, endpoints: Array<{ id: string, url: string }> } } };

export type PublishEventMutationVariables = Exact<{
  input: PublishEventInput;
}>;


export type PublishEventMutation = { publishEvent: { deliveryCount: number, duplicate: boolean, event: { id: string, type: string, occurredAt: string } } };

export type EventDeliveriesQueryVariables = Exact<{
  eventId: Scalars['ID']['input'];
}>;


export type EventDeliveriesQuery = { event: { deliveries: { edges: Array<{ node: { id: string, status: DeliveryStatus, webhookId: string } }> } } };

export type DeliveryWithAttemptsQueryVariables = Exact<{
  id: Scalars['ID']['input'];
}>;


export type DeliveryWithAttemptsQuery = { delivery: { id: string, status: DeliveryStatus, attemptCount: number, nextAttemptAt: string | null, lastResponseStatus: number | null, event: { id: string, type: string }, endpoint: { url: string } | null, attempts: Array<{ attemptNumber: number, outcome: AttemptOutcome, responseStatus: number | null, durationMs: number, errorKind: AttemptErrorKind | null, errorMessage: string | null, startedAt: string }> } };

export type DeliveryAttemptsSubscriptionVariables = Exact<{
  filter?: InputMaybe<DeliveryAttemptFilter>;
}>;


export type DeliveryAttemptsSubscription = { deliveryAttempts: { id: string, attemptNumber: number, outcome: AttemptOutcome, responseStatus: number | null, durationMs: number, errorKind: AttemptErrorKind | null, eventType: string, endpointUrl: string, startedAt: string, delivery: { id: string, status: DeliveryStatus, attemptCount: number } } };

/** Every query and mutation of src/operations.graphql, by operation name: [result, variables]. */
export interface Operations {
  ListWebhooks: [ListWebhooksQuery, ListWebhooksQueryVariables];
  CreateWebhook: [CreateWebhookMutation, CreateWebhookMutationVariables];
  PublishEvent: [PublishEventMutation, PublishEventMutationVariables];
  EventDeliveries: [EventDeliveriesQuery, EventDeliveriesQueryVariables];
  DeliveryWithAttempts: [DeliveryWithAttemptsQuery, DeliveryWithAttemptsQueryVariables];
}

/** Every subscription of src/operations.graphql, by operation name: [result, variables]. */
export interface Subscriptions {
  DeliveryAttempts: [DeliveryAttemptsSubscription, DeliveryAttemptsSubscriptionVariables];
}
