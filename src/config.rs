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

/// Who may use a service's system commands (`/sys/...`, see
/// [`ServiceContext::commander`](crate::ServiceContext::commander)).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SysAccess {
    /// Every client the server's authentication let in.
    All,
    /// Only requests that carry the admin token (`{"token": ...}` in the
    /// param; the token is read from `[PSVC] admin_token_file`).
    Admin,
    /// No system commands.
    Off,
}

/// An empty string reads as `None` (a key left blank in psvc.conf).
fn empty_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let text = String::deserialize(deserializer)?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(serde::de::Error::custom)
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
    /// Reload when the config file changes, as SIGHUP does.
    pub watch_config: bool,
    /// Who may use the system commands (`/sys/...`).
    pub sys_commands: SysAccess,
    /// The file holding the admin token (for `sys_commands = admin`).
    #[serde(deserialize_with = "empty_none")]
    pub admin_token_file: Option<PathBuf>,
    /// Where to serve the Prometheus scrape endpoint (`HOST:PORT`); off
    /// when empty.
    #[serde(deserialize_with = "empty_none")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// A loaded configuration: the typed `[PSVC]` section plus every other
/// section, readable as your own types with [`Config::section`].
#[derive(Clone, Debug)]
pub struct Config {
    /// The `[PSVC]` section.
    pub psvc: PsvcConfig,
    raw: config::Config,
    file: Option<PathBuf>,
    origins: Origins,
}

impl Config {
    /// The configuration with embedded defaults only (no file, no environment).
    pub fn defaults(name: &str) -> Result<Self, Error> {
        ConfigLoader::new(name)
            .no_file()
            .env_vars(Vec::<(String, String)>::new())
            .load()
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
        typed(&self.raw, &self.origins, key)
    }

    /// Where a key's value came from: the file path, `environment variable
    /// PSVC_…`, `code`, or `embedded defaults`.
    pub fn origin(&self, key: &str) -> String {
        self.origins.of(key)
    }
}

/// Deserializes `key` as `T`; errors name the origin, the full key and the value.
fn typed<T: DeserializeOwned>(
    raw: &config::Config,
    origins: &Origins,
    key: &str,
) -> Result<T, Error> {
    let value: Value = raw.get(key).map_err(|e| match e {
        config::ConfigError::NotFound(k) => Error::Missing(k),
        other => Error::Other(other.to_string()),
    })?;
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let mut reason = err.into_inner().to_string();
        let mut full = if path.is_empty() || path == "." {
            key.to_owned()
        } else {
            format!("{key}.{path}")
        };
        if let Some(field) = reason
            .strip_prefix("unknown field `")
            .and_then(|m| m.split('`').next())
        {
            full = format!("{key}.{field}");
            reason = "unknown key".to_owned();
        }
        Error::Invalid {
            origin: origins.of(&full),
            value: raw.get::<String>(&full).unwrap_or_default(),
            key: full,
            reason,
        }
    })
}

/// Which source set each key, for error messages.
#[derive(Clone, Debug, Default)]
struct Origins {
    /// (key, origin), highest precedence first.
    entries: Vec<(String, String)>,
}

impl Origins {
    fn of(&self, key: &str) -> String {
        self.entries
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map_or_else(|| "embedded defaults".to_owned(), |(_, o)| o.clone())
    }

    fn add_map(
        &mut self,
        prefix: &str,
        map: &Map<String, Value>,
        origin: &dyn Fn(&Value) -> String,
    ) {
        for (k, v) in map {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match &v.kind {
                ValueKind::Table(inner) => self.add_map(&key, inner, origin),
                _ => self.entries.push((key, origin(v))),
            }
        }
    }
}

/// Loads a [`Config`] from its sources.
#[derive(Clone, Debug)]
pub struct ConfigLoader {
    name: String,
    file: FileChoice,
    env: Option<Vec<(String, String)>>,
    /// (key, value, origin)
    overrides: Vec<(String, String, String)>,
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
        self.env = Some(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// Overrides a key from code (highest precedence), like
    /// `set("PSVC.log_level", "debug")` or `set("device.port", "7")`.
    pub fn set(self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.set_from("code", key, value)
    }

    /// Like [`ConfigLoader::set`], naming where the value came from (for
    /// error messages), e.g. `"command line"`.
    pub fn set_from(
        mut self,
        origin: impl Into<String>,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.overrides
            .push((key.into(), value.into(), origin.into()));
        self
    }

    fn env(&self) -> Vec<(String, String)> {
        match &self.env {
            Some(vars) => vars.clone(),
            None => std::env::vars()
                .filter(|(k, _)| k.starts_with("PSVC_"))
                .collect(),
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
        let mut origins = Origins::default();
        for (key, _, origin) in self.overrides.iter().rev() {
            origins.entries.push((key.clone(), origin.clone()));
        }
        let env_source = EnvSource { vars: env };
        let env_map = env_source
            .collect()
            .map_err(|e| Error::Other(e.to_string()))?;
        origins.add_map("", &env_map, &|v| {
            v.origin().unwrap_or("environment").to_owned()
        });
        if let Some((path, _)) = &file {
            let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
            let format = match path.extension().and_then(|e| e.to_str()) {
                Some("toml") => FileFormat::Toml,
                _ => FileFormat::Ini,
            };
            let source = Tagged {
                origin: path.display().to_string(),
                text,
                format,
            };
            let map = source
                .collect()
                .map_err(|e| explain_build(e, file.as_ref()))?;
            origins.add_map("", &map, &|_| path.display().to_string());
            builder = builder.add_source(source);
        }
        builder = builder.add_source(env_source);
        for (key, value, _) in &self.overrides {
            builder = builder
                .set_override(key.as_str(), value.as_str())
                .map_err(|e| Error::Other(e.to_string()))?;
        }
        let raw = builder
            .build()
            .map_err(|e| explain_build(e, file.as_ref()))?;
        let psvc: PsvcConfig = typed(&raw, &origins, SECTION)?;
        validate(&raw, &origins, &psvc)?;
        Ok(Config {
            psvc,
            raw,
            file: file.map(|(p, _)| p),
            origins,
        })
    }
}

fn validate(raw: &config::Config, origins: &Origins, psvc: &PsvcConfig) -> Result<(), Error> {
    let invalid = |key: &str, reason: String| {
        let key = format!("{SECTION}.{key}");
        Error::Invalid {
            origin: origins.of(&key),
            value: raw.get::<String>(&key).unwrap_or_default(),
            key,
            reason,
        }
    };
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&psvc.log_level) {
        return Err(invalid("log_level", e.to_string()));
    }
    if psvc.name.trim().is_empty()
        || psvc
            .name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
    {
        return Err(invalid(
            "name",
            "must be non-empty and contain no path separators".into(),
        ));
    }
    Ok(())
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
            out.insert(
                SECTION.to_owned(),
                Value::new(Some(&env), ValueKind::Table(psvc)),
            );
        }
        for (section, table) in sections {
            out.insert(section, Value::new(Some(&env), ValueKind::Table(table)));
        }
        Ok(out)
    }
}
