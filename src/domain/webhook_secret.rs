//! Rotating a webhook's signing secret, and choosing how it signs.

use entity::webhook;
use sea_orm::{ActiveValue::Set, TransactionTrait};

use super::{
    endpoints::endpoints_of,
    webhooks::{WebhookRecord, WebhookService, lock_in_tenant, save_change},
};
use crate::{
    crypto::{SignatureScheme, generate_secret, public_key},
    error::{AppError, AppResult},
    ids::WebhookId,
    time::now_ms,
};

impl WebhookService {
    /// Issues a new secret, of `scheme` (the current one's when not given).
    /// The previous one keeps signing, beside the new one, for the rotation
    /// grace period, so receivers can switch without loss. Returns what
    /// receivers verify with: the new `whsec_` secret, or the new `whpk_`
    /// public key.
    ///
    /// The secret replaced is read with the row locked in the transaction
    /// that replaces it: two rotations at once then run one after the other,
    /// the second keeping the first's new secret as its previous one. Read
    /// before the transaction, both kept the secret they had both read, and
    /// the first's, which its caller had been given, never signed.
    pub async fn rotate_secret(
        &self,
        tenant: &str,
        id: &WebhookId,
        scheme: Option<SignatureScheme>,
    ) -> AppResult<(WebhookRecord, String)> {
        let txn = self.db.begin().await?;
        let existing = lock_in_tenant(&txn, tenant, id).await?;
        let (model, verify_with) = self.rotated(&existing, scheme)?;
        let webhook = save_change(&txn, &existing, model).await?;
        let endpoints = endpoints_of(&txn, std::slice::from_ref(&webhook.id)).await?;
        txn.commit().await?;
        Ok((WebhookRecord { webhook, endpoints }, verify_with))
    }

    /// `existing` with a new secret of `scheme` (its own when not given) and
    /// its current one kept as the previous, with what receivers verify with.
    fn rotated(
        &self,
        existing: &webhook::Model,
        scheme: Option<SignatureScheme>,
    ) -> AppResult<(webhook::ActiveModel, String)> {
        let scheme = scheme.unwrap_or(if existing.public_key.is_some() {
            SignatureScheme::Ed25519
        } else {
            SignatureScheme::HmacSha256
        });
        let secret = generate_secret(scheme);
        let public = public_key(&secret).map_err(AppError::internal)?;
        let grace = self.rules.secret_rotation_grace.as_millis() as i64;
        let mut model: webhook::ActiveModel = existing.clone().into();
        model.previous_secret = Set(Some(existing.secret.clone()));
        model.previous_secret_expires_at = Set(Some(now_ms() + grace));
        model.secret = Set(self.secrets.seal(&secret));
        model.public_key = Set(public.clone());
        Ok((model, public.unwrap_or(secret)))
    }
}
