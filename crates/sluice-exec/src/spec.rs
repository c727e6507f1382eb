//! A connection's command settings resolved for one run: the command line, the secrets read
//! from where the gateway holds them, and the limits.

use sluice_core::{CommandOptions, InjectedSecret, Secret};
use std::time::Duration;

/// Longest run when the connection sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Most output when the connection sets none.
pub const DEFAULT_MAX_OUTPUT: u64 = 64 * 1024 * 1024;
/// Largest stdin when the connection sets none.
pub const DEFAULT_MAX_INPUT: u64 = 16 * 1024 * 1024;

/// Why a run could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The connection is not a command connection.
    #[error("connection {0:?} is not a command connection")]
    NotCommand(String),
    /// The client passed arguments the connection does not take.
    #[error("connection {0:?} does not take arguments from clients")]
    ArgsNotAllowed(String),
    /// A secret could not be read (the message names where from, never the value).
    #[error("secret {env} is unavailable: {reason}")]
    Secret {
        /// The variable it was for.
        env: String,
        /// What is missing.
        reason: String,
    },
}

/// A secret to inject, with its value.
pub struct Injected {
    /// The variable the program sees.
    pub env: String,
    /// The value.
    pub value: Secret<String>,
}

/// One run, ready to start.
pub struct RunSpec {
    /// Program.
    pub program: String,
    /// Arguments: the connection's, then the client's.
    pub args: Vec<String>,
    /// Plain environment variables.
    pub env: Vec<(String, String)>,
    /// Secrets passed as environment variables.
    pub secrets: Vec<Injected>,
    /// Secrets passed as files (the variable holds the path).
    pub files: Vec<Injected>,
    /// Working directory; `None` runs in a new empty directory.
    pub workdir: Option<String>,
    /// Longest run.
    pub timeout: Duration,
    /// Most output.
    pub max_output: u64,
}

impl RunSpec {
    /// Resolves `options` of connection `name` for a run with the client's `client_args`.
    pub fn resolve(
        name: &str,
        options: Option<&CommandOptions>,
        client_args: Vec<String>,
    ) -> Result<RunSpec, SpecError> {
        let Some(o) = options else {
            return Err(SpecError::NotCommand(name.to_string()));
        };
        if !client_args.is_empty() && !o.client_args {
            return Err(SpecError::ArgsNotAllowed(name.to_string()));
        }
        let mut args = o.args.clone();
        args.extend(client_args);
        Ok(RunSpec {
            program: o.program.clone(),
            args,
            env: o.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            secrets: o
                .secrets
                .iter()
                .map(|s| read_secret(s, true))
                .collect::<Result<_, _>>()?,
            files: o
                .files
                .iter()
                .map(|s| read_secret(s, false))
                .collect::<Result<_, _>>()?,
            workdir: o.workdir.clone(),
            timeout: o
                .timeout
                .as_deref()
                .and_then(sluice_policy::parse_duration)
                .unwrap_or(DEFAULT_TIMEOUT),
            max_output: o.max_output.unwrap_or(DEFAULT_MAX_OUTPUT),
        })
    }

    /// The command line as a person would type it (arguments quoted where needed).
    pub fn command_line(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|w| quote(w))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Where the run happens, as the recording's target: `bash on the gateway host`,
    /// `bash via agent edge`.
    pub fn runs_on(&self, via: Option<&str>) -> String {
        match via {
            Some(agent) => format!("{} via agent {agent}", self.program),
            None => format!("{} on the gateway host", self.program),
        }
    }

    /// Every injected secret value, and every line of multi-line ones (a key file printed
    /// line by line): what the output must never show.
    pub fn secret_values(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in self.secrets.iter().chain(&self.files) {
            let v = s.value.expose().trim_end_matches(['\r', '\n']);
            if v.is_empty() {
                continue;
            }
            out.push(v.to_string());
            if v.contains('\n') {
                out.extend(
                    v.lines()
                        .map(str::trim)
                        .filter(|l| l.len() >= 8)
                        .map(str::to_string),
                );
            }
        }
        out
    }
}

/// The largest stdin `options` accept.
pub fn max_input(options: Option<&CommandOptions>) -> u64 {
    options
        .and_then(|o| o.max_input)
        .unwrap_or(DEFAULT_MAX_INPUT)
}

/// Reads one secret from the gateway's environment or a file. A value for a variable
/// (`trim`) loses the line break a file ends with; a file's content is kept as it is.
fn read_secret(s: &InjectedSecret, trim: bool) -> Result<Injected, SpecError> {
    let fail = |reason: String| SpecError::Secret {
        env: s.env.clone(),
        reason,
    };
    let value = match (&s.from_env, &s.from_file) {
        (Some(var), _) => std::env::var(var).map_err(|_| {
            fail(format!(
                "the gateway's environment variable {var} is not set"
            ))
        })?,
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| fail(format!("cannot read {path}: {}", e.kind())))?,
        (None, None) => return Err(fail("no source configured".into())),
    };
    let value = match trim {
        true => value.trim_end_matches(['\r', '\n']).to_string(),
        false => value,
    };
    Ok(Injected {
        env: s.env.clone(),
        value: Secret::new(value),
    })
}

/// `word` quoted for a POSIX shell when it needs quoting.
fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_quotes_what_a_shell_would_split() {
        let spec = RunSpec {
            program: "bash".into(),
            args: vec!["-c".into(), "echo it's here".into()],
            env: Vec::new(),
            secrets: Vec::new(),
            files: Vec::new(),
            workdir: None,
            timeout: DEFAULT_TIMEOUT,
            max_output: DEFAULT_MAX_OUTPUT,
        };
        assert_eq!(spec.command_line(), r"bash -c 'echo it'\''s here'");
    }

    #[test]
    fn client_args_need_the_connection_to_take_them() {
        let o = CommandOptions {
            program: "deploy".into(),
            ..CommandOptions::default()
        };
        let refused = RunSpec::resolve("d", Some(&o), vec!["prod".into()]);
        assert!(matches!(refused, Err(SpecError::ArgsNotAllowed(_))));
        let o = CommandOptions {
            client_args: true,
            args: vec!["--verbose".into()],
            ..o
        };
        let spec = RunSpec::resolve("d", Some(&o), vec!["prod".into()]);
        assert!(matches!(spec, Ok(s) if s.args == ["--verbose", "prod"]));
    }

    #[test]
    fn a_missing_secret_names_its_source_not_a_value() {
        let o = CommandOptions {
            program: "psql".into(),
            secrets: vec![InjectedSecret {
                env: "PGPASSWORD".into(),
                from_env: Some("SLUICE_TEST_SURELY_UNSET_VAR".into()),
                from_file: None,
            }],
            ..CommandOptions::default()
        };
        let err = RunSpec::resolve("p", Some(&o), Vec::new()).err();
        assert_eq!(
            err.map(|e| e.to_string()),
            Some("secret PGPASSWORD is unavailable: the gateway's environment variable SLUICE_TEST_SURELY_UNSET_VAR is not set".into())
        );
    }
}
