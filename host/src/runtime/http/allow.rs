//! Host allow-lists: which names a plugin's outbound requests may be
//! addressed to. (Which *addresses* those names may lead to is the
//! [`NetworkPolicy`](super::NetworkPolicy)'s business, checked after
//! resolution.)

/// One allow-list entry: `host`, `host:port`, `*.domain`, `*` (any host),
/// or any of these behind `http://` or `https://`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: Option<String>,
    host: String,
    port: Option<u16>,
}

impl AllowedHost {
    /// Parse an entry; the error says what is wrong with it.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let (scheme, rest) = match entry.split_once("://") {
            Some((s, rest))
                if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") =>
            {
                (Some(s.to_ascii_lowercase()), rest)
            }
            Some((s, _)) => return Err(format!("`{entry}`: scheme `{s}` is not http or https")),
            None => (None, entry),
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('?') {
            return Err(format!("`{entry}`: give a host, not a URL with a path"));
        }
        // `[v6]:port` keeps its brackets, as `http::Uri::host` does.
        let split = match rest.strip_prefix('[') {
            Some(v6) => v6.split_once("]:").map(|(h, p)| (&rest[..h.len() + 2], p)),
            None => rest.rsplit_once(':'),
        };
        let (host, port) = match split {
            Some((h, p)) => {
                let port = p.parse::<u16>().map_err(|_| {
                    format!("`{entry}`: port `{p}` is not a number from 0 to 65535")
                })?;
                (h, Some(port))
            }
            None => (rest, None),
        };
        let host = host.to_ascii_lowercase();
        if host != "*" {
            let bare = host.strip_prefix("*.").unwrap_or(&host);
            if bare.is_empty() || bare.contains('*') {
                return Err(format!(
                    "`{entry}`: a wildcard may only be a leading `*.` or a lone `*`"
                ));
            }
        }
        Ok(Self { scheme, host, port })
    }

    fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        if self.scheme.as_deref().is_some_and(|s| s != scheme) {
            return false;
        }
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        if self.host == "*" {
            return true;
        }
        match self.host.strip_prefix("*.") {
            Some(domain) => host.len() > domain.len() + 1 && host.ends_with(&format!(".{domain}")),
            None => self.host == host,
        }
    }

    /// Does this entry allow everything `wanted` would? (A plugin's wish is
    /// granted only when an operator's entry covers it.)
    pub fn covers(&self, wanted: &AllowedHost) -> bool {
        if self.scheme.is_some() && self.scheme != wanted.scheme {
            return false;
        }
        if self.port.is_some() && self.port != wanted.port {
            return false;
        }
        if self.host == "*" {
            return true;
        }
        match (self.host.strip_prefix("*."), wanted.host.strip_prefix("*.")) {
            (_, None) if wanted.host == "*" => false,
            (Some(domain), Some(inner)) => {
                inner == domain || inner.ends_with(&format!(".{domain}"))
            }
            (Some(domain), None) => {
                wanted.host.len() > domain.len() + 1 && wanted.host.ends_with(&format!(".{domain}"))
            }
            (None, Some(_)) => false,
            (None, None) => self.host == wanted.host,
        }
    }
}

impl std::fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(scheme) = &self.scheme {
            write!(f, "{scheme}://")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// The hosts a plugin may reach. Empty by default: no outbound HTTP at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Vec<AllowedHost>);

impl AllowList {
    /// Build from entries, failing on the first bad one.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        entries
            .iter()
            .map(|e| AllowedHost::parse(e.as_ref()))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Add one entry.
    pub fn push(&mut self, host: AllowedHost) {
        self.0.push(host);
    }

    /// Is this URI allowed?
    pub fn allows(&self, uri: &http::Uri) -> bool {
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let Some(host) = uri.host() else { return false };
        let host = host.to_ascii_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "http" { 80 } else { 443 });
        self.0.iter().any(|a| a.allows(&scheme, &host, port))
    }

    /// Is `wanted` covered by one of these entries?
    pub fn covers(&self, wanted: &AllowedHost) -> bool {
        self.0.iter().any(|a| a.covers(wanted))
    }

    /// The entries.
    pub fn iter(&self) -> impl Iterator<Item = &AllowedHost> {
        self.0.iter()
    }

    /// The entries as written, for status output.
    pub fn entries(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &str) -> AllowedHost {
        AllowedHost::parse(s).expect(s)
    }

    #[test]
    fn a_grant_covers_only_what_it_allows() {
        assert!(host("*").covers(&host("*.example.com")));
        assert!(host("*.example.com").covers(&host("hooks.example.com")));
        assert!(host("*.example.com").covers(&host("*.eu.example.com")));
        assert!(host("*.example.com").covers(&host("*.example.com")));
        assert!(!host("*.example.com").covers(&host("example.com")));
        assert!(!host("hooks.example.com").covers(&host("*.example.com")));
        assert!(!host("*.example.com").covers(&host("*")));
        assert!(!host("https://a.com").covers(&host("a.com")));
        assert!(host("a.com").covers(&host("https://a.com:8443")));
        assert!(!host("a.com:443").covers(&host("a.com")));
    }

    #[test]
    fn a_lone_star_allows_any_host_but_not_other_wildcards() {
        let any = AllowList::parse(&["*"]).expect("parses");
        assert!(any.allows(&"http://2130706433:80/".parse().expect("uri")));
        assert!(AllowedHost::parse("*foo.com").is_err());
        assert!(AllowedHost::parse("a.*.com").is_err());
    }
}
