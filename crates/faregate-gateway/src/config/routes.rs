//! The precompiled route matcher: exact paths in a hash map, prefixes
//! longest first, then host, then method.

use std::collections::HashMap;
use std::sync::Arc;

use http::Method;

use super::Route;

/// How a route matches the Host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostMatch {
    /// Any host.
    Any,
    /// Exactly this (lowercase, no port).
    Exact(String),
    /// Any subdomain of this suffix, which starts with a dot.
    Suffix(String),
}

impl HostMatch {
    fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Any => true,
            HostMatch::Exact(h) => h.eq_ignore_ascii_case(host),
            HostMatch::Suffix(s) => {
                host.len() > s.len() && host[host.len() - s.len()..].eq_ignore_ascii_case(s)
            }
        }
    }

    fn specificity(&self) -> u8 {
        match self {
            HostMatch::Exact(_) => 2,
            HostMatch::Suffix(_) => 1,
            HostMatch::Any => 0,
        }
    }
}

/// The routes and how to find one.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
    hosts: Vec<HostMatch>,
    /// Keyed by the config's paths only: FNV, not SipHash (`faregate_core::Fnv1a`).
    exact: HashMap<String, Vec<usize>, faregate_core::FnvBuild>,
    /// `(prefix, route)`, longest prefix first.
    prefixes: Vec<(String, usize)>,
}

/// The result of matching a request.
#[derive(Debug)]
pub enum RouteMatch<'a> {
    /// A route takes this request.
    Found(&'a Arc<Route>),
    /// Routes match the path but none takes the method; the methods they take.
    MethodNotAllowed(Vec<Method>),
    /// Nothing matches.
    NotFound,
}

impl RouteTable {
    pub(crate) fn push(&mut self, route: Route, host: HostMatch, path: &str) {
        let index = self.routes.len();
        if let Some(prefix) = path.strip_suffix("/*") {
            self.prefixes.push((prefix.to_owned(), index));
            self.prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        } else {
            self.exact.entry(path.to_owned()).or_default().push(index);
        }
        self.routes.push(Arc::new(route));
        self.hosts.push(host);
    }

    /// Sorts same-path candidates so that more specific hosts win.
    pub(crate) fn finish(&mut self) {
        let hosts = &self.hosts;
        for list in self.exact.values_mut() {
            list.sort_by_key(|&i| std::cmp::Reverse(hosts[i].specificity()));
        }
        self.prefixes.sort_by(|a, b| {
            b.0.len()
                .cmp(&a.0.len())
                .then(hosts[b.1].specificity().cmp(&hosts[a.1].specificity()))
        });
    }

    /// Every route.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// Finds the route for `host` (lowercase, no port), normalized `path`
    /// and `method`.
    pub fn find(&self, host: &str, path: &str, method: &Method) -> RouteMatch<'_> {
        let exact = self.exact.get(path).into_iter().flatten().copied();
        let prefixed = self
            .prefixes
            .iter()
            .filter(|(p, _)| under(path, p))
            .map(|&(_, i)| i);
        let mut allowed: Vec<Method> = Vec::new();
        let mut path_matched = false;
        for i in exact.chain(prefixed) {
            if !self.hosts[i].matches(host) {
                continue;
            }
            let route = &self.routes[i];
            if route.allows(method) {
                return RouteMatch::Found(route);
            }
            path_matched = true;
            for m in route.methods.iter().flatten() {
                if !allowed.contains(m) {
                    allowed.push(m.clone());
                }
            }
        }
        if path_matched {
            RouteMatch::MethodNotAllowed(allowed)
        } else {
            RouteMatch::NotFound
        }
    }
}

/// Whether `path` is `prefix` or lies below it.
fn under(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => {
            rest.is_empty() || rest.starts_with('/') || prefix.ends_with('/') || prefix.is_empty()
        }
        None => false,
    }
}
