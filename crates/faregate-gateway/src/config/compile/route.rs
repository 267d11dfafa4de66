//! Compiling one route: matching, upstreams, balance, price, access, rate
//! limit and limits, every problem reported with its field path.

use std::num::NonZeroU32;

use faregate_core::{ChargePolicy, Gcra, Price, RailKind};
use http::{HeaderName, HeaderValue, Method, Uri};

use super::Compiler;
use crate::config::raw::{RawAccess, RawRoute};
use crate::config::routes::HostMatch;
use crate::config::{Access, Balance, Limits, RateKey, RateLimit, Route, Upstream};

impl Compiler<'_> {
    pub(super) fn route(
        &mut self,
        path: &str,
        index: usize,
        r: &RawRoute,
        defaults: &Limits,
    ) -> Route {
        let methods = r.methods.as_ref().map(|ms| {
            ms.iter()
                .enumerate()
                .filter_map(|(j, m)| {
                    let upper = m.to_ascii_uppercase();
                    Method::from_bytes(upper.as_bytes())
                        .map_err(|_| {
                            self.problem(
                                format!("{path}.methods[{j}]"),
                                format!("not an HTTP method: {m:?}"),
                            )
                        })
                        .ok()
                })
                .collect()
        });
        if r.upstreams.is_empty() && r.kind.as_deref() != Some("llm") && r.prompt.is_none() {
            self.problem(
                format!("{path}.upstreams"),
                "at least one upstream URL is needed",
            );
        }
        let upstreams = r
            .upstreams
            .iter()
            .enumerate()
            .filter_map(|(j, u)| self.upstream(&format!("{path}.upstreams[{j}]"), u))
            .collect();
        let balance = match r.balance.as_deref() {
            None | Some("round_robin") => Balance::RoundRobin,
            Some("failover") => Balance::Failover,
            Some(other) => {
                self.problem(
                    format!("{path}.balance"),
                    format!("expected \"round_robin\" or \"failover\", got {other:?}"),
                );
                Balance::RoundRobin
            }
        };
        if let Some(prefix) = &r.strip_prefix
            && (!prefix.starts_with('/') || prefix.ends_with('/'))
        {
            self.problem(
                format!("{path}.strip_prefix"),
                "must start with '/' and not end with '/'",
            );
        }
        let price = match &r.price {
            None => Price::Free,
            Some(p) => p.parse().unwrap_or_else(|e| {
                self.problem(format!("{path}.price"), e);
                Price::Free
            }),
        };
        let mut access = if r.kind.as_deref() == Some("llm") && r.access.is_none() {
            self.credits(&format!("{path}.access"))
        } else {
            self.access(path, r.access.as_ref(), price)
        };
        if self.plan_routes.contains(&r.name) {
            access = self.plan_route_access(path, r.access.as_ref(), access);
        }
        let charge = match r.charge.as_deref() {
            None => ChargePolicy::default(),
            Some(word) => ChargePolicy::parse(word).unwrap_or_else(|| {
                self.problem(
                    format!("{path}.charge"),
                    format!("expected \"2xx\", \"non_5xx\" or \"always\", got {word:?}"),
                );
                ChargePolicy::default()
            }),
        };
        let limits = match &r.limits {
            Some(l) => {
                let gateway_wide = [
                    ("header_read_timeout", l.header_read_timeout.is_some()),
                    ("connect_timeout", l.connect_timeout.is_some()),
                    ("drain_timeout", l.drain_timeout.is_some()),
                    ("pool_idle_timeout", l.pool_idle_timeout.is_some()),
                    ("max_header_bytes", l.max_header_bytes.is_some()),
                    ("max_uri_bytes", l.max_uri_bytes.is_some()),
                ];
                for (name, _) in gateway_wide.iter().filter(|(_, set)| *set) {
                    self.problem(
                        format!("{path}.limits.{name}"),
                        "this limit is gateway-wide: set it in [limits]",
                    );
                }
                self.limits(&format!("{path}.limits"), l, defaults)
            }
            None => defaults.clone(),
        };
        let rate_limit = r.rate_limit.as_ref().and_then(|rl| {
            let p = format!("{path}.rate_limit");
            let per = match rl.per.as_deref() {
                None | Some("key") => RateKey::Key,
                Some("ip") => RateKey::Ip,
                Some(other) => {
                    self.problem(
                        format!("{p}.per"),
                        format!("expected \"key\" or \"ip\", got {other:?}"),
                    );
                    RateKey::Key
                }
            };
            let period = self.duration(&format!("{p}.period"), &rl.period)?;
            let Some(requests) = NonZeroU32::new(rl.requests) else {
                self.problem(format!("{p}.requests"), "must be at least 1");
                return None;
            };
            let Some(burst) = NonZeroU32::new(rl.burst.unwrap_or(rl.requests)) else {
                self.problem(format!("{p}.burst"), "must be at least 1");
                return None;
            };
            let gcra = Gcra::try_new(requests, period, burst)
                .map_err(|e| self.problem(format!("{p}.period"), e))
                .ok()?;
            Some(RateLimit { per, gcra })
        });
        let llm = self.llm_route(path, r, price, &access);
        let upstream_headers = r
            .upstream_headers
            .iter()
            .filter_map(|(name, value)| {
                let p = format!("{path}.upstream_headers.{name}");
                let value = self.secret(&p, value)?;
                match (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(&value),
                ) {
                    (Ok(n), Ok(v)) => Some((n, v)),
                    _ => {
                        self.problem(p, "not a valid header name and value");
                        None
                    }
                }
            })
            .collect();
        Route {
            index,
            name: r.name.as_str().into(),
            methods,
            upstreams,
            path: r.path.clone(),
            balance,
            strip_prefix: r.strip_prefix.clone(),
            preserve_host: r.preserve_host.unwrap_or(false),
            price,
            access,
            charge,
            rate_limit,
            limits,
            upstream_headers,
            llm,
        }
    }

    /// `Access::Rails([credits])`, if this build has the credits rail.
    fn credits(&mut self, path: &str) -> Access {
        if !self.rails.contains(&RailKind::Credits) {
            self.problem(
                path,
                "a priced route for key holders needs the credits rail, which this build lacks",
            );
        }
        Access::Rails(vec![RailKind::Credits])
    }

    pub(super) fn access(&mut self, path: &str, raw: Option<&RawAccess>, price: Price) -> Access {
        let p = format!("{path}.access");
        let access = match raw {
            None if price.amount().is_none() => Access::Anyone,
            // Key holders pay a priced route from their account's credits.
            None => self.credits(&p),
            Some(RawAccess::Word(w)) if w == "anyone" => Access::Anyone,
            Some(RawAccess::Word(w)) if w == "api_key" && price.amount().is_some() => {
                self.credits(&p)
            }
            Some(RawAccess::Word(w)) if w == "api_key" => Access::ApiKey,
            Some(RawAccess::Word(w)) => {
                self.problem(
                    &p,
                    format!("expected \"anyone\", \"api_key\" or a list of rails, got {w:?}"),
                );
                Access::Anyone
            }
            Some(RawAccess::Rails(list)) => {
                let mut rails = Vec::new();
                for (j, name) in list.iter().enumerate() {
                    match name.parse::<RailKind>() {
                        Ok(rail) if self.rails.contains(&rail) => rails.push(rail),
                        Ok(rail) => self.problem(
                            format!("{p}[{j}]"),
                            format!("the {rail} rail is not available in this build"),
                        ),
                        Err(e) => self.problem(format!("{p}[{j}]"), e),
                    }
                }
                if list.is_empty() {
                    self.problem(
                        &p,
                        "an empty rail list lets nobody in; use \"anyone\" for a free route",
                    );
                }
                Access::Rails(rails)
            }
        };
        if access == Access::Anyone && price.amount().is_some() {
            self.problem(&p, "a priced route cannot be open to anyone: use \"api_key\" or a rail list, or make it free");
        }
        access
    }

    pub(super) fn upstream(&mut self, path: &str, text: &str) -> Option<Upstream> {
        let bad = |c: &mut Self, why: &str| {
            c.problem(path, format!("{why}: {text:?}"));
            None
        };
        let Ok(uri) = text.parse::<Uri>() else {
            return bad(self, "not a URL");
        };
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return bad(self, "expected an absolute http:// or https:// URL");
        };
        if scheme != &http::uri::Scheme::HTTP && scheme != &http::uri::Scheme::HTTPS {
            return bad(self, "only http and https upstreams are supported");
        }
        if uri.query().is_some() {
            return bad(self, "an upstream URL cannot carry a query");
        }
        let default_port = if scheme == &http::uri::Scheme::HTTPS {
            443
        } else {
            80
        };
        let host = match authority.port_u16() {
            Some(port) if port == default_port => authority.host(),
            _ => authority.as_str(),
        };
        let Ok(host_header) = HeaderValue::from_str(host) else {
            return bad(self, "not a valid host");
        };
        Some(Upstream {
            scheme: scheme.clone(),
            authority: authority.clone(),
            name: authority.as_str().into(),
            base_path: uri.path().trim_end_matches('/').to_owned(),
            host_header,
        })
    }

    pub(super) fn host_match(&mut self, path: &str, host: Option<&str>) -> HostMatch {
        let Some(host) = host else {
            return HostMatch::Any;
        };
        let valid = |h: &str| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        };
        if let Some(rest) = host.strip_prefix("*.") {
            if valid(rest) {
                return HostMatch::Suffix(format!(".{}", rest.to_ascii_lowercase()));
            }
        } else if valid(host) {
            return HostMatch::Exact(host.to_ascii_lowercase());
        }
        self.problem(
            path,
            format!("expected a host name or *.domain, got {host:?}"),
        );
        HostMatch::Any
    }

    pub(super) fn path_pattern(&mut self, path: &str, pattern: &str) {
        let body = pattern.strip_suffix("/*").unwrap_or(pattern);
        let ok = pattern.starts_with('/')
            && !body.contains('*')
            && (body.is_empty() || crate::path::normalize(body).is_ok_and(|n| n == body));
        if !ok {
            self.problem(path, format!("expected a normalized path such as \"/a/b\" or a prefix \"/a/*\", got {pattern:?}"));
        }
    }
}
