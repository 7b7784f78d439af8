//! Configuration: `psvc.conf` (INI, section `[PSVC]`) or TOML, over embedded
//! defaults, under `PSVC_*` environment variables and code overrides.
//!
//! Precedence, lowest first: embedded defaults ([`DEFAULTS`]) < the config
//! file < environment < code ([`ConfigLoader::set`]). No file is needed to
//! start. The file is only ever read, never written.
//!
//! Environment variables: `PSVC_<KEY>` sets `[PSVC] <key>` (for example
//! `PSVC_LOG_LEVEL=debug`); `PSVC_<SECTION>__<KEY>` sets `<key>` in the
//! user section `[<section>]` (lower-cased). `PSVC_CONFIG` names the file.
//!
//! Errors name the file (or variable), the key and the value.

use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{FileFormat, Map, Source, Value, ValueKind};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The embedded defaults, in `psvc.conf` syntax (print them to start a file).
pub const DEFAULTS: &str = include_str!("config/defaults.conf");

/// The name of the `[PSVC]` section.
pub const SECTION: &str = "PSVC";

/// A configuration error that says where and what.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The config file could not be read.
    #[error("config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid INI/TOML.
    #[error("config file {path} could not be parsed: {reason}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message.
        reason: String,
    },
    /// A key has a value that is not allowed.
    #[error("config {origin}: key `{key}` has invalid value {value:?}: {reason}")]
    Invalid {
        /// Where the value came from: a file path, an environment variable, or `code`.
        origin: String,
        /// The full key, like `PSVC.log_level`.
        key: String,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A key that must be present is missing.
    #[error("config: key `{0}` is missing")]
    Missing(String),
    /// Any other error from the config library.
    #[error("config: {0}")]
    Other(String),
}

/// How often the log file rotates.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogRotation {
    /// One file, `<log_dir>/<name>.log`.
    Never,
    /// A new file every minute (`<name>.<date-time>.log`).
    Minutely,
    /// A new file every hour.
    Hourly,
    /// A new file every day (`<name>.<date>.log`).
    Daily,
}

/// The `[PSVC]` section, typed.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PsvcConfig {
    /// Service name (log file name, server info). Defaults to the name given
    /// to [`ServiceSystem::new`](crate::ServiceSystem::new).
    pub name: String,
    /// Service version.
    pub version: semver::Version,
    /// Where releases are built.
    pub release_path: PathBuf,
    /// Where updates are downloaded.
    pub update_path: PathBuf,
    /// Log filter directives.
    pub log_level: String,
    /// Log file directory.
    pub log_dir: PathBuf,
    /// Log to the console (stderr).
    pub log_console: bool,
    /// Log to `<log_dir>/<name>.log`.
    pub log_file: bool,
    /// Log file rotation.
    pub log_rotation: LogRotation,
    /// Rotated log files kept (0 = all).
    pub log_max_files: usize,
    /// Graceful shutdown deadline.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
}

/// A loaded configuration: the typed `[PSVC]` section plus every other
/// section, readable as your own types with [`Config::section`].
#[derive(Clone, Debug)]
pub struct Config {
    /// The `[PSVC]` section.
    pub psvc: PsvcConfig,
    raw: config::Config,
    file: Option<PathBuf>,
}

impl Config {
    /// The configuration with embedded defaults only (no file, no environment).
    pub fn defaults(name: &str) -> Result<Self, Error> {
        ConfigLoader::new(name).no_file().env_vars(Vec::<(String, String)>::new()).load()
    }

    /// The file this configuration was read from, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// A user section (`[name]`) as your own type. Errors name the key and value.
    pub fn section<T: DeserializeOwned>(&self, name: &str) -> Result<T, Error> {
        self.get(name)
    }

    /// Any key (dotted path, like `device.port`) as your own type.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T, Error> {
        self.raw.get::<T>(key).map_err(|e| explain(&self.raw, e, key))
    }
}

/// Loads a [`Config`] from its sources.
#[derive(Clone, Debug)]
pub struct ConfigLoader {
    name: String,
    file: FileChoice,
    env: Option<Vec<(String, String)>>,
    overrides: Vec<(String, String)>,
}

#[derive(Clone, Debug)]
enum FileChoice {
    /// `PSVC_CONFIG`, else `./psvc.conf`, else `./psvc.toml`, else none.
    Search,
    /// This file, which must exist.
    Path(PathBuf),
    /// No file.
    None,
}

impl ConfigLoader {
    /// A loader for the service `name`, searching for `psvc.conf` / `psvc.toml`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            file: FileChoice::Search,
            env: None,
            overrides: Vec::new(),
        }
    }

    /// Reads this file (INI, or TOML when it ends in `.toml`); it must exist.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = FileChoice::Path(path.into());
        self
    }

    /// Reads no file at all.
    pub fn no_file(mut self) -> Self {
        self.file = FileChoice::None;
        self
    }

    /// Takes environment variables from `vars` instead of the process
    /// environment (for tests and embedding).
    pub fn env_vars<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.env = Some(vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect());
        self
    }

    /// Overrides a key from code (highest precedence), like
    /// `set("PSVC.log_level", "debug")` or `set("device.port", "7")`.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.overrides.push((key.into(), value.into()));
        self
    }

    fn env(&self) -> Vec<(String, String)> {
        match &self.env {
            Some(vars) => vars.clone(),
            None => std::env::vars().filter(|(k, _)| k.starts_with("PSVC_")).collect(),
        }
    }

    fn chosen_file(&self, env: &[(String, String)]) -> Option<(PathBuf, bool)> {
        match &self.file {
            FileChoice::Path(p) => Some((p.clone(), true)),
            FileChoice::None => None,
            FileChoice::Search => {
                if let Some((_, p)) = env.iter().find(|(k, _)| k == "PSVC_CONFIG") {
                    return Some((PathBuf::from(p), true));
                }
                ["psvc.conf", "psvc.toml"]
                    .iter()
                    .map(PathBuf::from)
                    .find(|p| p.is_file())
                    .map(|p| (p, false))
            }
        }
    }

    /// Loads and validates the configuration.
    pub fn load(&self) -> Result<Config, Error> {
        let env = self.env();
        let file = self.chosen_file(&env);
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, FileFormat::Ini))
            .set_default(format!("{SECTION}.name"), self.name.clone())
            .map_err(|e| Error::Other(e.to_string()))?;
        if let Some((path, _)) = &file {
            let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
            let format = match path.extension().and_then(|e| e.to_str()) {
                Some("toml") => FileFormat::Toml,
                _ => FileFormat::Ini,
            };
            builder = builder.add_source(Tagged {
                origin: path.display().to_string(),
                text,
                format,
            });
        }
        builder = builder.add_source(EnvSource { vars: env });
        for (key, value) in &self.overrides {
            builder = builder
                .set_override(key.as_str(), value.as_str())
                .map_err(|e| Error::Other(e.to_string()))?;
        }
        let raw = builder.build().map_err(|e| explain_build(e, file.as_ref()))?;
        let psvc: PsvcConfig = raw
            .get(SECTION)
            .map_err(|e| explain(&raw, e, SECTION))?;
        validate(&raw, &psvc)?;
        Ok(Config {
            psvc,
            raw,
            file: file.map(|(p, _)| p),
        })
    }
}

fn validate(raw: &config::Config, psvc: &PsvcConfig) -> Result<(), Error> {
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&psvc.log_level) {
        return Err(invalid(raw, &format!("{SECTION}.log_level"), e.to_string()));
    }
    if psvc.name.trim().is_empty()
        || psvc
            .name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
    {
        return Err(invalid(
            raw,
            &format!("{SECTION}.name"),
            "must be non-empty and contain no path separators".into(),
        ));
    }
    Ok(())
}

fn origin_and_value(raw: &config::Config, key: &str) -> (String, String) {
    match raw.get::<Value>(key) {
        Ok(v) => (
            v.origin().unwrap_or("code").to_owned(),
            match &v.kind {
                ValueKind::Table(_) | ValueKind::Array(_) => format!("{v:?}"),
                _ => v.to_string(),
            },
        ),
        Err(_) => ("(unknown source)".to_owned(), String::new()),
    }
}

fn invalid(raw: &config::Config, key: &str, reason: String) -> Error {
    let (origin, value) = origin_and_value(raw, key);
    Error::Invalid {
        origin,
        key: key.to_owned(),
        value,
        reason,
    }
}

/// Turns a config-library error for `key` into an [`Error`] naming origin, key and value.
fn explain(raw: &config::Config, err: config::ConfigError, key: &str) -> Error {
    use config::ConfigError as E;
    match err {
        E::NotFound(k) => Error::Missing(k),
        E::Type {
            key: Some(k),
            expected,
            unexpected,
            ..
        } => {
            let full = qualify(key, &k);
            let (origin, _) = origin_and_value(raw, &full);
            Error::Invalid {
                origin,
                key: full,
                value: unexpected.to_string(),
                reason: format!("expected {expected}"),
            }
        }
        E::At {
            error, key: Some(k), ..
        } => {
            let full = qualify(key, &k);
            invalid(raw, &full, error.to_string())
        }
        E::Message(msg) => {
            // serde messages for unknown fields name the field but not the path
            if let Some(field) = msg
                .strip_prefix("unknown field `")
                .and_then(|m| m.split('`').next())
            {
                let full = qualify(key, field);
                return invalid(raw, &full, "unknown key".into());
            }
            Error::Other(format!("{msg} (in `{key}`)"))
        }
        other => Error::Other(other.to_string()),
    }
}

fn qualify(prefix: &str, key: &str) -> String {
    if key == prefix || key.starts_with(&format!("{prefix}.")) {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn explain_build(err: config::ConfigError, file: Option<&(PathBuf, bool)>) -> Error {
    match err {
        config::ConfigError::FileParse { uri, cause } => Error::Parse {
            path: uri
                .or_else(|| file.map(|(p, _)| p.display().to_string()))
                .unwrap_or_default(),
            reason: cause.to_string(),
        },
        other => Error::Other(other.to_string()),
    }
}

/// A file source whose values carry the file path as their origin.
#[derive(Clone, Debug)]
struct Tagged {
    origin: String,
    text: String,
    format: FileFormat,
}

impl Source for Tagged {
    fn clone_into_box(&self) -> Box<dyn Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<Map<String, Value>, config::ConfigError> {
        config::Format::parse(&self.format, Some(&self.origin), &self.text).map_err(|cause| {
            config::ConfigError::FileParse {
                uri: Some(self.origin.clone()),
                cause,
            }
        })
    }
}

/// `PSVC_*` environment variables as a source (see the module docs).
#[derive(Clone, Debug)]
struct EnvSource {
    vars: Vec<(String, String)>,
}

impl Source for EnvSource {
    fn clone_into_box(&self) -> Box<dyn Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<Map<String, Value>, config::ConfigError> {
        let mut psvc: Map<String, Value> = Map::new();
        let mut sections: Map<String, Map<String, Value>> = Map::new();
        for (name, value) in &self.vars {
            let Some(rest) = name.strip_prefix("PSVC_") else {
                continue;
            };
            if rest == "CONFIG" || rest.is_empty() {
                continue;
            }
            let origin = format!("environment variable {name}");
            let v = Value::new(Some(&origin), ValueKind::String(value.clone()));
            match rest.split_once("__") {
                Some((section, key)) => {
                    sections
                        .entry(section.to_lowercase())
                        .or_default()
                        .insert(key.to_lowercase(), v);
                }
                None => {
                    psvc.insert(rest.to_lowercase(), v);
                }
            }
        }
        let mut out: Map<String, Value> = Map::new();
        let env = "environment".to_owned();
        if !psvc.is_empty() {
            out.insert(SECTION.to_owned(), Value::new(Some(&env), ValueKind::Table(psvc)));
        }
        for (section, table) in sections {
            out.insert(section, Value::new(Some(&env), ValueKind::Table(table)));
        }
        Ok(out)
    }
}
