//! What a stack's lines must never show, and what its interpolation may read from the
//! process. Values are masked in every form a program is likely to print them in.

use std::path::Path;
use std::sync::OnceLock;

use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use super::compose::{env_file_entries, ComposeError};

/// Env-file values this long or longer are masked whatever their name: a URL with a
/// password in it, say. Shorter ones (a version, a port) stay readable.
pub const CREDENTIAL_LIKE: usize = 12;
/// Shorter values are never masked: masking "abc" everywhere would hide more than it protects.
const SHORTEST_MASKED: usize = 4;
const MASK: &str = "••••";

/// Names with "secret" must be at least this long; passwords, tokens and keys this.
const MIN_SECRET_CHARS: usize = 32;
const MIN_PASSWORD_CHARS: usize = 12;

/// Why a secret's value is too short for its name (never showing it); `None` when it is long
/// enough or the name is not a secret's.
pub fn too_short(name: &str, value: &str) -> Option<String> {
    if !is_secret_name(name) {
        return None;
    }
    let needed = if name.to_ascii_uppercase().contains("SECRET") {
        MIN_SECRET_CHARS
    } else {
        MIN_PASSWORD_CHARS
    };
    let length = value.chars().count();
    (length < needed).then(|| format!("{name} has {length} characters; it needs at least {needed}"))
}

/// Whether a variable's name says it holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    ["SECRET", "PASSWORD", "TOKEN", "KEY"]
        .iter()
        .any(|word| name.contains(word))
}

/// Values that must never be shown, longest first: every value of a variable whose name
/// says it is a secret (env files, the services' environment, build arguments and labels as
/// the resolved model has them — included and extended files too —, the process
/// environment), and every other env-file value long enough to be a credential; each also
/// URL-encoded, base64-encoded and JSON-escaped. Fails closed: an env file or a compose file
/// that cannot be read is an error, never a shorter list.
pub fn secret_values(
    compose_file: &Path,
    env_file: Option<&Path>,
) -> Result<Vec<String>, ComposeError> {
    let sources = super::compose::secret_sources(compose_file, env_file)?;
    // The stack's env file and every env file a service read, wherever its path led.
    let mut env_files: Vec<std::path::PathBuf> =
        env_file.map(Path::to_path_buf).into_iter().collect();
    env_files.extend(sources.env_files);
    env_files.sort();
    env_files.dedup();
    let mut entries = Vec::new();
    for path in &env_files {
        entries.extend(env_file_entries(path)?);
    }
    let from_env_file = entries
        .into_iter()
        .filter(|(name, value)| is_secret_name(name) || value.len() >= CREDENTIAL_LIKE)
        .map(|(_, value)| value);
    let from_compose = sources
        .values
        .into_iter()
        .filter(|(name, _)| is_secret_name(name))
        .map(|(_, value)| value);
    // The process variables a stack may read: the console's own settings are not its lines'.
    let from_process = process_variables()
        .into_iter()
        .filter(|(name, _)| is_secret_name(name))
        .map(|(_, value)| value);
    let mut values: Vec<String> = from_env_file
        .chain(from_compose)
        .chain(from_process)
        .filter(|value| value.len() >= SHORTEST_MASKED)
        .flat_map(|value| encoded_forms(&value))
        .collect();
    // Longest first, so that a secret containing another is masked whole.
    values.sort_by_key(|value| std::cmp::Reverse(value.len()));
    values.dedup();
    Ok(values)
}

/// The value as it is, URL-encoded (form and path style), base64 (standard and URL-safe,
/// padded or not) and JSON-escaped: the forms in which programs print credentials.
fn encoded_forms(value: &str) -> Vec<String> {
    let json = serde_json::to_string(value).unwrap_or_default();
    let base64_forms = [
        base64::engine::general_purpose::STANDARD.encode(value),
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(value),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value),
    ];
    let mut forms = vec![
        value.to_owned(),
        url::form_urlencoded::byte_serialize(value.as_bytes()).collect(),
        utf8_percent_encode(value, NON_ALPHANUMERIC).to_string(),
        json[1..json.len() - 1].to_owned(),
    ];
    forms.extend(base64_forms);
    forms.retain(|form| form.len() >= SHORTEST_MASKED);
    forms
}

/// `text` with every secret replaced by a mask.
pub fn redact(text: &str, secrets: &[String]) -> String {
    secrets.iter().fold(text.to_owned(), |text, secret| {
        text.replace(secret.as_str(), MASK)
    })
}

/// Which of the process's variables a stack's compose file may read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessVariables {
    /// The command line, as Compose: the invoking shell's variables override the env file,
    /// except the console's own settings.
    Shell,
    /// The console: only a short list of harmless variables; everything else comes from
    /// the env file.
    AllowList,
}

/// What the console process may pass to interpolation beside the env file.
pub const CONSOLE_ALLOW_LIST: [&str; 6] = ["HOME", "USER", "LOGNAME", "PWD", "HOSTNAME", "TZ"];

static PROCESS_VARIABLES: OnceLock<ProcessVariables> = OnceLock::new();

/// Said once by `slipway serve`: stacks it reads see only the allow-list of its variables.
pub fn read_process_variables(policy: ProcessVariables) {
    let _ = PROCESS_VARIABLES.set(policy);
}

/// The process's variables that interpolation may read under this process's policy.
pub fn process_variables() -> Vec<(String, String)> {
    let policy = PROCESS_VARIABLES
        .get()
        .copied()
        .unwrap_or(ProcessVariables::Shell);
    variables_under(policy, std::env::vars())
}

fn variables_under(
    policy: ProcessVariables,
    variables: impl Iterator<Item = (String, String)>,
) -> Vec<(String, String)> {
    variables
        .filter(|(name, _)| match policy {
            ProcessVariables::Shell => !is_console_setting(name),
            ProcessVariables::AllowList => CONSOLE_ALLOW_LIST.contains(&name.as_str()),
        })
        .collect()
}

/// The console's own configuration: never a stack's business.
fn is_console_setting(name: &str) -> bool {
    name == "DATABASE_URL" || name.starts_with("SLIPWAY_") || name == "RUST_LOG"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_longest_first() {
        let secrets = vec!["hunter2-long".to_owned(), "hunter2".to_owned()];
        assert_eq!(
            redact("pw=hunter2-long and hunter2", &secrets),
            "pw=•••• and ••••"
        );
        assert!(
            is_secret_name("jwt_secret") && is_secret_name("API_KEY") && !is_secret_name("PORT")
        );
    }

    #[test]
    fn a_file_that_does_not_read_yet_is_masked_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let compose = dir.path().join("docker-compose.yml");
        std::fs::write(
            &compose,
            "services:\n  web:\n    image: ${IMAGE:?set the image}\n    environment:\n      DB_PASSWORD: literal-secret-value\n      - API_TOKEN=another-literal-secret\n",
        )
        .unwrap();
        // Not YAML that reads (a list item among mapping entries): nothing could be masked.
        assert!(secret_values(&compose, None).is_err());
        std::fs::write(
            &compose,
            "services:\n  web:\n    image: ${IMAGE:?set the image}\n    environment:\n      DB_PASSWORD: literal-secret-value\n  api:\n    image: api\n    environment: [API_TOKEN=another-literal-secret]\n",
        )
        .unwrap();
        let secrets = secret_values(&compose, None).unwrap();
        for value in ["literal-secret-value", "another-literal-secret"] {
            assert!(
                secrets.iter().any(|secret| secret == value),
                "{value}: {secrets:?}"
            );
        }
    }

    #[test]
    fn what_included_and_extended_files_hold_is_masked_too() {
        let dir = tempfile::tempdir().unwrap();
        let (root, other) = (dir.path(), dir.path().join("other"));
        std::fs::create_dir(&other).unwrap();
        let compose = root.join("docker-compose.yml");
        std::fs::write(
            &compose,
            "include: [other/included.yml]\nservices:\n  web:\n    extends: { file: other/base.yml, service: base }\n",
        )
        .unwrap();
        std::fs::write(
            other.join("included.yml"),
            "services:\n  api:\n    image: api\n    env_file: api.env\n",
        )
        .unwrap();
        std::fs::write(
            other.join("api.env"),
            "DB_PASSWORD=included-env-file-secret\n",
        )
        .unwrap();
        std::fs::write(
            other.join("base.yml"),
            "services:\n  base:\n    image: b\n    environment: { API_TOKEN: extended-literal-secret }\n",
        )
        .unwrap();
        let secrets = secret_values(&compose, None).unwrap();
        for value in ["included-env-file-secret", "extended-literal-secret"] {
            assert!(
                secrets.iter().any(|secret| secret == value),
                "{value}: {secrets:?}"
            );
        }
    }

    #[test]
    fn every_encoded_form_of_a_secret_is_masked() {
        let dir = tempfile::tempdir().unwrap();
        let compose = dir.path().join("docker-compose.yml");
        std::fs::write(
            &compose,
            "services:\n  api:\n    image: api\n    environment:\n      API_TOKEN: \"t0k/en+with=signs\"\n      JWT_SECRET: ${JWT_SECRET}\n  worker:\n    image: w\n    environment: [\"DB_PASSWORD=pa ss\\\"word&more\", \"LEVEL=debug-level-long\"]\n",
        )
        .unwrap();
        let env = dir.path().join(".env");
        std::fs::write(&env, "JWT_SECRET=from-the-env-file-0123\n").unwrap();
        let secrets = secret_values(&compose, Some(&env)).unwrap();
        let printed = [
            "token t0k/en+with=signs",
            "url ?token=t0k%2Fen%2Bwith%3Dsigns",
            "form token=t0k%2Fen%2Bwith%3Dsigns&x=1",
            "json {\"password\":\"pa ss\\\"word&more\"}",
            "form pw=pa+ss%22word%26more",
            "basic cGEgc3Mid29yZCZtb3Jl",
            "jwt from-the-env-file-0123",
            "jwt64 ZnJvbS10aGUtZW52LWZpbGUtMDEyMw==",
        ];
        for line in printed {
            let masked = redact(line, &secrets);
            assert!(masked.contains(MASK), "{line} → {masked}");
            for leak in ["t0k", "pa ss", "pa+ss", "from-the", "cGEgc3M", "ZnJvbS1"] {
                assert!(!masked.contains(leak), "{line} → {masked}");
            }
        }
        // A literal under a name that is not secret-looking, and short enough, stays.
        assert_eq!(redact("LEVEL=debug", &secrets), "LEVEL=debug");

        // Files that cannot be read give no list at all rather than a shorter one.
        std::fs::write(&env, "JWT_SECRET=\"unclosed-0123456789\n").unwrap();
        assert!(secret_values(&compose, Some(&env)).is_err());
        std::fs::write(&env, "JWT_SECRET=fine-0123456789\n").unwrap();
        std::fs::write(&compose, "services: [unclosed\n").unwrap();
        assert!(secret_values(&compose, Some(&env)).is_err());
    }

    #[test]
    fn the_console_reads_only_its_allow_list_and_the_shell_never_the_consoles_settings() {
        let process = || {
            [
                ("HOME", "/root"),
                ("DATABASE_URL", "postgres://slipway:pw@db/slipway"),
                ("SLIPWAY_PUBLIC_URL", "https://slipway.example.com"),
                ("TAG", "1.2.3"),
            ]
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
        };
        let names = |policy| {
            variables_under(policy, process())
                .into_iter()
                .map(|(name, _)| name)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(ProcessVariables::AllowList), ["HOME"]);
        assert_eq!(names(ProcessVariables::Shell), ["HOME", "TAG"]);
    }
}
