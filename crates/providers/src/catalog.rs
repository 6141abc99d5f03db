//! The free-model catalog: per platform, the models usable on the free tier with their context windows,
//! capabilities and free-tier limits, read from `catalog.toml` and compiled into the binary.
//!
//! The file is parsed in two stages: private `Raw*` serde types (unknown fields refused) are validated into
//! [`Catalog`], whose values cannot be out of range (a chat model's output limit fits its context window, an
//! embedding model always has dimensions, every figure carries a source and a date). The router reads the limits as
//! defaults; a key's own overrides win per field ([`Limits::overridden_by`]). This module does no I/O.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::platform::Platform;

/// The catalog shipped with this build.
const BUILTIN_TOML: &str = include_str!("../catalog.toml");

/// Request and token limits. `None` means unknown or unlimited; the router then does not pace on that axis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Requests per minute.
    pub rpm: Option<u32>,
    /// Requests per hour (a few keyless platforms publish only this).
    pub rph: Option<u32>,
    /// Requests per day.
    pub rpd: Option<u32>,
    /// Tokens per minute.
    pub tpm: Option<u64>,
    /// Tokens per day.
    pub tpd: Option<u64>,
}

impl Limits {
    /// No limit known on any axis.
    pub const NONE: Limits = Limits {
        rpm: None,
        rph: None,
        rpd: None,
        tpm: None,
        tpd: None,
    };

    /// These limits with every field that `overrides` sets replaced by the override; fields the override leaves
    /// unset keep this value. Used to lay a key's configured limits over the catalog's defaults.
    pub fn overridden_by(&self, overrides: &Limits) -> Limits {
        Limits {
            rpm: overrides.rpm.or(self.rpm),
            rph: overrides.rph.or(self.rph),
            rpd: overrides.rpd.or(self.rpd),
            tpm: overrides.tpm.or(self.tpm),
            tpd: overrides.tpd.or(self.tpd),
        }
    }

    /// Whether no axis is limited.
    pub fn is_unlimited(&self) -> bool {
        *self == Limits::NONE
    }
}

/// A calendar date in ISO form (`YYYY-MM-DD`), checked at parse time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct IsoDate(String);

impl IsoDate {
    pub fn parse(text: &str) -> Option<IsoDate> {
        let bytes = text.as_bytes();
        let shape_ok = bytes.len() == 10
            && bytes[4] == b'-'
            && bytes[7] == b'-'
            && bytes
                .iter()
                .enumerate()
                .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
        if !shape_ok {
            return None;
        }
        let year: u32 = text[0..4].parse().ok()?;
        let month: u32 = text[5..7].parse().ok()?;
        let day: u32 = text[8..10].parse().ok()?;
        let leap =
            (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
        let days_in_month = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        (year >= 2000 && (1..=days_in_month).contains(&day)).then(|| IsoDate(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IsoDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a model does, with the figures that only make sense for that kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// Chat completions. `max_output_tokens` is `None` when the provider does not publish it.
    Chat { max_output_tokens: Option<u32> },
    /// Embeddings of `dimensions` floats.
    Embedding { dimensions: u32 },
}

/// Which optional request features a model accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Function / tool calling.
    pub tools: bool,
    /// Image input.
    pub vision: bool,
    /// `response_format` (JSON mode or JSON schema) is honoured.
    pub json: bool,
    /// The model reasons before answering (reasoning content or a reasoning-effort control).
    pub reasoning: bool,
}

/// One free model of one platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// The exact upstream id sent on the wire.
    pub id: String,
    /// Display name, when the catalog gives one.
    pub name: Option<String>,
    /// The model group: one name for the same model across platforms (`llama-3.3-70b`), when it has one.
    pub group: Option<String>,
    pub kind: ModelKind,
    /// Context window in tokens (for embedding models: the longest input).
    pub context_window: u32,
    pub capabilities: Capabilities,
    /// Free-tier limits of this model (per key or per account, as the provider counts them).
    pub limits: Limits,
    /// Where the figures come from (a URL, or the study they were taken from).
    pub source: String,
    /// When the source was read, or the date it states.
    pub as_of: IsoDate,
    pub notes: Option<String>,
}

impl ModelInfo {
    pub fn is_chat(&self) -> bool {
        matches!(self.kind, ModelKind::Chat { .. })
    }

    pub fn is_embedding(&self) -> bool {
        matches!(self.kind, ModelKind::Embedding { .. })
    }

    pub fn max_output_tokens(&self) -> Option<u32> {
        match self.kind {
            ModelKind::Chat { max_output_tokens } => max_output_tokens,
            ModelKind::Embedding { .. } => None,
        }
    }

    pub fn dimensions(&self) -> Option<u32> {
        match self.kind {
            ModelKind::Chat { .. } => None,
            ModelKind::Embedding { dimensions } => Some(dimensions),
        }
    }
}

/// One platform's section: its account-wide limits and its free models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformCatalog {
    /// Limits shared by every model of the platform (per account, per key or per client address).
    pub limits: Limits,
    pub source: String,
    pub as_of: IsoDate,
    pub notes: Option<String>,
    pub models: Vec<ModelInfo>,
}

/// The whole catalog, keyed by platform.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    platforms: BTreeMap<Platform, PlatformCatalog>,
}

/// Why a catalog file was refused. Messages name the platform, the model and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// Not TOML, or a field or value the schema does not allow (the parser's message names it).
    #[error("catalog: {0}")]
    Syntax(String),
    #[error("catalog: unknown platform `{name}` (expected one of: {expected})")]
    UnknownPlatform { name: String, expected: String },
    #[error("catalog: platform `{name}` must be written `{canonical}`")]
    NotCanonical {
        name: String,
        canonical: &'static str,
    },
    #[error("catalog: platform `custom` has no catalog (its models are discovered per key)")]
    CustomPlatform,
    #[error("catalog: {platform}: {field}: {reason}")]
    PlatformField {
        platform: Platform,
        field: &'static str,
        reason: String,
    },
    #[error("catalog: {platform} model `{model}`: {field}: {reason}")]
    ModelField {
        platform: Platform,
        model: String,
        field: &'static str,
        reason: String,
    },
    #[error("catalog: {platform}: model `{model}` is listed twice")]
    DuplicateModel { platform: Platform, model: String },
}

static BUILTIN: OnceLock<(Catalog, Option<CatalogError>)> = OnceLock::new();

fn builtin_state() -> &'static (Catalog, Option<CatalogError>) {
    BUILTIN.get_or_init(|| match Catalog::parse(BUILTIN_TOML) {
        Ok(catalog) => (catalog, None),
        Err(error) => (Catalog::default(), Some(error)),
    })
}

impl Catalog {
    /// The catalog compiled into this build. Never fails: if the file were invalid this returns an empty catalog
    /// and [`Catalog::builtin_error`] says why (start-up refuses to run then). A unit test keeps the file valid.
    pub fn builtin() -> &'static Catalog {
        &builtin_state().0
    }

    /// Why the compiled-in catalog could not be used, if it could not.
    pub fn builtin_error() -> Option<&'static CatalogError> {
        builtin_state().1.as_ref()
    }

    /// Parses and validates a catalog in the `catalog.toml` format.
    pub fn parse(text: &str) -> Result<Catalog, CatalogError> {
        let raw: RawCatalog =
            toml::from_str(text).map_err(|e| CatalogError::Syntax(e.to_string()))?;
        let mut platforms = BTreeMap::new();
        for (name, section) in raw.platforms {
            let platform = platform_from_key(&name)?;
            platforms.insert(platform, section.validate(platform)?);
        }
        let catalog = Catalog { platforms };
        catalog.check_groups()?;
        Ok(catalog)
    }

    /// A group holds one kind of model (chat or embedding), at most one model per platform.
    fn check_groups(&self) -> Result<(), CatalogError> {
        let mut seen: BTreeMap<&str, (bool, Vec<Platform>)> = BTreeMap::new();
        for (platform, section) in &self.platforms {
            for model in &section.models {
                let Some(group) = model.group.as_deref() else {
                    continue;
                };
                let (embedding, platforms) = seen
                    .entry(group)
                    .or_insert_with(|| (model.is_embedding(), Vec::new()));
                let reason = if *embedding != model.is_embedding() {
                    Some(format!("group `{group}` mixes chat and embedding models"))
                } else if platforms.contains(platform) {
                    Some(format!(
                        "group `{group}` already has a model of this platform"
                    ))
                } else {
                    None
                };
                if let Some(reason) = reason {
                    return Err(CatalogError::ModelField {
                        platform: *platform,
                        model: model.id.clone(),
                        field: "group",
                        reason,
                    });
                }
                platforms.push(*platform);
            }
        }
        Ok(())
    }

    /// Every model group: its name and its members (platform, model id), in platform order.
    pub fn groups(&self) -> BTreeMap<&str, Vec<(Platform, &str)>> {
        let mut out: BTreeMap<&str, Vec<(Platform, &str)>> = BTreeMap::new();
        for (platform, section) in &self.platforms {
            for model in &section.models {
                if let Some(group) = model.group.as_deref() {
                    out.entry(group).or_default().push((*platform, &model.id));
                }
            }
        }
        out
    }

    /// The platform's section, if the catalog has one.
    pub fn platform(&self, platform: Platform) -> Option<&PlatformCatalog> {
        self.platforms.get(&platform)
    }

    /// The platform's free models (empty when the catalog has none, e.g. `custom`).
    pub fn models(&self, platform: Platform) -> &[ModelInfo] {
        self.platforms
            .get(&platform)
            .map_or(&[][..], |section| section.models.as_slice())
    }

    /// One model by its exact upstream id.
    pub fn model(&self, platform: Platform, id: &str) -> Option<&ModelInfo> {
        self.models(platform).iter().find(|model| model.id == id)
    }

    /// The platform-wide limits (shared by all its models), if the catalog has a section for it.
    pub fn platform_limits(&self, platform: Platform) -> Option<&Limits> {
        self.platforms.get(&platform).map(|section| &section.limits)
    }

    /// Every platform with a section, in platform order.
    pub fn platforms(&self) -> impl Iterator<Item = (Platform, &PlatformCatalog)> {
        self.platforms
            .iter()
            .map(|(platform, section)| (*platform, section))
    }
}

fn platform_from_key(name: &str) -> Result<Platform, CatalogError> {
    let platform: Platform = name.parse().map_err(|_| CatalogError::UnknownPlatform {
        name: name.to_owned(),
        expected: Platform::all()
            .filter(|p| *p != Platform::Custom)
            .map(Platform::id)
            .collect::<Vec<_>>()
            .join(", "),
    })?;
    if platform == Platform::Custom {
        return Err(CatalogError::CustomPlatform);
    }
    if platform.id() != name {
        return Err(CatalogError::NotCanonical {
            name: name.to_owned(),
            canonical: platform.id(),
        });
    }
    Ok(platform)
}

// ---- serde form ----------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    #[serde(default)]
    platforms: BTreeMap<String, RawPlatform>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlatform {
    source: String,
    as_of: String,
    notes: Option<String>,
    rpm: Option<u32>,
    rph: Option<u32>,
    rpd: Option<u32>,
    tpm: Option<u64>,
    tpd: Option<u64>,
    #[serde(default)]
    models: Vec<RawModel>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum RawKind {
    Chat,
    Embedding,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    id: String,
    name: Option<String>,
    group: Option<String>,
    kind: Option<RawKind>,
    context_window: u32,
    max_output_tokens: Option<u32>,
    dimensions: Option<u32>,
    #[serde(default)]
    tools: bool,
    #[serde(default)]
    vision: bool,
    #[serde(default)]
    json: bool,
    #[serde(default)]
    reasoning: bool,
    rpm: Option<u32>,
    rph: Option<u32>,
    rpd: Option<u32>,
    tpm: Option<u64>,
    tpd: Option<u64>,
    /// Defaults to the platform's source.
    source: Option<String>,
    /// Defaults to the platform's date.
    as_of: Option<String>,
    notes: Option<String>,
}

// ---- validation ----------------------------------------------------------------------------------------------

/// Checks that no limit is zero (an unknown limit is left out, never written as 0).
fn check_limits(limits: &Limits) -> Result<(), (&'static str, String)> {
    let zero = "0 is not a limit; leave the field out when it is unknown or unlimited".to_owned();
    let fields: [(&'static str, bool); 5] = [
        ("rpm", limits.rpm == Some(0)),
        ("rph", limits.rph == Some(0)),
        ("rpd", limits.rpd == Some(0)),
        ("tpm", limits.tpm == Some(0)),
        ("tpd", limits.tpd == Some(0)),
    ];
    match fields.iter().find(|(_, is_zero)| *is_zero) {
        Some((field, _)) => Err((field, zero)),
        None => Ok(()),
    }
}

fn check_source(source: &str) -> Result<(), String> {
    if source.trim().is_empty() {
        Err("must name where the figures come from".to_owned())
    } else {
        Ok(())
    }
}

fn parse_date(text: &str) -> Result<IsoDate, String> {
    IsoDate::parse(text).ok_or_else(|| format!("`{text}` is not an ISO date (YYYY-MM-DD)"))
}

impl RawPlatform {
    fn validate(self, platform: Platform) -> Result<PlatformCatalog, CatalogError> {
        let field_error = |field: &'static str, reason: String| CatalogError::PlatformField {
            platform,
            field,
            reason,
        };
        check_source(&self.source).map_err(|reason| field_error("source", reason))?;
        let as_of = parse_date(&self.as_of).map_err(|reason| field_error("as_of", reason))?;
        let limits = Limits {
            rpm: self.rpm,
            rph: self.rph,
            rpd: self.rpd,
            tpm: self.tpm,
            tpd: self.tpd,
        };
        check_limits(&limits).map_err(|(field, reason)| field_error(field, reason))?;

        let mut seen = HashSet::new();
        let mut models = Vec::with_capacity(self.models.len());
        for raw in self.models {
            if !seen.insert(raw.id.clone()) {
                return Err(CatalogError::DuplicateModel {
                    platform,
                    model: raw.id,
                });
            }
            models.push(raw.validate(platform, &self.source, &as_of)?);
        }
        Ok(PlatformCatalog {
            limits,
            source: self.source,
            as_of,
            notes: self.notes,
            models,
        })
    }
}

impl RawModel {
    fn validate(
        self,
        platform: Platform,
        platform_source: &str,
        platform_as_of: &IsoDate,
    ) -> Result<ModelInfo, CatalogError> {
        let model = self.id.clone();
        let field_error = |field: &'static str, reason: String| CatalogError::ModelField {
            platform,
            model: model.clone(),
            field,
            reason,
        };

        if self.id.is_empty() || self.id.chars().any(char::is_whitespace) {
            return Err(field_error(
                "id",
                "must be the non-empty upstream id, without spaces".to_owned(),
            ));
        }
        if self.context_window == 0 {
            return Err(field_error("context_window", "must be positive".to_owned()));
        }
        if let Some(group) = &self.group {
            let fine = |c: char| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_')
            };
            if group.is_empty() || group == "auto" || !group.chars().all(fine) {
                return Err(field_error(
                    "group",
                    "use lowercase letters, digits, `.`, `-` or `_` (and not `auto`)".to_owned(),
                ));
            }
        }
        let kind = match self.kind.unwrap_or(RawKind::Chat) {
            RawKind::Chat => {
                if self.dimensions.is_some() {
                    return Err(field_error(
                        "dimensions",
                        "only embedding models have dimensions".to_owned(),
                    ));
                }
                match self.max_output_tokens {
                    Some(0) => {
                        return Err(field_error(
                            "max_output_tokens",
                            "must be positive".to_owned(),
                        ))
                    }
                    Some(out) if out > self.context_window => {
                        return Err(field_error(
                            "max_output_tokens",
                            format!("{out} exceeds the context window {}", self.context_window),
                        ))
                    }
                    _ => {}
                }
                ModelKind::Chat {
                    max_output_tokens: self.max_output_tokens,
                }
            }
            RawKind::Embedding => {
                if self.max_output_tokens.is_some() {
                    return Err(field_error(
                        "max_output_tokens",
                        "embedding models produce no tokens".to_owned(),
                    ));
                }
                match self.dimensions {
                    Some(dimensions) if dimensions > 0 => ModelKind::Embedding { dimensions },
                    _ => {
                        return Err(field_error(
                            "dimensions",
                            "an embedding model needs a positive vector size".to_owned(),
                        ))
                    }
                }
            }
        };

        let limits = Limits {
            rpm: self.rpm,
            rph: self.rph,
            rpd: self.rpd,
            tpm: self.tpm,
            tpd: self.tpd,
        };
        check_limits(&limits).map_err(|(field, reason)| field_error(field, reason))?;

        let source = self.source.unwrap_or_else(|| platform_source.to_owned());
        check_source(&source).map_err(|reason| field_error("source", reason))?;
        let as_of = match &self.as_of {
            Some(text) => parse_date(text).map_err(|reason| field_error("as_of", reason))?,
            None => platform_as_of.clone(),
        };

        Ok(ModelInfo {
            id: self.id,
            name: self.name,
            group: self.group,
            kind,
            context_window: self.context_window,
            capabilities: Capabilities {
                tools: self.tools,
                vision: self.vision,
                json: self.json,
                reasoning: self.reasoning,
            },
            limits,
            source,
            as_of,
            notes: self.notes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin() -> &'static Catalog {
        if let Some(error) = Catalog::builtin_error() {
            panic!("built-in catalog.toml is invalid: {error}");
        }
        Catalog::builtin()
    }

    const MINIMAL: &str = r#"
[platforms.groq]
source = "https://console.groq.com/docs/rate-limits"
as_of = "2026-11-24"
rpd = 1000

[[platforms.groq.models]]
id = "llama-3.1-8b-instant"
context_window = 131072
max_output_tokens = 8192
rpm = 30
"#;

    #[test]
    fn builtin_file_parses_and_validates() {
        let direct = Catalog::parse(BUILTIN_TOML);
        assert!(direct.is_ok(), "{:?}", direct.err());
        assert!(Catalog::builtin_error().is_none());
        assert_eq!(direct.ok().as_ref(), Some(builtin()));
    }

    #[test]
    fn every_platform_but_custom_has_a_model() {
        let catalog = builtin();
        for platform in Platform::all() {
            let models = catalog.models(platform);
            if platform == Platform::Custom {
                assert!(models.is_empty());
                assert!(catalog.platform(platform).is_none());
            } else {
                assert!(
                    models.iter().any(ModelInfo::is_chat),
                    "{platform} has no chat model"
                );
            }
        }
    }

    #[test]
    fn ids_are_unique_per_platform() {
        for (platform, section) in builtin().platforms() {
            let mut seen = HashSet::new();
            for model in &section.models {
                assert!(seen.insert(&model.id), "{platform}: {} twice", model.id);
            }
        }
    }

    #[test]
    fn context_windows_hold_the_output() {
        for (platform, section) in builtin().platforms() {
            for model in &section.models {
                assert!(model.context_window > 0, "{platform} {}", model.id);
                if let Some(out) = model.max_output_tokens() {
                    assert!(
                        model.context_window >= out,
                        "{platform} {}: {} < {out}",
                        model.id,
                        model.context_window
                    );
                }
            }
        }
    }

    #[test]
    fn embedding_models_and_only_they_have_dimensions() {
        let mut embeddings = 0;
        for (platform, section) in builtin().platforms() {
            for model in &section.models {
                assert_eq!(
                    model.dimensions().is_some(),
                    model.is_embedding(),
                    "{platform} {}",
                    model.id
                );
                if model.is_embedding() {
                    embeddings += 1;
                    assert_eq!(model.max_output_tokens(), None);
                    assert!(!model.capabilities.tools, "{platform} {}", model.id);
                }
            }
        }
        assert!(embeddings > 0);
    }

    #[test]
    fn every_figure_has_a_source_and_a_date() {
        for (platform, section) in builtin().platforms() {
            assert!(!section.source.trim().is_empty(), "{platform}");
            assert!(
                IsoDate::parse(section.as_of.as_str()).is_some(),
                "{platform}"
            );
            for model in &section.models {
                assert!(!model.source.trim().is_empty(), "{platform} {}", model.id);
                assert!(
                    IsoDate::parse(model.as_of.as_str()).is_some(),
                    "{platform} {}",
                    model.id
                );
            }
        }
    }

    #[test]
    fn lookups_find_models_and_platform_limits() {
        let catalog = Catalog::parse(MINIMAL).unwrap();
        let model = catalog
            .model(Platform::Groq, "llama-3.1-8b-instant")
            .unwrap();
        assert_eq!(model.context_window, 131072);
        assert_eq!(model.max_output_tokens(), Some(8192));
        assert_eq!(model.limits.rpm, Some(30));
        // Inherited from the platform section.
        assert_eq!(model.source, "https://console.groq.com/docs/rate-limits");
        assert_eq!(model.as_of.as_str(), "2026-11-24");
        assert!(catalog.model(Platform::Groq, "nope").is_none());
        assert!(catalog
            .model(Platform::Mistral, "llama-3.1-8b-instant")
            .is_none());
        assert_eq!(
            catalog.platform_limits(Platform::Groq).unwrap().rpd,
            Some(1000)
        );
        assert!(catalog.platform_limits(Platform::Mistral).is_none());
        assert!(catalog.models(Platform::Custom).is_empty());
    }

    #[test]
    fn builtin_has_the_documented_platform_caps() {
        let catalog = builtin();
        assert_eq!(
            catalog
                .platform_limits(Platform::Nvidia)
                .and_then(|l| l.rpm),
            Some(40)
        );
        assert_eq!(
            catalog.platform_limits(Platform::Kilo).and_then(|l| l.rph),
            Some(200)
        );
        assert_eq!(
            catalog.platform_limits(Platform::Llm7).and_then(|l| l.rph),
            Some(100)
        );
        assert!(catalog
            .model(Platform::Groq, "llama-3.3-70b-versatile")
            .is_some());
    }

    #[test]
    fn builtin_groups_join_the_same_model_across_platforms() {
        let groups = builtin().groups();
        let llama = &groups["llama-3.3-70b"];
        assert!(llama.contains(&(Platform::Groq, "llama-3.3-70b-versatile")));
        assert!(llama.contains(&(Platform::Nvidia, "meta/llama-3.3-70b-instruct")));
        for (name, members) in &groups {
            assert!(members.len() >= 2, "group {name} has one member");
        }
    }

    #[test]
    fn a_group_must_not_mix_kinds_or_repeat_a_platform() {
        let base = "[platforms.groq]\nsource = \"s\"\nas_of = \"2026-01-01\"\n";
        let chat = |id: &str, group: &str| {
            format!("[[platforms.groq.models]]\nid = \"{id}\"\ngroup = \"{group}\"\ncontext_window = 10\n")
        };
        let twice = format!("{base}{}{}", chat("a", "g"), chat("b", "g"));
        let err = Catalog::parse(&twice).unwrap_err().to_string();
        assert!(
            err.contains("already has a model of this platform"),
            "{err}"
        );
        let bad_name = format!("{base}{}", chat("a", "Big Model"));
        assert!(Catalog::parse(&bad_name)
            .unwrap_err()
            .to_string()
            .contains("group"));
    }

    #[test]
    fn overrides_replace_only_the_fields_they_set() {
        let defaults = Limits {
            rpm: Some(30),
            rph: None,
            rpd: Some(1000),
            tpm: Some(12_000),
            tpd: Some(100_000),
        };
        let overrides = Limits {
            rpm: Some(5),
            rph: Some(100),
            tpd: Some(50_000),
            ..Limits::NONE
        };
        let merged = defaults.overridden_by(&overrides);
        assert_eq!(
            merged,
            Limits {
                rpm: Some(5),
                rph: Some(100),
                rpd: Some(1000),
                tpm: Some(12_000),
                tpd: Some(50_000),
            }
        );
        assert_eq!(defaults.overridden_by(&Limits::NONE), defaults);
        assert_eq!(Limits::NONE.overridden_by(&defaults), defaults);
        assert!(Limits::NONE.is_unlimited());
        assert!(!merged.is_unlimited());
    }

    #[test]
    fn unknown_platform_is_refused_by_name() {
        let text = MINIMAL.replace("platforms.groq", "platforms.grok");
        let error = Catalog::parse(&text).unwrap_err();
        assert!(matches!(error, CatalogError::UnknownPlatform { .. }));
        let message = error.to_string();
        assert!(message.contains("`grok`"), "{message}");
        assert!(message.contains("groq"), "{message}");
    }

    #[test]
    fn aliases_and_custom_are_refused() {
        let text = MINIMAL.replace("platforms.groq", "platforms.Groq");
        let message = Catalog::parse(&text).unwrap_err().to_string();
        assert!(
            message.contains("`Groq`") && message.contains("`groq`"),
            "{message}"
        );

        let text = MINIMAL.replace("platforms.groq", "platforms.custom");
        assert_eq!(Catalog::parse(&text), Err(CatalogError::CustomPlatform));
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let text = MINIMAL.replace("rpm = 30", "rpm = 30\ncontext_size = 4096");
        let message = Catalog::parse(&text).unwrap_err().to_string();
        assert!(message.contains("context_size"), "{message}");

        let text = MINIMAL.replace("rpd = 1000", "rpd = 1000\nrps = 1");
        let message = Catalog::parse(&text).unwrap_err().to_string();
        assert!(message.contains("rps"), "{message}");

        let text = MINIMAL.replace("max_output_tokens", "kind = \"image\"\nmax_output_tokens");
        let message = Catalog::parse(&text).unwrap_err().to_string();
        assert!(message.contains("image"), "{message}");
    }

    #[test]
    fn invalid_values_are_refused_with_the_field() {
        let cases = [
            (
                "max_output_tokens = 8192",
                "max_output_tokens = 200000",
                "max_output_tokens",
            ),
            (
                "max_output_tokens = 8192",
                "max_output_tokens = 8192\ndimensions = 768",
                "dimensions",
            ),
            ("rpm = 30", "rpm = 0", "rpm"),
            ("as_of = \"2026-11-24\"", "as_of = \"24/11/2026\"", "as_of"),
            ("as_of = \"2026-11-24\"", "as_of = \"2026-02-30\"", "as_of"),
            (
                "source = \"https://console.groq.com/docs/rate-limits\"",
                "source = \" \"",
                "source",
            ),
            (
                "max_output_tokens = 8192",
                "kind = \"embedding\"\nmax_output_tokens = 8192\ndimensions = 768",
                "max_output_tokens",
            ),
            (
                "max_output_tokens = 8192",
                "kind = \"embedding\"",
                "dimensions",
            ),
        ];
        for (from, to, field) in cases {
            let text = MINIMAL.replace(from, to);
            let message = Catalog::parse(&text).unwrap_err().to_string();
            assert!(message.contains(field), "{to}: {message}");
        }
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let model = MINIMAL
            .split_once("[[platforms.groq.models]]")
            .map(|(_, model)| model)
            .unwrap();
        let text = format!("{MINIMAL}\n[[platforms.groq.models]]{model}");
        let error = Catalog::parse(&text).unwrap_err();
        assert_eq!(
            error,
            CatalogError::DuplicateModel {
                platform: Platform::Groq,
                model: "llama-3.1-8b-instant".to_owned()
            }
        );
    }

    #[test]
    fn embedding_models_parse() {
        let text = r#"
[platforms.google]
source = "https://ai.google.dev/gemini-api/docs/rate-limits"
as_of = "2026-11-24"

[[platforms.google.models]]
id = "gemini-embedding-001"
kind = "embedding"
context_window = 2048
dimensions = 3072
source = "freellmapi-inventory B.4"
as_of = "2026-08-22"
"#;
        let catalog = Catalog::parse(text).unwrap();
        let model = catalog
            .model(Platform::Google, "gemini-embedding-001")
            .unwrap();
        assert_eq!(model.kind, ModelKind::Embedding { dimensions: 3072 });
        assert_eq!(model.source, "freellmapi-inventory B.4");
        assert_eq!(model.as_of.as_str(), "2026-08-22");
    }

    #[test]
    fn iso_dates() {
        assert!(IsoDate::parse("2024-02-29").is_some());
        assert!(IsoDate::parse("2026-02-29").is_none());
        assert!(IsoDate::parse("2026-13-01").is_none());
        assert!(IsoDate::parse("2026-1-01").is_none());
        assert!(IsoDate::parse("2026-01-01T00:00").is_none());
    }
}
