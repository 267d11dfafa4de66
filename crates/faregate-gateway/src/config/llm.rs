//! `[llm]` and the routes of kind `llm` or with a `prompt`, compiled: the
//! providers, the model catalog (names, aliases, prices, where each model
//! is served), and the default limits of LLM callers.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use faregate_core::{Budget, LlmLimits};
use faregate_llm::TokenPrices;
use http::{HeaderName, HeaderValue};

use super::Upstream;

/// The wire format a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// OpenAI's API (and everything compatible with it): chat
    /// completions, responses, embeddings.
    OpenAi,
    /// Anthropic's messages API.
    Anthropic,
}

impl ProviderKind {
    /// `openai` or `anthropic`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
        }
    }
}

/// One provider: where it is and how to authenticate.
#[derive(Clone)]
pub struct Provider {
    /// Its name in the config.
    pub name: Arc<str>,
    /// What it speaks.
    pub kind: ProviderKind,
    /// Its base URL (`https://api.openai.com/v1`).
    pub upstream: Upstream,
    /// The headers that carry its key (secret: never logged).
    pub auth: Vec<(HeaderName, HeaderValue)>,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("upstream", &self.upstream.name)
            .finish_non_exhaustive()
    }
}

/// Where a model is served: a provider and the provider's name for it.
#[derive(Debug, Clone)]
pub struct ModelTarget {
    /// Index into [`LlmSettings::providers`].
    pub provider: usize,
    /// The model name sent to that provider.
    pub model: Arc<str>,
    /// `provider/model`, for the access log.
    pub label: Arc<str>,
}

/// A model callers may name.
#[derive(Debug, Clone)]
pub struct Model {
    /// The public name.
    pub name: Arc<str>,
    /// Other names for it.
    pub aliases: Vec<Arc<str>>,
    /// Prices per million tokens.
    pub prices: TokenPrices,
    /// The most output tokens it produces, the reservation's cap.
    pub max_output_tokens: u64,
    /// Where it is served, tried in order.
    pub targets: Vec<ModelTarget>,
}

/// The LLM gateway's settings.
#[derive(Debug, Clone, Default)]
pub struct LlmSettings {
    /// The providers, in file order.
    pub providers: Vec<Provider>,
    /// The catalog, in file order.
    pub models: Vec<Arc<Model>>,
    /// Models by name and alias.
    pub by_name: HashMap<Arc<str>, Arc<Model>>,
    /// Limits of every key that sets none of its own.
    pub key_limits: LlmLimits,
    /// Budget of every account that sets none of its own.
    pub account_budget: Option<Budget>,
}

impl LlmSettings {
    /// The model called `name` (or aliased so).
    pub fn model(&self, name: &str) -> Option<&Arc<Model>> {
        self.by_name.get(name)
    }
}

/// What a route of the LLM gateway serves.
#[derive(Debug, Clone)]
pub enum LlmRoute {
    /// The OpenAI and Anthropic endpoints, billed by tokens.
    Api,
    /// A prompt template published as its own endpoint.
    Prompt(Arc<Prompt>),
}

/// A prompt template behind its own endpoint.
#[derive(Debug, Clone)]
pub struct Prompt {
    /// The model it calls.
    pub model: Arc<Model>,
    /// The system message, if any.
    pub system: Option<String>,
    /// The user message, with `{{name}}` filled from the caller's JSON.
    pub template: String,
    /// The names the template uses, in order of first use.
    pub fields: Vec<String>,
    /// The cap on the answer's tokens.
    pub max_tokens: u64,
    /// Whether the answer is parsed as JSON (else returned as text).
    pub json: bool,
}

/// The `{{name}}` placeholders of a template, in order of first use, or
/// why it is malformed.
pub(crate) fn template_fields(template: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or("a '{{' is never closed by '}}'")?;
        let name = after[..close].trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!(
                "placeholder {{{{{name}}}}} must be a name of letters, digits and '_'"
            ));
        }
        if !fields.iter().any(|f| f == name) {
            fields.push(name.to_owned());
        }
        rest = &after[close + 2..];
    }
    Ok(fields)
}
