//! The candidates of a request: the routes of a model or profile name for the caller's tenant (allow-list first),
//! with each one's fit (context window, capabilities for `auto`) and the tokens to reserve against key limits.

use router::Strategy;
use wire::{ApiError, ChatRequestView, ErrorType};

use crate::relay::RouteSet;
use crate::runtime::snapshot::{ProfileStrategy, Route, Tenant};

pub(crate) fn no_providers(tenant: &Tenant) -> Option<ApiError> {
    tenant.keys.is_empty().then(|| {
        ApiError::new(
            503,
            ErrorType::ServiceUnavailable,
            "no_providers_configured",
            "no provider keys are configured for this account; add one in the dashboard, the admin API or the config file",
        )
    })
}

pub(crate) fn model_not_found(model: &str) -> ApiError {
    ApiError::new(
        404,
        ErrorType::NotFoundError,
        "model_not_found",
        format!("The model `{model}` does not exist or you do not have access to it. GET /v1/models lists the models you can use."),
    )
    .with_param("model")
}

pub(crate) fn model_not_allowed(model: &str, allowed: &[String]) -> ApiError {
    ApiError::new(
        403,
        ErrorType::PermissionError,
        "model_not_allowed",
        format!(
            "this gateway key may not use the model `{model}`; it is limited to: {}",
            allowed.join(", ")
        ),
    )
    .with_param("model")
}

/// The candidates for a name: a profile's members in order (with the profile's strategy), or every key of the
/// caller that serves the model.
pub(crate) fn named_routes(
    tenant: &Tenant,
    model: &str,
) -> Result<(Vec<Route>, Vec<u32>, Strategy), ApiError> {
    let resolved = resolve_routes(tenant, model)?;
    if resolved.0.is_empty() {
        if let Some(profile) = tenant.profiles.get(model) {
            return Err(ApiError::new(
                503,
                ErrorType::ServiceUnavailable,
                "no_provider_available",
                format!(
                    "none of the models of profile `{model}` ({}) is served by your provider keys",
                    profile
                        .members
                        .iter()
                        .map(|m| m.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    Ok(resolved)
}

/// The routes of a model or profile name for this tenant, in the profile's strategy. A profile whose models no key
/// serves has none (the routing preview shows that; a request gets `no_provider_available`).
pub(crate) fn resolve_routes(
    tenant: &Tenant,
    model: &str,
) -> Result<(Vec<Route>, Vec<u32>, Strategy), ApiError> {
    if let Some(allowed) = &tenant.allowed_models {
        if !allowed.iter().any(|a| a == model) {
            return Err(model_not_allowed(model, allowed));
        }
    }
    if let Some(profile) = tenant.profiles.get(model) {
        let (routes, priorities) = tenant.profile_routes(profile);
        let strategy = match profile.strategy {
            ProfileStrategy::Failover => Strategy::Failover,
            ProfileStrategy::RoundRobin => Strategy::RoundRobin {
                members: profile.members.len() as u32,
            },
            ProfileStrategy::LeastLatency => Strategy::LeastLatency,
            ProfileStrategy::Score => Strategy::Score,
        };
        return Ok((routes, priorities, strategy));
    }
    let routes = tenant
        .routes_of(model)
        .cloned()
        .ok_or_else(|| model_not_found(model))?;
    let priorities = vec![0; routes.len()];
    Ok((routes, priorities, Strategy::Score))
}

/// The chat candidates with their fit: the context window must hold the prompt and the requested output. For
/// `auto`, capabilities the request needs (tools, vision, JSON) are required too; for a named model they are the
/// caller's call (the catalog may lag behind the provider).
pub(crate) fn chat_route_set(
    tenant: &Tenant,
    view: &ChatRequestView<'_>,
    prompt_tokens: u64,
) -> Result<RouteSet, ApiError> {
    let auto = view.model == "auto";
    let (routes, priorities, strategy) = if auto {
        let all = tenant.chat_candidates();
        let capable: Vec<Route> = all
            .into_iter()
            .filter(|r| r.has_capabilities(view.needs))
            .collect();
        if capable.is_empty() {
            return Err(ApiError::invalid_request(
                "no_capable_model",
                format!(
                    "none of your models supports what this request needs ({}); add a key for a model that does, or name a model",
                    describe_needs(view.needs)
                ),
            )
            .with_param("model"));
        }
        let priorities = vec![0; capable.len()];
        (capable, priorities, Strategy::Score)
    } else {
        named_routes(tenant, &view.model)?
    };
    let fits: Vec<bool> = routes
        .iter()
        .map(|r| r.fits_context(prompt_tokens, view.max_tokens))
        .collect();
    if !fits.iter().any(|f| *f) {
        let smallest = routes
            .iter()
            .filter_map(|r| r.context_window)
            .max()
            .unwrap_or(0);
        return Err(ApiError::invalid_request(
            "context_length_exceeded",
            format!(
                "this request needs about {} tokens (prompt estimate {prompt_tokens} plus max_tokens {}), more than the largest context window available for `{}` ({smallest} tokens)",
                prompt_tokens + view.max_tokens.unwrap_or(0),
                view.max_tokens.unwrap_or(0),
                view.model
            ),
        )
        .with_param("messages"));
    }
    Ok(RouteSet {
        routes,
        fits,
        priorities,
        strategy,
        ask: router::TokenAsk {
            prompt: prompt_tokens,
            max_output: view.max_tokens,
        },
    })
}

fn describe_needs(needs: wire::Needs) -> String {
    let mut parts = Vec::new();
    if needs.tools {
        parts.push("tools");
    }
    if needs.vision {
        parts.push("image input");
    }
    if needs.json {
        parts.push("JSON output");
    }
    parts.join(", ")
}

/// The model to route a vendor's model name to (Claude Code's `claude-sonnet-…`, Gemini CLI's `gemini-2.5-pro`)
/// when the caller has no model or profile by that name: the profile `<vendor>-<family>` (`claude-opus`,
/// `gemini-flash`) if it exists, else the profile `<vendor>`, else `auto`. `None` when the name is the caller's own
/// or not the vendor's (`family` is `None`); a family of `"other"` skips the per-family profile.
pub(crate) fn vendor_target(
    tenant: &Tenant,
    model: &str,
    vendor: &str,
    family: Option<&str>,
) -> Option<String> {
    if tenant.routes_of(model).is_some() || tenant.profiles.contains_key(model) {
        return None;
    }
    let family = family?;
    let per_family = (family != "other").then(|| format!("{vendor}-{family}"));
    Some(
        per_family
            .into_iter()
            .chain(std::iter::once(vendor.to_owned()))
            .find(|p| tenant.profiles.contains_key(p.as_str()))
            .unwrap_or_else(|| "auto".to_owned()),
    )
}
