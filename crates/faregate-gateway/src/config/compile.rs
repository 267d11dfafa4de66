//! From raw TOML to a compiled [`Config`], collecting every problem with
//! its field path before giving up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use faregate_core::RailKind;
use http::Uri;

use super::raw::{RawApiKey, RawConfig, RawLimits, RawRoute};
use super::{
    Admin, ApiKey, Config, ConfigError, KeyTable, Limits, Listener, RouteTable, StoreSettings,
    UpstreamTls,
};
use crate::tls;
use faregate_rails::credits::TopUpLink;

mod llm;
mod plans;
mod route;
mod x402;

/// Reads and compiles the config file at `path`. `env` resolves `$VAR`
/// secrets; `rails` are the payment rails this build provides.
pub fn load_file(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    rails: &[RailKind],
) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        problems: vec![(path.display().to_string(), format!("cannot read: {e}"))],
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    load(&text, base, env, rails)
}

/// Compiles config `text`; relative file paths are taken from `base`.
pub fn load(
    text: &str,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    rails: &[RailKind],
) -> Result<Config, ConfigError> {
    let mut c = Compiler {
        problems: Vec::new(),
        base,
        env,
        rails,
        plan_routes: Vec::new(),
        llm: Default::default(),
    };
    let raw = c.parse(text)?;
    let config = c.config(raw);
    if c.problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError {
            problems: c.problems,
        })
    }
}

struct Compiler<'a> {
    problems: Vec<(String, String)>,
    base: &'a Path,
    env: &'a dyn Fn(&str) -> Option<String>,
    rails: &'a [RailKind],
    /// Routes some plan includes.
    plan_routes: Vec<String>,
    /// The LLM catalog, compiled before the routes that call it.
    llm: super::llm::LlmSettings,
}

impl Compiler<'_> {
    fn problem(&mut self, path: impl Into<String>, message: impl ToString) {
        self.problems.push((path.into(), message.to_string()));
    }

    fn parse(&mut self, text: &str) -> Result<RawConfig, ConfigError> {
        let fail = |path: String, message: String| ConfigError {
            problems: vec![(path, message)],
        };
        let de = toml::Deserializer::parse(text)
            .map_err(|e| fail("(file)".into(), e.message().to_owned()))?;
        let mut unknown = Vec::new();
        let raw = serde_ignored::deserialize(de, |path| unknown.push(path.to_string()))
            .map_err(|e: toml::de::Error| fail(error_path(text, &e), e.message().to_owned()))?;
        for path in unknown {
            self.problem(bracket_indexes(&path), "unknown key");
        }
        Ok(raw)
    }

    fn config(&mut self, raw: RawConfig) -> Config {
        let limits = self.limits("limits", &raw.limits, &Limits::default());
        let listeners = self.listeners(&raw);
        let admin_addr = raw.admin.address.as_deref().unwrap_or(super::DEFAULT_ADMIN);
        let admin = Admin {
            address: self.address("admin.address", admin_addr),
            token: raw
                .admin
                .token
                .as_deref()
                .and_then(|t| self.secret("admin.token", t)),
        };
        let upstream_tls = UpstreamTls {
            ca_file: raw
                .server
                .upstream_ca_file
                .as_deref()
                .map(|f| self.file("server.upstream_ca_file", f)),
            system_roots: raw.server.upstream_system_roots.unwrap_or(true),
        };
        if let Some(file) = &upstream_tls.ca_file
            && let Err(e) = tls::read_roots(file)
        {
            self.problem("server.upstream_ca_file", e);
        }
        let public_url = raw.server.public_url.as_deref().map(|u| self.public_url(u));
        let names: Vec<&str> = raw.routes.iter().map(|r| r.name.as_str()).collect();
        let keys = self.keys(&raw.api_keys, &names);
        let plans = self.plans(&raw.plans, &names);
        self.plan_routes = raw.plans.iter().flat_map(|p| p.routes.clone()).collect();
        let billing = self.billing(&raw.billing);
        self.llm = self.llm(&raw.llm);
        let routes = self.routes(&raw.routes, &limits);
        // In file order: the table keeps routes most specific first.
        let mut compiled: Vec<_> = routes.routes().iter().collect();
        compiled.sort_by_key(|r| r.index);
        let access: Vec<_> = compiled
            .iter()
            .map(|r| (r.access.clone(), r.price))
            .collect();
        let x402 = self.x402(&raw.x402, &raw.routes, &access);
        let store = StoreSettings {
            url: match raw.store.url.as_deref() {
                None => self.store_url(super::DEFAULT_STORE_URL),
                Some(url) => self.store_url(url),
            },
            flush_interval: raw
                .store
                .flush_interval
                .as_deref()
                .and_then(|d| self.duration("store.flush_interval", d))
                .unwrap_or(super::DEFAULT_FLUSH_INTERVAL),
        };
        if store.flush_interval.is_zero() || store.flush_interval > Duration::from_secs(10) {
            self.problem("store.flush_interval", "must be between 1ms and 10s");
        }
        let top_up = self.top_up(&raw.credits);
        Config {
            listeners,
            admin,
            limits,
            public_url,
            upstream_tls,
            keys,
            store,
            top_up,
            plans,
            billing,
            x402,
            llm: std::mem::take(&mut self.llm),
            routes,
        }
    }

    fn top_up(&mut self, raw: &super::raw::RawCredits) -> Option<TopUpLink> {
        let method = match raw.top_up_method.as_deref() {
            None | Some("GET") => "GET",
            Some("POST") => "POST",
            Some(other) => {
                self.problem(
                    "credits.top_up_method",
                    format!("expected \"GET\" or \"POST\", got {other:?}"),
                );
                "GET"
            }
        };
        let url = raw.top_up_url.clone()?;
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            self.problem("credits.top_up_url", "expected an http:// or https:// URL");
        }
        Some(TopUpLink { url, method })
    }

    fn store_url(&mut self, url: &str) -> String {
        let Some(url) = self.secret("store.url", url) else {
            return String::new();
        };
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            self.problem(
                "store.url",
                "expected sqlite://PATH or postgres://USER@HOST/DATABASE",
            );
        }
        // A relative SQLite path is taken from the config file's folder.
        match url.strip_prefix("sqlite://") {
            Some(path) if !path.starts_with('/') && !path.starts_with(':') => {
                format!("sqlite://{}", self.base.join(path).display())
            }
            _ => url,
        }
    }

    fn listeners(&mut self, raw: &RawConfig) -> Vec<Listener> {
        if raw.listeners.is_empty() {
            let address = self.address("listeners", super::DEFAULT_LISTENER);
            return vec![Listener { address, tls: None }];
        }
        let mut out = Vec::new();
        for (i, l) in raw.listeners.iter().enumerate() {
            let path = format!("listeners[{i}]");
            let address = self.address(&format!("{path}.address"), &l.address);
            let tls = l.tls.as_ref().and_then(|t| {
                let cert = self.file(&format!("{path}.tls.cert"), &t.cert);
                let key = self.file(&format!("{path}.tls.key"), &t.key);
                tls::server_config(&cert, &key)
                    .map_err(|e| self.problem(format!("{path}.tls"), e))
                    .ok()
            });
            if out.iter().any(|o: &Listener| o.address == address) {
                self.problem(
                    format!("{path}.address"),
                    format!("{address} is listed twice"),
                );
            }
            out.push(Listener { address, tls });
        }
        out
    }

    fn keys(&mut self, raw: &[RawApiKey], routes: &[&str]) -> KeyTable {
        let mut table = KeyTable::default();
        for (i, k) in raw.iter().enumerate() {
            let path = format!("api_keys[{i}]");
            let hash = match (&k.key, &k.key_sha256) {
                (Some(key), None) => self.secret(&format!("{path}.key"), key).and_then(|key| {
                    if key.len() < 16 {
                        self.problem(format!("{path}.key"), "keys must be at least 16 characters");
                        return None;
                    }
                    Some(super::sha256(key.as_bytes()))
                }),
                (None, Some(hex_hash)) => match hex::decode(hex_hash)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                {
                    Some(h) => Some(h),
                    None => {
                        self.problem(format!("{path}.key_sha256"), "expected 64 hex digits");
                        None
                    }
                },
                _ => {
                    self.problem(&path, "set exactly one of `key` and `key_sha256`");
                    None
                }
            };
            for (j, r) in k.routes.iter().flatten().enumerate() {
                if !routes.contains(&r.as_str()) {
                    self.problem(
                        format!("{path}.routes[{j}]"),
                        format!("no route is named {r:?}"),
                    );
                }
            }
            let key = std::sync::Arc::new(ApiKey {
                id: k.id.as_str().into(),
                account: None,
                routes: k
                    .routes
                    .as_ref()
                    .map(|r| r.iter().map(|n| n.as_str().into()).collect()),
                models: self.key_models(&path, k.models.as_deref()),
                limits: faregate_core::LlmLimits::default(),
                expires_at: None,
            });
            if let Some(hash) = hash
                && table.by_hash.insert(hash, key).is_some()
            {
                self.problem(&path, "the same key is listed twice");
            }
        }
        table
    }

    /// An `[[api_keys]]` entry's `models`: not empty, no blank name.
    fn key_models(
        &mut self,
        path: &str,
        models: Option<&[String]>,
    ) -> Option<Vec<std::sync::Arc<str>>> {
        let models = models?;
        if models.is_empty() {
            self.problem(
                format!("{path}.models"),
                "empty, so the key could use no model; leave it out to allow every model",
            );
        }
        for (j, m) in models.iter().enumerate() {
            if m.trim().is_empty() {
                self.problem(
                    format!("{path}.models[{j}]"),
                    "model names must not be blank",
                );
            }
        }
        Some(models.iter().map(|n| n.as_str().into()).collect())
    }

    fn routes(&mut self, raw: &[RawRoute], defaults: &Limits) -> RouteTable {
        let mut table = RouteTable::default();
        if raw.is_empty() {
            self.problem("routes", "no routes: add at least one [[routes]] table");
        }
        let mut seen = std::collections::HashSet::new();
        for (i, r) in raw.iter().enumerate() {
            let path = format!("routes[{i}]");
            if r.name.is_empty() || !seen.insert(r.name.as_str()) {
                self.problem(
                    format!("{path}.name"),
                    format!("route names must be unique and non-empty: {:?}", r.name),
                );
            }
            let host = self.host_match(&format!("{path}.host"), r.host.as_deref());
            self.path_pattern(&format!("{path}.path"), &r.path);
            let route = self.route(&path, i, r, defaults);
            table.push(route, host, &r.path);
        }
        table.finish();
        table
    }

    fn limits(&mut self, path: &str, raw: &RawLimits, base: &Limits) -> Limits {
        let mut dur = |name: &str, v: &Option<String>, d: Duration| {
            v.as_deref()
                .and_then(|v| self.duration(&format!("{path}.{name}"), v))
                .unwrap_or(d)
        };
        let limits = Limits {
            header_read_timeout: dur(
                "header_read_timeout",
                &raw.header_read_timeout,
                base.header_read_timeout,
            ),
            body_idle_timeout: dur(
                "body_idle_timeout",
                &raw.body_idle_timeout,
                base.body_idle_timeout,
            ),
            connect_timeout: dur(
                "connect_timeout",
                &raw.connect_timeout,
                base.connect_timeout,
            ),
            first_byte_timeout: dur(
                "first_byte_timeout",
                &raw.first_byte_timeout,
                base.first_byte_timeout,
            ),
            idle_timeout: dur("idle_timeout", &raw.idle_timeout, base.idle_timeout),
            drain_timeout: dur("drain_timeout", &raw.drain_timeout, base.drain_timeout),
            pool_idle_timeout: dur(
                "pool_idle_timeout",
                &raw.pool_idle_timeout,
                base.pool_idle_timeout,
            ),
            max_body_bytes: raw.max_body_bytes.unwrap_or(base.max_body_bytes),
            max_header_bytes: raw.max_header_bytes.unwrap_or(base.max_header_bytes),
            max_uri_bytes: raw.max_uri_bytes.unwrap_or(base.max_uri_bytes),
        };
        for (name, v, min) in [
            ("max_header_bytes", limits.max_header_bytes, 1024),
            ("max_uri_bytes", limits.max_uri_bytes, 256),
        ] {
            if v < min {
                self.problem(format!("{path}.{name}"), format!("must be at least {min}"));
            }
        }
        limits
    }

    fn duration(&mut self, path: &str, text: &str) -> Option<Duration> {
        parse_duration(text).map_err(|e| self.problem(path, e)).ok()
    }

    fn address(&mut self, path: &str, text: &str) -> SocketAddr {
        text.parse().unwrap_or_else(|_| {
            self.problem(
                path,
                format!("expected ip:port such as \"127.0.0.1:8402\", got {text:?}"),
            );
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    }

    fn file(&self, _path: &str, name: &str) -> PathBuf {
        self.base.join(name)
    }

    fn secret(&mut self, path: &str, value: &str) -> Option<String> {
        match value.strip_prefix('$') {
            Some(var)
                if !var.is_empty()
                    && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                let found = (self.env)(var);
                if found.is_none() {
                    self.problem(path, format!("environment variable {var} is not set"));
                }
                found
            }
            _ => Some(value.to_owned()),
        }
    }

    fn public_url(&mut self, text: &str) -> String {
        match text.parse::<Uri>() {
            Ok(u) if u.scheme().is_some() && u.authority().is_some() => {
                text.trim_end_matches('/').to_owned()
            }
            _ => {
                self.problem(
                    "server.public_url",
                    format!("expected an absolute URL, got {text:?}"),
                );
                String::new()
            }
        }
    }
}

/// `"250ms"`, `"10s"`, `"5m"`, `"1h"`; zero is refused.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("expected a duration such as \"10s\" or \"250ms\", got {text:?}"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        "d" => Duration::from_secs(n.saturating_mul(86_400)),
        _ => return Err(format!("unknown unit in {text:?}: use ms, s, m, h or d")),
    };
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(d)
}

/// `routes.0.colour` (as serde_ignored writes it) to `routes[0].colour`.
fn bracket_indexes(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 4);
    for segment in path.split('.') {
        if segment.bytes().all(|b| b.is_ascii_digit()) && !out.is_empty() {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

/// The field path of a type error, from its position in the file.
fn error_path(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].lines().count().max(1);
            format!("line {line}")
        }
        None => "(file)".into(),
    }
}
