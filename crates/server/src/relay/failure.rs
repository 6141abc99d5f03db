//! How an attempt's failure becomes a cooldown (or an invalid key) and how a request's failures become the client's
//! error: classify once, map once.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use providers::{ErrorClass, UpstreamFailure};
use router::Outcome;
use tokio::time::Instant;
use wire::{ApiError, ErrorType};

use crate::runtime::snapshot::{ProviderKeyEntry, Tenant};
use crate::runtime::state::AppState;

/// Time until the next UTC midnight, when most free tiers reset their daily allowance.
pub(super) fn until_utc_midnight() -> Duration {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Duration::from_secs(86_400 - secs % 86_400)
}

pub(super) fn outcome_for(failure: &UpstreamFailure, request_id: &str) -> Outcome {
    match failure.class {
        ErrorClass::RateLimited => Outcome::RateLimited {
            retry_after: failure.retry_after,
        },
        ErrorClass::QuotaExhausted => Outcome::QuotaExhausted {
            retry_after: failure.retry_after,
            until_daily_reset: until_utc_midnight(),
        },
        ErrorClass::Auth => Outcome::InvalidCredential,
        // A proxy's failure says nothing about the key.
        ErrorClass::BadRequest | ErrorClass::ContextTooLong | ErrorClass::Proxy => {
            Outcome::NoPenalty
        }
        ErrorClass::Server => Outcome::ServerError {
            retry_after: failure.retry_after,
            request: {
                use std::hash::{BuildHasher, BuildHasherDefault};
                BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
                    .hash_one(request_id)
            },
        },
        ErrorClass::NotFound | ErrorClass::Network | ErrorClass::Timeout => Outcome::Transient {
            retry_after: failure.retry_after,
        },
    }
}

pub(super) fn all_cooling_error(model: &str, wait: u64) -> ApiError {
    ApiError::new(
        429,
        ErrorType::RateLimitError,
        "all_keys_cooling",
        format!(
            "every provider key for `{model}` is rate-limited, cooling down or at its configured limit; retry in about {wait}s"
        ),
    )
    .with_retry_after(wait)
}

/// No candidate could ever run: every key is invalid or none fits the request.
pub(super) fn no_candidate_error(model: &str, plan: &router::Plan) -> ApiError {
    if plan.invalid > 0 && plan.unfit == 0 {
        return ApiError::new(
            503,
            ErrorType::ServiceUnavailable,
            "no_provider_available",
            format!(
                "every provider key for `{model}` was refused by its provider (invalid credentials); fix or re-check the keys"
            ),
        );
    }
    ApiError::invalid_request(
        "context_length_exceeded",
        format!(
            "no provider for `{model}` can take this request: the prompt plus max_tokens exceeds every candidate's context window or per-minute token limit"
        ),
    )
    .with_param("messages")
}

/// Cools the candidate (or marks its key invalid) and logs the failure; returns the cooldown set, if any.
/// When a dashboard is watching: once the cooldown just set is over (and no later failure extended it), a
/// `key.status` event says the candidate is available again, so Live and the routing inspector need not guess from
/// the clock.
fn announce_cooldown_end(
    state: &AppState,
    user: &Arc<str>,
    key: &ProviderKeyEntry,
    model: &str,
    cooldown: Duration,
) {
    if !state.events.listening() {
        return;
    }
    let (state, user, key_id, model) = (
        state.clone(),
        Arc::clone(user),
        Arc::clone(&key.id),
        model.to_owned(),
    );
    tokio::spawn(async move {
        tokio::time::sleep(cooldown).await;
        let now = Instant::now();
        if state
            .books
            .cooldowns
            .cooling_until((&key_id, &model), now)
            .is_some()
        {
            return;
        }
        state.events.publish(&user, "key.status", || {
            serde_json::json!({
                "key_id": key_id, "model": model, "status": "healthy", "reason": "cooldown ended",
            })
        });
    });
}

pub(super) fn on_failure(
    state: &AppState,
    request_id: &str,
    user: &Arc<str>,
    key: &ProviderKeyEntry,
    model: &str,
    failure: &UpstreamFailure,
) -> Option<Duration> {
    let cooldown = state.cool(
        (&key.id, model),
        outcome_for(failure, request_id),
        Instant::now(),
    );
    if cooldown.is_none() {
        // Nothing learned about the candidate (or not enough yet): if this was its probe, the next request probes.
        state.books.cooldowns.release_probe((&key.id, model));
    }
    if let Some(d) = cooldown {
        let until = crate::runtime::events::now_ms() + d.as_millis() as u64;
        state.events.publish(user, "key.status", || {
            serde_json::json!({
                "key_id": key.id, "model": model, "status": if failure.class == ErrorClass::RateLimited
                    || failure.class == ErrorClass::QuotaExhausted { "rate_limited" } else { "error" },
                "reason": failure.class.as_str(), "cooldown_until_ms": until,
            })
        });
        announce_cooldown_end(state, user, key, model, d);
    }
    tracing::warn!(
        target: "freellmapi::attempt",
        provider = key.platform.id(),
        model,
        provider_key = %key.id,
        class = failure.class.as_str(),
        status = failure.status,
        cooldown_s = cooldown.map(|d| d.as_secs()),
        message = %failure.message,
        "upstream attempt failed"
    );
    if failure.class == ErrorClass::Auth {
        state.mark_invalid(&key.id, key.updated_at);
        state.events.publish(user, "key.status", || {
            serde_json::json!({ "key_id": key.id, "status": "invalid", "reason": failure.message })
        });
        let state = state.clone();
        let key_id = key.id.to_string();
        let reason = format!(
            "{} {}",
            failure.status.map_or(String::new(), |s| s.to_string()),
            failure.message
        );
        let version = key.updated_at;
        tokio::spawn(async move {
            let persisted = state
                .store
                .set_provider_key_status_if_unchanged(
                    &key_id,
                    version,
                    "invalid",
                    Some(reason.trim()),
                )
                .await;
            match persisted {
                Ok(true) => {
                    if let Err(e) = state.reload().await {
                        tracing::error!(error = %e, "could not reload the key pool");
                    }
                }
                // The key was edited meanwhile: the verdict was about its old version.
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "could not persist invalid key status"),
            }
        });
    }
    cooldown
}

pub(super) fn exhausted_error(
    state: &AppState,
    tenant: &Tenant,
    model: &str,
    failures: &[(usize, Arc<str>, UpstreamFailure)],
) -> ApiError {
    let all = |f: &dyn Fn(ErrorClass) -> bool| failures.iter().all(|(_, _, x)| f(x.class));
    let mut trail: Vec<String> = failures
        .iter()
        .take(10)
        .map(|(k, m, f)| {
            let key = &tenant.keys[*k];
            let status = f.status.map_or(String::new(), |s| format!(" {s}"));
            format!(
                "{}/{} (key {}): {}{} {}",
                key.platform.id(),
                m,
                key.id,
                f.class.as_str(),
                status,
                f.message
            )
        })
        .collect();
    if failures.len() > 10 {
        trail.push(format!("+{} more", failures.len() - 10));
    }
    let trail = trail.join("; ");
    if all(&|c| c == ErrorClass::Auth) {
        return ApiError::new(
            502,
            ErrorType::ProviderError,
            "provider_authentication_failed",
            format!("every provider key tried for `{model}` was refused by its provider: {trail}"),
        );
    }
    if all(&|c| c == ErrorClass::Proxy) {
        return ApiError::new(
            502,
            ErrorType::ProviderError,
            "proxy_unavailable",
            format!("every outbound proxy tried for `{model}` failed: {trail}"),
        );
    }
    if all(&|c| c == ErrorClass::ContextTooLong) {
        return ApiError::invalid_request(
            "context_length_exceeded",
            format!(
                "the prompt does not fit the context window of any provider for `{model}`: {trail}"
            ),
        )
        .with_param("messages");
    }
    if all(&|c| matches!(c, ErrorClass::RateLimited | ErrorClass::QuotaExhausted)) {
        let now = Instant::now();
        let soonest = failures
            .iter()
            .filter_map(|(k, m, _)| {
                state
                    .books
                    .cooldowns
                    .cooling_until((&tenant.keys[*k].id, m), now)
            })
            .min()
            .map_or(1, |t| t.saturating_duration_since(now).as_secs().max(1));
        return ApiError::new(
            429,
            ErrorType::RateLimitError,
            "rate_limit_exceeded",
            format!(
                "every provider for `{model}` is rate-limited; retry in about {soonest}s: {trail}"
            ),
        )
        .with_retry_after(soonest);
    }
    ApiError::new(
        502,
        ErrorType::ProviderError,
        "upstream_failed",
        format!(
            "all {} attempts for `{model}` failed: {trail}",
            failures.len()
        ),
    )
}
