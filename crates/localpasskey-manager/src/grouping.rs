//! Search, sort and grouping of the passkey list, kept apart from the
//! widgets so that the order a person sees is tested without a display.

use crate::model::Passkey;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    Site,
    Account,
    LastUsed,
}

impl SortBy {
    pub const ALL: [SortBy; 3] = [SortBy::Site, SortBy::Account, SortBy::LastUsed];

    pub fn label(self) -> &'static str {
        match self {
            SortBy::Site => "Site",
            SortBy::Account => "Account",
            SortBy::LastUsed => "Last Used",
        }
    }
}

/// The passkeys of one site, in the order they are shown.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteGroup {
    pub rp_id: String,
    pub passkeys: Vec<Passkey>,
}

/// Whether a passkey matches the search text: by site, site name, user
/// name or display name, ignoring case.
pub fn matches(p: &Passkey, query: &str) -> bool {
    let q = query.trim().to_lowercase();
    q.is_empty()
        || [&p.rp_id, &p.rp_name, &p.user_name, &p.display_name]
            .iter()
            .any(|field| field.to_lowercase().contains(&q))
}

fn by_account(a: &Passkey, b: &Passkey) -> std::cmp::Ordering {
    a.account()
        .to_lowercase()
        .cmp(&b.account().to_lowercase())
        .then_with(|| a.credential_id.cmp(&b.credential_id))
}

/// Groups by site. Within a site the passkeys follow `sort`; the sites
/// themselves are ordered by name (Site), by their first account (Account)
/// or by their most recent use (Last Used), so the chosen order also decides
/// which site comes first.
pub fn group(passkeys: &[Passkey], query: &str, sort: SortBy) -> Vec<SiteGroup> {
    let mut groups: Vec<SiteGroup> = Vec::new();
    for p in passkeys.iter().filter(|p| matches(p, query)) {
        match groups.iter_mut().find(|g| g.rp_id == p.rp_id) {
            Some(g) => g.passkeys.push(p.clone()),
            None => groups.push(SiteGroup {
                rp_id: p.rp_id.clone(),
                passkeys: vec![p.clone()],
            }),
        }
    }
    for g in &mut groups {
        match sort {
            SortBy::Site | SortBy::Account => g.passkeys.sort_by(by_account),
            SortBy::LastUsed => g
                .passkeys
                .sort_by(|a, b| b.last_used.cmp(&a.last_used).then_with(|| by_account(a, b))),
        }
    }
    let site = |a: &SiteGroup, b: &SiteGroup| a.rp_id.to_lowercase().cmp(&b.rp_id.to_lowercase());
    match sort {
        SortBy::Site => groups.sort_by(site),
        SortBy::Account => groups.sort_by(|a, b| {
            match (a.passkeys.first(), b.passkeys.first()) {
                (Some(x), Some(y)) => by_account(x, y),
                _ => std::cmp::Ordering::Equal,
            }
            .then_with(|| site(a, b))
        }),
        SortBy::LastUsed => groups.sort_by(|a, b| {
            let last = |g: &SiteGroup| g.passkeys.iter().map(|p| p.last_used).max();
            last(b).cmp(&last(a)).then_with(|| site(a, b))
        }),
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pk(id: &str, rp: &str, user: &str, last_used: u64) -> Passkey {
        Passkey {
            credential_id: id.into(),
            rp_id: rp.into(),
            user_name: user.into(),
            last_used,
            ..Passkey::default()
        }
    }

    fn shape(groups: &[SiteGroup]) -> Vec<(String, Vec<String>)> {
        groups
            .iter()
            .map(|g| {
                (
                    g.rp_id.clone(),
                    g.passkeys.iter().map(|p| p.user_name.clone()).collect(),
                )
            })
            .collect()
    }

    fn sample() -> Vec<Passkey> {
        vec![
            pk("1", "zeta.org", "carol", 10),
            pk("2", "example.com", "bob", 30),
            pk("3", "example.com", "alice", 0),
            pk("4", "github.com", "Dave", 20),
        ]
    }

    #[test]
    fn by_site_groups_sites_alphabetically() {
        let g = group(&sample(), "", SortBy::Site);
        assert_eq!(
            shape(&g),
            vec![
                ("example.com".into(), vec!["alice".into(), "bob".into()]),
                ("github.com".into(), vec!["Dave".into()]),
                ("zeta.org".into(), vec!["carol".into()]),
            ]
        );
    }

    #[test]
    fn by_account_puts_the_first_account_first() {
        let g = group(&sample(), "", SortBy::Account);
        let sites: Vec<_> = g.iter().map(|g| g.rp_id.as_str()).collect();
        assert_eq!(sites, ["example.com", "zeta.org", "github.com"]);
    }

    #[test]
    fn by_last_use_puts_the_latest_first() {
        let g = group(&sample(), "", SortBy::LastUsed);
        assert_eq!(
            shape(&g),
            vec![
                ("example.com".into(), vec!["bob".into(), "alice".into()]),
                ("github.com".into(), vec!["Dave".into()]),
                ("zeta.org".into(), vec!["carol".into()]),
            ]
        );
    }

    #[test]
    fn search_matches_site_and_account_ignoring_case() {
        let g = group(&sample(), "GIT", SortBy::Site);
        assert_eq!(shape(&g), vec![("github.com".into(), vec!["Dave".into()])]);
        let g = group(&sample(), " alice ", SortBy::Site);
        assert_eq!(shape(&g), vec![("example.com".into(), vec!["alice".into()])]);
        assert!(group(&sample(), "nobody", SortBy::Site).is_empty());
    }
}
