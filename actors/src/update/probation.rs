//! Probation: a new version must prove itself, or the previous one comes back.
//!
//! After an update (there is a previous version to return to), `state.json`
//! holds a [`Probation`]. Three calls drive it:
//!
//! - [`InstallRoot::boot`] at every start of the service, **before** the
//!   new code runs: systemd's `ExecStartPre=psvc update boot --root R`, so
//!   that a version that crashes at start-up is counted too (the boot
//!   counter of A/B bootloaders, in a file). Past
//!   [`ProbationPolicy::max_boots`] starts, or when the health deadline has
//!   passed without a health report, `current` flips back to the previous
//!   version, which is what then starts.
//! - [`InstallRoot::healthy`] when the service reports healthy
//!   (`psvc update healthy`, or the Updater actor's `Healthy` message).
//! - [`InstallRoot::tick`] periodically: commits the version once it has
//!   been healthy for [`ProbationPolicy::period`], or rolls back when the
//!   health deadline passed.
//!
//! A rolled-back version is marked bad: [`check`](super::updater::check)
//! does not offer it again until a newer one appears.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::install::{InstallError, InstallRoot};

/// A version on probation (in `state.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probation {
    /// The new version.
    pub version: String,
    /// The version to return to.
    pub previous: String,
    /// When it was installed (RFC 3339).
    pub installed_at: String,
    /// Starts counted by [`InstallRoot::boot`].
    pub boots: u32,
    /// When it first reported healthy (RFC 3339).
    pub healthy_at: Option<String>,
}

/// How long and how often a new version may fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbationPolicy {
    /// Starts allowed during probation (a crash loop ends past it).
    pub max_boots: u32,
    /// The new version must report healthy within this of its install.
    pub health_deadline: Duration,
    /// Then stay up this long to be committed.
    pub period: Duration,
}

impl Default for ProbationPolicy {
    fn default() -> Self {
        ProbationPolicy {
            max_boots: 3,
            health_deadline: Duration::from_secs(120),
            period: Duration::from_secs(600),
        }
    }
}

/// What a probation step decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// No version on probation.
    Stable,
    /// Still on probation.
    OnProbation {
        /// The version.
        version: String,
        /// Starts so far.
        boots: u32,
        /// Whether it reported healthy.
        healthy: bool,
    },
    /// Healthy for the whole period: committed.
    Committed {
        /// The version.
        version: String,
    },
    /// Failed: `current` is the previous version again; the failed one is marked bad.
    RolledBack {
        /// The failed version.
        from: String,
        /// The version current again.
        to: String,
        /// Why.
        reason: String,
    },
}

fn since(at: &str) -> Option<Duration> {
    let at: jiff::Timestamp = at.parse().ok()?;
    let span = jiff::Timestamp::now().duration_since(at);
    Duration::try_from(span).ok()
}

impl InstallRoot {
    /// Puts `version` on probation, `previous` being the way back.
    ///
    /// # Errors
    /// The state cannot be written.
    pub fn start_probation(&self, version: &str, previous: &str) -> Result<(), InstallError> {
        let mut state = self.state();
        state.probation = Some(Probation {
            version: version.to_owned(),
            previous: previous.to_owned(),
            installed_at: jiff::Timestamp::now().to_string(),
            boots: 0,
            healthy_at: None,
        });
        self.save_state(&state)
    }

    /// Counts a start of the service; rolls back when the version on
    /// probation has started too often or missed its health deadline.
    ///
    /// # Errors
    /// A file operation failed.
    pub fn boot(&self, policy: &ProbationPolicy) -> Result<Verdict, InstallError> {
        let mut state = self.state();
        let Some(mut p) = state.probation.clone() else {
            return Ok(Verdict::Stable);
        };
        if self.current().as_deref() != Some(p.version.as_str()) {
            // Someone flipped by hand: the probation is moot.
            state.probation = None;
            self.save_state(&state)?;
            return Ok(Verdict::Stable);
        }
        p.boots += 1;
        if p.boots > policy.max_boots {
            let reason = format!("started {} times during probation", p.boots - 1);
            return self.fail(&p, &reason);
        }
        if p.healthy_at.is_none()
            && since(&p.installed_at).is_some_and(|d| d > policy.health_deadline)
        {
            let reason = format!("not healthy within {:?}", policy.health_deadline);
            return self.fail(&p, &reason);
        }
        state.probation = Some(p.clone());
        self.save_state(&state)?;
        Ok(Verdict::OnProbation {
            version: p.version,
            boots: p.boots,
            healthy: p.healthy_at.is_some(),
        })
    }

    /// Records that the current version reported healthy.
    ///
    /// # Errors
    /// The state cannot be written.
    pub fn healthy(&self) -> Result<Verdict, InstallError> {
        let mut state = self.state();
        let Some(p) = state.probation.as_mut() else {
            return Ok(Verdict::Stable);
        };
        if p.healthy_at.is_none() {
            p.healthy_at = Some(jiff::Timestamp::now().to_string());
        }
        let verdict = Verdict::OnProbation {
            version: p.version.clone(),
            boots: p.boots,
            healthy: true,
        };
        self.save_state(&state)?;
        Ok(verdict)
    }

    /// Commits a version healthy for the whole period, or rolls back one
    /// that missed its health deadline.
    ///
    /// # Errors
    /// A file operation failed.
    pub fn tick(&self, policy: &ProbationPolicy) -> Result<Verdict, InstallError> {
        let mut state = self.state();
        let Some(p) = state.probation.clone() else {
            return Ok(Verdict::Stable);
        };
        match &p.healthy_at {
            Some(at) if since(at).is_some_and(|d| d >= policy.period) => {
                state.probation = None;
                state.record(
                    "committed",
                    &p.version,
                    format!("healthy for {:?}", policy.period),
                );
                self.save_state(&state)?;
                Ok(Verdict::Committed { version: p.version })
            }
            None if since(&p.installed_at).is_some_and(|d| d > policy.health_deadline) => {
                let reason = format!("not healthy within {:?}", policy.health_deadline);
                self.fail(&p, &reason)
            }
            _ => Ok(Verdict::OnProbation {
                version: p.version.clone(),
                boots: p.boots,
                healthy: p.healthy_at.is_some(),
            }),
        }
    }

    fn fail(&self, p: &Probation, reason: &str) -> Result<Verdict, InstallError> {
        tracing::error!(version = %p.version, back_to = %p.previous, reason, "probation failed: rolling back");
        self.rollback(&p.previous, reason)?;
        self.mark_bad(&p.version, reason)?;
        let mut state = self.state();
        state.probation = None;
        self.save_state(&state)?;
        Ok(Verdict::RolledBack {
            from: p.version.clone(),
            to: p.previous.clone(),
            reason: reason.to_owned(),
        })
    }
}
