//! Stacks' compose files as parsed, kept while every file the parse read or looked for is
//! unchanged. A stack's page needs its definition in most of its sections, and parsing the
//! YAML was a quarter of the console's time with fifty people on the page. A file is
//! unchanged while its size, inode, modification and change times are, or while it is still
//! absent: the change time moves with every write and cannot be set back, so an edit is seen
//! by the very next read.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use super::compose::StackDefinition;
use super::StackSummary;

/// What a file was when a parse read it or looked for it; `None` for a file that was not there.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp(Option<[i64; 7]>);

impl Stamp {
    fn of(path: &Path) -> Self {
        Self(std::fs::metadata(path).ok().map(|meta| {
            [
                meta.dev() as i64,
                meta.ino() as i64,
                meta.size() as i64,
                meta.mtime(),
                meta.mtime_nsec(),
                meta.ctime(),
                meta.ctime_nsec(),
            ]
        }))
    }
}

thread_local! {
    /// The files the parse running on this thread has read or looked for so far.
    static LOOKED_AT: RefCell<Option<Vec<(PathBuf, Stamp)>>> = const { RefCell::new(None) };
}

/// Says that the parse running on this thread reads or looks for `path`: the compose module
/// calls it for every file (the compose and env files, included files, the services' env
/// files, the secrets' and configs' sources). Stamped before it is read: a write after the
/// stamp shows as a change, never as the old content.
pub(super) fn looked_at(path: &Path) {
    LOOKED_AT.with_borrow_mut(|files| {
        if let Some(files) = files {
            files.push((path.to_path_buf(), Stamp::of(path)));
        }
    });
}

/// A parse and the files it read.
struct Parsed {
    files: Vec<(PathBuf, Stamp)>,
    definition: Result<StackDefinition, String>,
}

/// What a stack's definition depends on besides its files.
type Settings = (String, Option<String>, Vec<String>, bool);

/// At most this many parses are kept (one per stack and settings); past it, all are dropped.
const KEPT: usize = 256;

static PARSED: LazyLock<Mutex<HashMap<Settings, Arc<Parsed>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn kept() -> std::sync::MutexGuard<'static, HashMap<Settings, Arc<Parsed>>> {
    PARSED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The stack's definition as `parse` gives it, from the last parse when none of the files it
/// read has changed since (its error too: a file that is fixed is a changed file).
pub(super) fn definition(
    stack: &StackSummary,
    parse: impl FnOnce() -> Result<StackDefinition, String>,
) -> Result<StackDefinition, String> {
    let settings = (
        stack.compose_file.clone(),
        stack.env_file.clone(),
        stack.profiles.clone(),
        stack.managed_edge,
    );
    let last = kept().get(&settings).cloned();
    if let Some(last) = last {
        if last
            .files
            .iter()
            .all(|(path, stamp)| Stamp::of(path) == *stamp)
        {
            return last.definition.clone();
        }
    }
    let outer = LOOKED_AT.replace(Some(Vec::new()));
    let definition = parse();
    let files = LOOKED_AT.replace(outer).unwrap_or_default();
    let mut kept = kept();
    if kept.len() >= KEPT {
        kept.clear();
    }
    kept.insert(
        settings,
        Arc::new(Parsed {
            files,
            definition: definition.clone(),
        }),
    );
    definition
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn stack_in(dir: &Path) -> StackSummary {
        StackSummary {
            name: "kept".into(),
            project: "kept".into(),
            compose_file: dir.join("docker-compose.yml").display().to_string(),
            env_file: Some(dir.join("stack.env").display().to_string()),
            managed_edge: false,
            profiles: Vec::new(),
        }
    }

    /// Parses as the console does, counting the parses.
    fn read(stack: &StackSummary, parses: &AtomicUsize) -> Result<StackDefinition, String> {
        definition(stack, || {
            parses.fetch_add(1, Ordering::SeqCst);
            super::super::service::definition_with(stack, &[]).map_err(|error| error.to_string())
        })
    }

    fn image_of(definition: &StackDefinition, service: &str) -> String {
        definition.service(service).unwrap().image.clone().unwrap()
    }

    #[test]
    fn a_definition_is_parsed_again_only_when_a_file_it_read_changed() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write(
            "docker-compose.yml",
            "include:\n  - extra.yml\nservices:\n  web:\n    image: web:${TAG}\n    env_file: [web.env]\n    secrets: [token]\nsecrets:\n  token:\n    file: token.txt\n",
        );
        write("extra.yml", "services:\n  worker:\n    image: worker:1\n");
        write("stack.env", "TAG=1\n");
        write("web.env", "A=1\n");
        write("token.txt", "secret");
        let stack = stack_in(dir.path());
        let parses = AtomicUsize::new(0);

        let first = read(&stack, &parses).unwrap();
        assert_eq!(image_of(&first, "web"), "web:1");
        assert_eq!(image_of(&read(&stack, &parses).unwrap(), "web"), "web:1");
        assert_eq!(
            parses.load(Ordering::SeqCst),
            1,
            "unchanged files are not parsed again"
        );

        // Each file the parse read, changed at once (same second, same size where it can be).
        write("stack.env", "TAG=2\n");
        assert_eq!(image_of(&read(&stack, &parses).unwrap(), "web"), "web:2");
        write("extra.yml", "services:\n  worker:\n    image: worker:2\n");
        assert_eq!(
            image_of(&read(&stack, &parses).unwrap(), "worker"),
            "worker:2"
        );
        write(
            "docker-compose.yml",
            &std::fs::read_to_string(dir.path().join("docker-compose.yml"))
                .unwrap()
                .replace("web:${TAG}", "app:${TAG}"),
        );
        assert_eq!(image_of(&read(&stack, &parses).unwrap(), "web"), "app:2");
        write("web.env", "A=2\n");
        read(&stack, &parses).unwrap();
        assert_eq!(parses.load(Ordering::SeqCst), 5);

        // A file it looked for that went away, and came back: its error, then its definition.
        std::fs::remove_file(dir.path().join("token.txt")).unwrap();
        let error = read(&stack, &parses).unwrap_err();
        assert!(error.contains("token.txt"), "{error}");
        assert_eq!(read(&stack, &parses).unwrap_err(), error);
        assert_eq!(
            parses.load(Ordering::SeqCst),
            6,
            "an error is kept as long as its files"
        );
        write("token.txt", "secret");
        assert_eq!(image_of(&read(&stack, &parses).unwrap(), "web"), "app:2");

        // Other settings are another definition.
        let mut with_profile = stack.clone();
        with_profile.profiles = vec!["debug".into()];
        read(&with_profile, &parses).unwrap();
        assert_eq!(parses.load(Ordering::SeqCst), 8);
    }
}
