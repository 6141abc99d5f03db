//! The platform table as data: one row per supported platform. Facts come from each provider's public documentation
//! (see docs/providers.md); the native dialects (Gemini, Cohere v2, Cloudflare) are declared here and served once
//! their adapters land.

use std::fmt;
use std::str::FromStr;

/// How a platform expects its credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStyle {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// `x-goog-api-key: <key>`.
    GoogApiKeyHeader,
    /// `<account_id>:<token>`: the account id goes into the URL, the token is a bearer token.
    AccountIdAndToken,
    /// No credential at all.
    None,
}

/// The wire format a platform speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    Gemini,
    Cohere,
}

/// The cheap call that checks a key (see [`Platform::key_probe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyProbe {
    /// `GET …/models`.
    ListModels,
    /// A chat call asking for one token from the key's first model.
    MinimalChat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Platform {
    Google,
    Groq,
    Cerebras,
    Mistral,
    OpenRouter,
    GitHub,
    Cloudflare,
    Cohere,
    Nvidia,
    HuggingFace,
    Zai,
    Ollama,
    Kilo,
    Pollinations,
    Llm7,
    Ovh,
    Custom,
}

/// One row of the platform table.
#[derive(Debug, Clone, Copy)]
pub struct PlatformInfo {
    pub platform: Platform,
    pub id: &'static str,
    pub display_name: &'static str,
    /// Empty for `custom`, whose base URL is per key.
    pub default_base_url: &'static str,
    pub auth: AuthStyle,
    pub dialect: Dialect,
    pub keyless: bool,
}

const fn row(
    platform: Platform,
    id: &'static str,
    display_name: &'static str,
    default_base_url: &'static str,
    auth: AuthStyle,
    dialect: Dialect,
    keyless: bool,
) -> PlatformInfo {
    PlatformInfo {
        platform,
        id,
        display_name,
        default_base_url,
        auth,
        dialect,
        keyless,
    }
}

use AuthStyle as A;
use Dialect as D;
use Platform as P;

pub const PLATFORMS: &[PlatformInfo] = &[
    row(
        P::Google,
        "google",
        "Google Gemini",
        "https://generativelanguage.googleapis.com/v1beta",
        A::GoogApiKeyHeader,
        D::Gemini,
        false,
    ),
    row(
        P::Groq,
        "groq",
        "Groq",
        "https://api.groq.com/openai/v1",
        A::Bearer,
        D::OpenAi,
        false,
    ),
    row(
        P::Cerebras,
        "cerebras",
        "Cerebras",
        "https://api.cerebras.ai/v1",
        A::Bearer,
        D::OpenAi,
        false,
    ),
    row(
        P::Mistral,
        "mistral",
        "Mistral",
        "https://api.mistral.ai/v1",
        A::Bearer,
        D::OpenAi,
        false,
    ),
    row(
        P::OpenRouter,
        "openrouter",
        "OpenRouter",
        "https://openrouter.ai/api/v1",
        A::Bearer,
        D::OpenAi,
        false,
    ),
    row(
        P::GitHub,
        "github",
        "GitHub Models",
        "https://models.github.ai/inference",
        A::Bearer,
        D::OpenAi,
        false,
    ),
    row(
        P::Cloudflare,
        "cloudflare",
        "Cloudflare Workers AI",
        "https://api.cloudflare.com/client/v4/accounts/{account_id}/ai/v1",
        A::AccountIdAndToken,
        D::OpenAi,
        false,
    ),
    row(
        P::Cohere,
        "cohere",
        "Cohere",
        "https://api.cohere.com/v2",
        A::Bearer,
        D::Cohere,
        false,
    ),
    row(
        P::Nvidia,
        "nvidia",
        "NVIDIA NIM",
        "https://integrate.api.nvidia.com/v1",
        A::Bearer,
        D::OpenAi,
        false,
    ),
    row(
        P::HuggingFace,
        "huggingface",
        "HuggingFace",
        "https://router.huggingface.co/v1",
        A::Bearer,
        D::OpenAi,
        false,
    ),
    row(
        P::Zai,
        "zai",
        "Z.ai",
        "https://api.z.ai/api/paas/v4",
        A::Bearer,
        D::OpenAi,
        false,
    ),
    row(
        P::Ollama,
        "ollama",
        "Ollama Cloud",
        "https://ollama.com/v1",
        A::Bearer,
        D::OpenAi,
        false,
    ),
    row(
        P::Kilo,
        "kilo",
        "Kilo Gateway",
        "https://api.kilo.ai/api/gateway/v1",
        A::None,
        D::OpenAi,
        true,
    ),
    row(
        P::Pollinations,
        "pollinations",
        "Pollinations",
        "https://text.pollinations.ai/openai/v1",
        A::None,
        D::OpenAi,
        true,
    ),
    row(
        P::Llm7,
        "llm7",
        "LLM7",
        "https://api.llm7.io/v1",
        A::None,
        D::OpenAi,
        true,
    ),
    row(
        P::Ovh,
        "ovh",
        "OVH AI Endpoints",
        "https://oai.endpoints.kepler.ai.cloud.ovh.net/v1",
        A::None,
        D::OpenAi,
        true,
    ),
    row(
        P::Custom,
        "custom",
        "Custom OpenAI-compatible endpoint",
        "",
        A::Bearer,
        D::OpenAi,
        false,
    ),
];

impl Platform {
    pub fn info(self) -> &'static PlatformInfo {
        // The table holds one row per variant, in declaration order.
        &PLATFORMS[self as usize]
    }

    pub fn id(self) -> &'static str {
        self.info().id
    }

    pub fn all() -> impl Iterator<Item = Platform> {
        PLATFORMS.iter().map(|p| p.platform)
    }

    /// How a key of this platform is checked cheaply. Where `GET /models` answers without looking at the credential
    /// (OpenRouter, the HuggingFace router) or is not offered (Cloudflare's OpenAI endpoint), only a one-token chat
    /// call says whether the key works; everywhere else listing the models does.
    pub fn key_probe(self) -> KeyProbe {
        match self {
            Platform::OpenRouter | Platform::HuggingFace | Platform::Cloudflare => {
                KeyProbe::MinimalChat
            }
            _ => KeyProbe::ListModels,
        }
    }

    /// Whether this build can route requests to the platform (every platform of the table, native dialects
    /// included).
    pub fn is_served(self) -> bool {
        true
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// An unknown platform name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPlatform(pub String);

impl fmt::Display for UnknownPlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = PLATFORMS.iter().map(|p| p.id).collect();
        write!(
            f,
            "unknown platform `{}` (expected one of: {})",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownPlatform {}

impl FromStr for Platform {
    type Err = UnknownPlatform;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        let alias = match wanted.as_str() {
            "gemini" => "google",
            "zhipu" => "zai",
            "github-models" => "github",
            "nim" => "nvidia",
            "hf" => "huggingface",
            other => other,
        };
        PLATFORMS
            .iter()
            .find(|p| p.id == alias)
            .map(|p| p.platform)
            .ok_or_else(|| UnknownPlatform(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_in_variant_order() {
        for (i, row) in PLATFORMS.iter().enumerate() {
            assert_eq!(row.platform as usize, i, "{}", row.id);
            assert_eq!(row.platform.info().id, row.id);
        }
        assert_eq!(PLATFORMS.len(), 17);
    }

    #[test]
    fn parses_names_and_aliases() {
        assert_eq!("Groq".parse::<Platform>().unwrap(), Platform::Groq);
        assert_eq!("gemini".parse::<Platform>().unwrap(), Platform::Google);
        let err = "nope".parse::<Platform>().unwrap_err().to_string();
        assert!(err.contains("custom"), "{err}");
    }

    #[test]
    fn keyless_platforms_send_no_credential() {
        for p in PLATFORMS.iter().filter(|p| p.keyless) {
            assert_eq!(p.auth, AuthStyle::None, "{}", p.id);
        }
    }
}
