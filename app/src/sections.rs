//! The console's sections as the navigation lists them.

use crate::auth::Role;

/// One entry of the navigation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Section {
    pub path: &'static str,
    pub label: &'static str,
    /// What the section is for, in one sentence.
    pub purpose: &'static str,
    /// The least role that sees the section.
    pub min_role: Role,
}

pub const SECTIONS: &[Section] = &[
    Section {
        path: "/",
        label: "Overview",
        purpose: "The state of the console and of the stacks it manages.",
        min_role: Role::Viewer,
    },
    Section {
        path: "/stacks",
        label: "Stacks",
        purpose: "Compose applications under Slipway's care: services, containers, logs.",
        min_role: Role::Viewer,
    },
    Section {
        path: "/releases",
        label: "Releases",
        purpose: "What is being shipped, when, by whom, with its checklist and timeline.",
        min_role: Role::Viewer,
    },
    Section {
        path: "/runs",
        label: "Runs",
        purpose: "Deploys, updates, migrations and rollbacks, step by step and live.",
        min_role: Role::Viewer,
    },
    Section {
        path: "/health",
        label: "Health",
        purpose: "Probe results for every service, over time.",
        min_role: Role::Viewer,
    },
    Section {
        path: "/backups",
        label: "Backups",
        purpose: "Database dumps, their checksums and the restore drills that prove them.",
        min_role: Role::Viewer,
    },
    Section {
        path: "/history",
        label: "History",
        purpose: "Every release and run that reached a stack, newest first.",
        min_role: Role::Viewer,
    },
    Section {
        path: "/approvals",
        label: "Approvals",
        purpose: "Deploys and rollbacks waiting for a second person's decision.",
        min_role: Role::Operator,
    },
    Section {
        path: "/audit",
        label: "Audit",
        purpose: "The append-only, hash-chained record of who changed what.",
        min_role: Role::Approver,
    },
    Section {
        path: "/notifications",
        label: "Notifications",
        purpose: "Slack, Teams and signed webhooks told of runs, approvals and rollbacks, with each delivery's log.",
        min_role: Role::Admin,
    },
    Section {
        path: "/admin",
        label: "Admin",
        purpose: "Users, roles, stacks and settings.",
        min_role: Role::Admin,
    },
];

/// The section that a path belongs to.
pub fn section_for(path: &str) -> Option<&'static Section> {
    SECTIONS.iter().find(|section| section.path == path)
}

/// The sections a role sees, in navigation order.
pub fn visible_to(role: Role) -> impl Iterator<Item = &'static Section> {
    SECTIONS
        .iter()
        .filter(move |section| role.allows(section.min_role))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_has_a_distinct_path() {
        for (index, section) in SECTIONS.iter().enumerate() {
            assert!(section.path.starts_with('/'), "{}", section.label);
            assert!(
                SECTIONS[index + 1..]
                    .iter()
                    .all(|other| other.path != section.path),
                "{} appears twice",
                section.path
            );
        }
    }

    #[test]
    fn viewers_see_no_approvals_audit_or_admin() {
        let labels: Vec<_> = visible_to(Role::Viewer).map(|s| s.label).collect();
        assert!(!labels.contains(&"Approvals") && !labels.contains(&"Audit"));
        assert!(!labels.contains(&"Admin"));
        assert_eq!(visible_to(Role::Admin).count(), SECTIONS.len());
    }

    #[test]
    fn a_path_finds_its_section() {
        assert_eq!(section_for("/runs").map(|s| s.label), Some("Runs"));
        assert_eq!(section_for("/nope"), None);
    }
}
