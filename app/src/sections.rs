//! The console's sections as the navigation lists them. A section whose feature has
//! not been built yet says so on its page instead of showing anything invented.

/// One entry of the navigation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Section {
    pub path: &'static str,
    pub label: &'static str,
    /// What the section is for, in one sentence.
    pub purpose: &'static str,
    /// Whether the section does its job yet.
    pub available: bool,
}

pub const SECTIONS: &[Section] = &[
    Section {
        path: "/",
        label: "Overview",
        purpose: "The state of the console and of the stacks it manages.",
        available: true,
    },
    Section {
        path: "/stacks",
        label: "Stacks",
        purpose: "Compose applications under Slipway's care: services, containers, logs.",
        available: false,
    },
    Section {
        path: "/releases",
        label: "Releases",
        purpose: "What is being shipped, when, by whom, with its checklist and timeline.",
        available: false,
    },
    Section {
        path: "/runs",
        label: "Runs",
        purpose: "Deploys, updates, migrations and rollbacks, step by step and live.",
        available: false,
    },
    Section {
        path: "/health",
        label: "Health",
        purpose: "Probe results for every service, over time.",
        available: false,
    },
    Section {
        path: "/backups",
        label: "Backups",
        purpose: "Database dumps, their checksums and the restore drills that prove them.",
        available: false,
    },
    Section {
        path: "/history",
        label: "History",
        purpose: "Every release and run that reached a stack, newest first.",
        available: false,
    },
    Section {
        path: "/approvals",
        label: "Approvals",
        purpose: "Deploys and rollbacks waiting for a second person's decision.",
        available: false,
    },
    Section {
        path: "/audit",
        label: "Audit",
        purpose: "The append-only, hash-chained record of who changed what.",
        available: false,
    },
    Section {
        path: "/admin",
        label: "Admin",
        purpose: "Users, roles, stacks and settings.",
        available: false,
    },
];

/// The section that a path belongs to.
pub fn section_for(path: &str) -> Option<&'static Section> {
    SECTIONS.iter().find(|section| section.path == path)
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
    fn a_path_finds_its_section() {
        assert_eq!(section_for("/runs").map(|s| s.label), Some("Runs"));
        assert_eq!(section_for("/nope"), None);
    }
}
