//! Stacks' compose files as parsed, kept while every file the parse read has the same
//! content and every file it looked for is still there or still absent. A stack's page needs
//! its definition in most of its sections, and parsing the YAML was a quarter of the
//! console's time with fifty people on the page; checking a kept parse (reading a few small
//! files and hashing them) took a tenth of that in the same profile. The content compared is
//! the very text the parse read, so an edit is seen by the next read whatever the file
//! system's clock.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use sha2::{Digest, Sha256};

use super::compose::StackDefinition;
use super::StackSummary;

/// What the parse saw of one file.
#[derive(Clone, Debug)]
enum Seen {
    /// The text it read, hashed.
    Content([u8; 32]),
    /// The answer of a check (`Path::is_file`, `Path::exists`) the parse made.
    Checked(fn(&Path) -> bool, bool),
}

impl Seen {
    fn content(text: &str) -> Self {
        Self::Content(hash(text))
    }

    /// Whether `path` shows the same now.
    fn still(&self, path: &Path) -> bool {
        match self {
            Self::Content(seen) => {
                super::compose::read_bounded(path).is_ok_and(|text| hash(&text) == *seen)
            }
            Self::Checked(check, answer) => check(path) == *answer,
        }
    }
}

/// The files one parse has seen so far; `None` once a read failed (an error the next read
/// may not repeat: such a parse is not kept).
type Recording = Option<Vec<(PathBuf, Seen)>>;

fn hash(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

thread_local! {
    /// The recording of the parse running on this thread (the parse is synchronous).
    static RECORDING: RefCell<Option<Recording>> = const { RefCell::new(None) };
}

fn record(seen: impl FnOnce() -> Option<(PathBuf, Seen)>) {
    RECORDING.with_borrow_mut(|recording| {
        if let Some(recording) = recording {
            match seen() {
                Some(file) => {
                    if let Some(files) = recording {
                        files.push(file);
                    }
                }
                None => *recording = None,
            }
        }
    });
}

/// Says that the parse running on this thread read `text` from `path` (the compose module
/// calls it for the compose and env files, included files and the services' env files).
pub(super) fn read(path: &Path, text: &str) {
    record(|| Some((path.to_path_buf(), Seen::content(text))));
}

/// Says that the parse running on this thread failed to read a file.
pub(super) fn unreadable() {
    record(|| None);
}

/// `check(path)`, remembered by the parse running on this thread (whether the secrets' and
/// configs' sources, optional env files and included folders' `.env` are there).
pub(super) fn check(check: fn(&Path) -> bool, path: &Path) -> bool {
    let answer = check(path);
    record(|| Some((path.to_path_buf(), Seen::Checked(check, answer))));
    answer
}

/// Records the files a parse sees on this thread while it lives. When it ends, even by a
/// panic, the recording of an enclosing parse is put back, with what this one saw added.
struct Recorder {
    outer: Option<Option<Recording>>,
}

impl Recorder {
    fn start() -> Self {
        Self {
            outer: Some(RECORDING.replace(Some(Some(Vec::new())))),
        }
    }

    /// The files seen, or `None` when the parse cannot be kept.
    fn finish(mut self) -> Recording {
        self.end()
    }

    fn end(&mut self) -> Recording {
        let outer = self.outer.take()?;
        let seen = RECORDING.replace(outer).flatten();
        RECORDING.with_borrow_mut(|enclosing| {
            if let Some(enclosing) = enclosing {
                match (enclosing.as_mut(), &seen) {
                    (Some(files), Some(seen)) => files.extend(seen.iter().cloned()),
                    (Some(_), None) => *enclosing = None,
                    (None, _) => {}
                }
            }
        });
        seen
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.end();
    }
}

/// A parse and the files it saw.
struct Parsed {
    files: Vec<(PathBuf, Seen)>,
    definition: Result<StackDefinition, String>,
}

/// What a stack's definition depends on besides its files. The process's variables that
/// interpolation may read, and `HOME`, are set before the console opens its store and never
/// change while it runs (every CLI command is a process of its own).
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

/// The stack's definition as `parse` gives it, from the last parse when every file it saw
/// shows the same (its error too, unless a read failed: a file that is fixed is a changed
/// file).
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
        if last.files.iter().all(|(path, seen)| seen.still(path)) {
            // A parse that encloses this one depends on these files too.
            for file in &last.files {
                record(|| Some(file.clone()));
            }
            return last.definition.clone();
        }
    }
    let recorder = Recorder::start();
    let definition = parse();
    let Some(files) = recorder.finish() else {
        kept().remove(&settings);
        return definition;
    };
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

    /// A stack whose files are in a folder of its own (the kept parses are the process's).
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
    fn load(stack: &StackSummary, parses: &AtomicUsize) -> Result<StackDefinition, String> {
        definition(stack, || {
            parses.fetch_add(1, Ordering::SeqCst);
            super::super::service::definition_with(stack, &[]).map_err(|error| error.to_string())
        })
    }

    fn image_of(definition: &StackDefinition, service: &str) -> String {
        definition.service(service).unwrap().image.clone().unwrap()
    }

    fn environment_of(definition: &StackDefinition, service: &str) -> String {
        format!(
            "{:?}",
            definition.service(service).unwrap().compose.environment
        )
    }

    #[test]
    fn a_definition_is_parsed_again_only_when_a_file_it_saw_differs() {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        let write = |name: &str, text: &str| std::fs::write(path(name), text).unwrap();
        std::fs::create_dir(path("extra")).unwrap();
        write(
            "docker-compose.yml",
            "include:\n  - extra/worker.yml\nservices:\n  web:\n    image: web:${TAG}\n    env_file:\n      - web.env\n      - path: optional.env\n        required: false\n    secrets: [token]\nsecrets:\n  token:\n    file: token.txt\n",
        );
        write(
            "extra/worker.yml",
            "services:\n  worker:\n    image: worker:1\n",
        );
        write("stack.env", "TAG=1\n");
        write("web.env", "A=1\n");
        write("token.txt", "secret");
        let stack = stack_in(dir.path());
        let parses = AtomicUsize::new(0);
        let count = || parses.load(Ordering::SeqCst);

        assert_eq!(image_of(&load(&stack, &parses).unwrap(), "web"), "web:1");
        assert_eq!(image_of(&load(&stack, &parses).unwrap(), "web"), "web:1");
        assert_eq!(count(), 1, "files that show the same are not parsed again");

        // Each file the parse read, rewritten at once with text of the same length: what
        // differs is the text, never the size, and perhaps not the file system's clock.
        write("stack.env", "TAG=2\n");
        assert_eq!(image_of(&load(&stack, &parses).unwrap(), "web"), "web:2");
        write(
            "extra/worker.yml",
            "services:\n  worker:\n    image: worker:2\n",
        );
        assert_eq!(
            image_of(&load(&stack, &parses).unwrap(), "worker"),
            "worker:2"
        );
        let compose = std::fs::read_to_string(path("docker-compose.yml")).unwrap();
        write(
            "docker-compose.yml",
            &compose.replace("web:${TAG}", "app:${TAG}"),
        );
        assert_eq!(image_of(&load(&stack, &parses).unwrap(), "web"), "app:2");
        write("web.env", "A=2\n");
        assert!(environment_of(&load(&stack, &parses).unwrap(), "web").contains("\"2\""));
        assert_eq!(count(), 5);

        // Files it looked for: an optional env file that appears, a secret's source that goes.
        write("optional.env", "B=3\n");
        assert!(environment_of(&load(&stack, &parses).unwrap(), "web").contains("\"3\""));
        std::fs::remove_file(path("token.txt")).unwrap();
        let error = load(&stack, &parses).unwrap_err();
        assert!(error.contains("token.txt"), "{error}");
        assert_eq!(load(&stack, &parses).unwrap_err(), error);
        assert_eq!(
            count(),
            7,
            "an error is kept as long as the files that made it"
        );
        write("token.txt", "secret");
        assert_eq!(image_of(&load(&stack, &parses).unwrap(), "web"), "app:2");
        // An included file's folder that gets a .env, which Compose would read for it.
        write("extra/.env", "TAG=9\n");
        let error = load(&stack, &parses).unwrap_err();
        assert!(error.contains(".env"), "{error}");
        std::fs::remove_file(path("extra/.env")).unwrap();
        load(&stack, &parses).unwrap();
        assert_eq!(count(), 10);

        // A file that could not be read: the error is not kept, the next read tries again.
        std::fs::remove_file(path("stack.env")).unwrap();
        load(&stack, &parses).unwrap_err();
        load(&stack, &parses).unwrap_err();
        assert_eq!(count(), 12);
        write("stack.env", "TAG=2\n");
        load(&stack, &parses).unwrap();

        // Other settings are another definition.
        let mut with_profile = stack.clone();
        with_profile.profiles = vec!["debug".into()];
        load(&with_profile, &parses).unwrap();
        assert_eq!(count(), 14);
    }

    #[test]
    fn a_parse_that_panics_leaves_no_recording_behind() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("docker-compose.yml"), "services: {}\n").unwrap();
        let seen = dir.path().join("seen");
        std::fs::write(&seen, "text").unwrap();
        let stack = stack_in(dir.path());
        let panicked = std::panic::catch_unwind(|| {
            definition(&stack, || {
                super::read(&seen, "text");
                panic!("a parse that fails");
            })
        });
        assert!(panicked.is_err());
        RECORDING.with_borrow(|recording| assert!(recording.is_none()));
        // Nor does one that ends; an enclosing parse gets what a parse inside it saw ...
        let outer = Recorder::start();
        definition(&stack, || {
            super::read(&seen, "text");
            Err("refused".into())
        })
        .unwrap_err();
        assert_eq!(outer.finish().unwrap().len(), 1);
        RECORDING.with_borrow(|recording| assert!(recording.is_none()));
        // ... and what the kept parse saw, when it is not parsed again.
        let outer = Recorder::start();
        definition(&stack, || panic!("parsed again")).unwrap_err();
        assert_eq!(outer.finish().unwrap().len(), 1);
    }
}
