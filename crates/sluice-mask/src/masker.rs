//! The compiled masker of one connection.

use crate::column::ColumnPattern;
use crate::literal::Literals;
use crate::numeric::{self, NumericSet};
use crate::{email, prefilter, Detector, MaskCounts, MASK};
use serde::{Deserialize, Serialize};

/// A user-defined detector: every match of `regex` is masked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomDetector {
    /// Name shown in masking counts.
    pub name: String,
    /// Regular expression (Rust `regex` syntax).
    pub regex: String,
}

/// What a connection masks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskConfig {
    /// Built-in detectors to run; all of them when absent.
    #[serde(default)]
    pub detectors: Option<Vec<Detector>>,
    /// Column-name globs whose values are masked whole (`*password*`, `ssn`).
    #[serde(default)]
    pub columns: Vec<String>,
    /// User-defined detectors.
    #[serde(default)]
    pub custom: Vec<CustomDetector>,
    /// Mask what the client receives too (recordings are always masked).
    #[serde(default = "yes")]
    pub mask_client: bool,
}

fn yes() -> bool {
    true
}

impl Default for MaskConfig {
    fn default() -> Self {
        MaskConfig {
            detectors: None,
            columns: Vec::new(),
            custom: Vec::new(),
            mask_client: true,
        }
    }
}

/// A masking configuration that cannot be compiled.
#[derive(Debug, thiserror::Error)]
pub enum MaskError {
    /// A custom detector's regular expression is invalid.
    #[error("custom detector {name:?}: invalid regex: {source}")]
    Regex {
        /// Detector name.
        name: String,
        /// Why.
        source: regex::Error,
    },
}

/// A compiled masker. Cheap to share (`Arc`) between sessions.
#[derive(Debug)]
pub struct Masker {
    numeric: NumericSet,
    email: bool,
    literals: Option<Literals>,
    custom: Vec<regex::bytes::Regex>,
    custom_names: Vec<String>,
    columns: Vec<ColumnPattern>,
    mask_client: bool,
}

/// Values shorter than this cannot hold anything a built-in detector finds (`a@b.io`).
const SHORTEST_FINDING: usize = 6;

impl Masker {
    /// Compiles `config`.
    pub fn new(config: &MaskConfig) -> Result<Masker, MaskError> {
        let mut enabled = [false; Detector::ALL.len()];
        match &config.detectors {
            None => enabled = [true; Detector::ALL.len()],
            Some(list) => {
                for d in list {
                    enabled[d.index()] = true;
                }
            }
        }
        let on = |d: Detector| enabled[d.index()];
        let custom = config
            .custom
            .iter()
            .map(|c| {
                regex::bytes::Regex::new(&c.regex).map_err(|source| MaskError::Regex {
                    name: c.name.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Masker {
            numeric: NumericSet {
                card: on(Detector::CardNumber),
                ssn: on(Detector::UsSsn),
                phone: on(Detector::Phone),
                iban: on(Detector::Iban),
            },
            email: on(Detector::Email),
            literals: Literals::new(&enabled),
            custom,
            custom_names: config.custom.iter().map(|c| c.name.clone()).collect(),
            columns: config
                .columns
                .iter()
                .map(|c| ColumnPattern::new(c))
                .collect(),
            mask_client: config.mask_client,
        })
    }

    /// Whether the client's copy is masked too.
    pub fn mask_client(&self) -> bool {
        self.mask_client
    }

    /// Names of the custom detectors, in order (for [`MaskCounts::by_name`]).
    pub fn custom_names(&self) -> &[String] {
        &self.custom_names
    }

    /// Whether values of column `name` are masked whole.
    pub fn column_masked(&self, name: &str) -> bool {
        self.columns.iter().any(|p| p.matches(name))
    }

    /// Masks every sensitive value inside `v`, in place; returns whether anything changed.
    pub fn mask(&self, v: &mut [u8], counts: &mut MaskCounts) -> bool {
        let before = counts.total();
        if v.len() >= SHORTEST_FINDING {
            let could = prefilter::survey(v);
            if could.literal {
                if let Some(l) = &self.literals {
                    l.scan(v, counts);
                }
            }
            if could.email && self.email {
                email::scan(v, counts);
            }
            if could.numeric && self.numeric.any() {
                numeric::scan(v, self.numeric, counts);
            }
        }
        for (i, re) in self.custom.iter().enumerate() {
            let spans: Vec<(usize, usize)> = re
                .find_iter(v)
                .filter(|m| !m.is_empty())
                .map(|m| (m.start(), m.end()))
                .collect();
            for (s, e) in spans {
                v[s..e].fill(MASK);
                counts.hit_custom(i);
            }
        }
        counts.total() != before
    }

    /// Masks `s` into a new string if anything in it is sensitive.
    pub fn mask_str(&self, s: &str, counts: &mut MaskCounts) -> Option<String> {
        let mut bytes = s.as_bytes().to_vec();
        if !self.mask(&mut bytes, counts) {
            return None;
        }
        Some(
            String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        )
    }
}

/// Masks a whole value (a column rule matched), keeping its length.
pub fn mask_whole(v: &mut [u8]) {
    v.fill(MASK);
}
