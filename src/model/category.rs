//! Who may apply to connect a mail system: the categories the rules admit.

use serde::{Deserialize, Serialize};

/// Who may apply: the categories the gateway's rules admit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicantCategory {
    /// A state body.
    StateBody,
    /// A local government body.
    LocalGovernment,
    /// A state legal entity.
    StateLegalEntity,
    /// A quasi-public sector entity.
    QuasiPublic,
    /// An owner of critical information infrastructure.
    CriticalInfrastructure,
}

impl ApplicantCategory {
    /// Every category, in the order the rules list them.
    pub const ALL: [ApplicantCategory; 5] = [
        ApplicantCategory::StateBody,
        ApplicantCategory::LocalGovernment,
        ApplicantCategory::StateLegalEntity,
        ApplicantCategory::QuasiPublic,
        ApplicantCategory::CriticalInfrastructure,
    ];

    /// The API name (`state_body`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ApplicantCategory::StateBody => "state_body",
            ApplicantCategory::LocalGovernment => "local_government",
            ApplicantCategory::StateLegalEntity => "state_legal_entity",
            ApplicantCategory::QuasiPublic => "quasi_public",
            ApplicantCategory::CriticalInfrastructure => "critical_infrastructure",
        }
    }

    /// How notices and listings name it.
    pub fn description(self) -> &'static str {
        match self {
            ApplicantCategory::StateBody => "state body",
            ApplicantCategory::LocalGovernment => "local government body",
            ApplicantCategory::StateLegalEntity => "state legal entity",
            ApplicantCategory::QuasiPublic => "quasi-public sector entity",
            ApplicantCategory::CriticalInfrastructure => {
                "owner of critical information infrastructure"
            }
        }
    }
}

impl std::fmt::Display for ApplicantCategory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ApplicantCategory {
    type Err = String;
    /// Accepts `state_body` and `state-body`, in any case.
    fn from_str(s: &str) -> Result<Self, String> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        ApplicantCategory::ALL
            .into_iter()
            .find(|c| c.as_str() == norm)
            .ok_or_else(|| {
                let names: Vec<&str> = ApplicantCategory::ALL.iter().map(|c| c.as_str()).collect();
                format!(
                    "`{s}` is not an applicant category (one of: {})",
                    names.join(", ")
                )
            })
    }
}
