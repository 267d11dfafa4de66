//! Compiling `[llm]` and the LLM side of routes: providers with their keys,
//! the model catalog with exact prices, default limits, and each route's
//! `kind = "llm"` or `prompt`.

use std::collections::HashMap;
use std::sync::Arc;

use faregate_core::{Budget, Currency, LlmLimits, Price, RailKind};
use faregate_llm::TokenPrices;
use http::{HeaderName, HeaderValue};

use super::Compiler;
use crate::config::Access;
use crate::config::llm::{
    LlmRoute, LlmSettings, Model, ModelTarget, Prompt, Provider, ProviderKind, template_fields,
};
use crate::config::raw::{RawLlm, RawModel, RawPrompt, RawProvider, RawRoute};

/// Output cap of a model whose catalog entry names none.
const DEFAULT_MAX_OUTPUT: u64 = 4096;
/// Output cap of a prompt route that names none.
const DEFAULT_PROMPT_TOKENS: u64 = 256;

impl Compiler<'_> {
    pub(super) fn llm(&mut self, raw: &RawLlm) -> LlmSettings {
        let mut settings = LlmSettings::default();
        let mut index = HashMap::new();
        for (name, p) in &raw.providers {
            if let Some(provider) = self.provider(&format!("llm.providers.{name}"), name, p) {
                index.insert(name.as_str(), settings.providers.len());
                settings.providers.push(provider);
            }
        }
        for (i, m) in raw.models.iter().enumerate() {
            let path = format!("llm.models[{i}]");
            let Some(model) = self.model(&path, m, &index, &settings.providers) else {
                continue;
            };
            let model = Arc::new(model);
            for (j, name) in std::iter::once(&model.name)
                .chain(&model.aliases)
                .enumerate()
            {
                if settings
                    .by_name
                    .insert(name.clone(), model.clone())
                    .is_some()
                {
                    let at = if j == 0 {
                        format!("{path}.name")
                    } else {
                        format!("{path}.aliases[{}]", j - 1)
                    };
                    self.problem(at, format!("the model name {name:?} is used twice"));
                }
            }
            settings.models.push(model);
        }
        let l = &raw.limits;
        let budget = |c: &mut Self, path: &str, text: &Option<String>| {
            text.as_deref().and_then(|t| {
                Budget::parse(t, Some(Currency::USD))
                    .map_err(|e| c.problem(path, e))
                    .ok()
            })
        };
        settings.key_limits = LlmLimits {
            budget: budget(self, "llm.limits.key_budget", &l.key_budget),
            tpm: l.tpm,
            rpm: l.rpm,
        };
        settings.account_budget = budget(self, "llm.limits.account_budget", &l.account_budget);
        if l.tpm == Some(0) {
            self.problem("llm.limits.tpm", "must be at least 1");
        }
        if l.rpm == Some(0) {
            self.problem("llm.limits.rpm", "must be at least 1");
        }
        settings
    }

    fn provider(&mut self, path: &str, name: &str, p: &RawProvider) -> Option<Provider> {
        let kind = match p.kind.as_str() {
            "openai" => ProviderKind::OpenAi,
            "anthropic" => ProviderKind::Anthropic,
            other => {
                self.problem(
                    format!("{path}.kind"),
                    format!("expected \"openai\" or \"anthropic\", got {other:?}"),
                );
                return None;
            }
        };
        let upstream = self.upstream(&format!("{path}.base_url"), &p.base_url)?;
        let mut auth = Vec::new();
        if let Some(key) = p
            .api_key
            .as_deref()
            .and_then(|k| self.secret(&format!("{path}.api_key"), k))
        {
            let header = match kind {
                ProviderKind::OpenAi => (http::header::AUTHORIZATION, format!("Bearer {key}")),
                ProviderKind::Anthropic => (HeaderName::from_static("x-api-key"), key),
            };
            match HeaderValue::from_str(&header.1) {
                Ok(mut value) => {
                    value.set_sensitive(true);
                    auth.push((header.0, value));
                }
                Err(_) => self.problem(format!("{path}.api_key"), "not valid in a header"),
            }
        }
        Some(Provider {
            name: name.into(),
            kind,
            upstream,
            auth,
        })
    }

    fn model(
        &mut self,
        path: &str,
        m: &RawModel,
        index: &HashMap<&str, usize>,
        providers: &[Provider],
    ) -> Option<Model> {
        if m.name.is_empty() {
            self.problem(format!("{path}.name"), "must not be empty");
        }
        let currency = match m.currency.as_deref().map(Currency::from_code) {
            None => Currency::USD,
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                self.problem(format!("{path}.currency"), e);
                return None;
            }
        };
        let cached = m.cached_input.as_deref().unwrap_or(&m.input);
        let prices = match TokenPrices::parse(currency, &m.input, cached, &m.output) {
            Ok(prices) => Some(prices),
            Err(e) => {
                self.problem(format!("{path}.input"), format!("prices: {e}"));
                None
            }
        };
        if m.providers.is_empty() {
            self.problem(
                format!("{path}.providers"),
                "at least one provider is needed",
            );
        }
        let mut targets = Vec::new();
        for (j, t) in m.providers.iter().enumerate() {
            let Some(&provider) = index.get(t.provider.as_str()) else {
                self.problem(
                    format!("{path}.providers[{j}].provider"),
                    format!("no provider {:?} in [llm.providers]", t.provider),
                );
                continue;
            };
            let model: Arc<str> = t.model.as_deref().unwrap_or(&m.name).into();
            targets.push(ModelTarget {
                provider,
                label: format!("{}/{model}", providers[provider].name).into(),
                model,
            });
        }
        let max_output_tokens = m.max_output_tokens.unwrap_or(DEFAULT_MAX_OUTPUT);
        if max_output_tokens == 0 {
            self.problem(format!("{path}.max_output_tokens"), "must be at least 1");
        }
        Some(Model {
            name: m.name.as_str().into(),
            aliases: m.aliases.iter().map(|a| a.as_str().into()).collect(),
            prices: prices?,
            max_output_tokens,
            targets,
        })
    }

    /// The route's LLM role, checked against its other settings.
    pub(super) fn llm_route(
        &mut self,
        path: &str,
        r: &RawRoute,
        price: Price,
        access: &Access,
    ) -> Option<LlmRoute> {
        let llm = match (r.kind.as_deref(), &r.prompt) {
            (None | Some("proxy"), None) => return None,
            (Some("llm"), None) => {
                if price.amount().is_some() {
                    self.problem(
                        format!("{path}.price"),
                        "an llm route is priced by the tokens of each call: remove the price",
                    );
                }
                if *access != Access::Rails(vec![RailKind::Credits]) {
                    self.problem(
                        format!("{path}.access"),
                        "an llm route bills accounts by tokens: access must be [\"credits\"]",
                    );
                }
                LlmRoute::Api
            }
            (None | Some("proxy"), Some(p)) => {
                LlmRoute::Prompt(Arc::new(self.prompt(&format!("{path}.prompt"), p)?))
            }
            (Some("llm"), Some(_)) => {
                self.problem(
                    format!("{path}.prompt"),
                    "a prompt route is a route of its own: leave out kind = \"llm\"",
                );
                return None;
            }
            (Some(other), _) => {
                self.problem(
                    format!("{path}.kind"),
                    format!("expected \"proxy\" or \"llm\", got {other:?}"),
                );
                return None;
            }
        };
        if !r.upstreams.is_empty() {
            self.problem(
                format!("{path}.upstreams"),
                "LLM routes call the providers of [llm]: remove the upstreams",
            );
        }
        if self.llm.providers.is_empty() {
            self.problem(
                format!("{path}.kind"),
                "LLM routes need [llm.providers] and [[llm.models]]",
            );
        }
        Some(llm)
    }

    fn prompt(&mut self, path: &str, p: &RawPrompt) -> Option<Prompt> {
        let model = self.llm.model(&p.model).cloned();
        if model.is_none() {
            self.problem(
                format!("{path}.model"),
                format!("no model {:?} in [[llm.models]]", p.model),
            );
        }
        let fields = template_fields(&p.template)
            .map_err(|e| self.problem(format!("{path}.template"), e))
            .ok()?;
        let json = match p.output.as_deref() {
            None | Some("json") => true,
            Some("text") => false,
            Some(other) => {
                self.problem(
                    format!("{path}.output"),
                    format!("expected \"json\" or \"text\", got {other:?}"),
                );
                true
            }
        };
        let max_tokens = p.max_tokens.unwrap_or(DEFAULT_PROMPT_TOKENS);
        if max_tokens == 0 {
            self.problem(format!("{path}.max_tokens"), "must be at least 1");
        }
        Some(Prompt {
            model: model?,
            system: p.system.clone(),
            template: p.template.clone(),
            fields,
            max_tokens,
            json,
        })
    }
}
