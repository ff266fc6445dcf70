//! Event Grid filter semantics: which events a plugin receives.
//!
//! A plugin manifest's `[filter]` table uses the keys of an Event Grid
//! event-subscription filter, so `az eventgrid event-subscription show`
//! output can be pasted in. [`FilterSpec`] is that table as written;
//! [`Filter`] is the validated form that [`Filter::matches`] evaluates.

mod advanced;
mod key;

pub use advanced::{AdvancedFilter, Operator};
pub use key::{Found, Key, Scalar};

use crate::event::Event;
use serde::Deserialize;
use serde_json::Value;

/// Most advanced filters in one filter, as Event Grid allows.
pub const MAX_ADVANCED_FILTERS: usize = 25;
/// Most values across all advanced filters, as Event Grid allows.
pub const MAX_FILTER_VALUES: usize = 25;
/// Longest string value, in characters, as Event Grid allows.
pub const MAX_STRING_VALUE_CHARS: usize = 512;

/// A filter as written in a manifest (Event Grid's names and shapes).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterSpec {
    /// Event types to receive; absent, empty or `["All"]` means every type.
    pub included_event_types: Option<Vec<String>>,
    /// Subject prefix; "" matches everything.
    pub subject_begins_with: Option<String>,
    /// Subject suffix; "" matches everything.
    pub subject_ends_with: Option<String>,
    /// Compare the subject with case (default false).
    #[serde(default)]
    pub is_subject_case_sensitive: bool,
    /// Let advanced filters look into arrays (default false).
    #[serde(default)]
    pub enable_advanced_filtering_on_arrays: bool,
    /// `{ operatorType, key, value | values }` entries, ANDed.
    #[serde(default)]
    pub advanced_filters: Vec<AdvancedFilterSpec>,
}

/// One advanced filter as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdvancedFilterSpec {
    /// One of the 19 Event Grid operators, e.g. `StringIn`.
    pub operator_type: String,
    /// `subject`, `data.modelTags.stage`, ...
    pub key: String,
    /// The single value of `NumberLessThan`, `BoolEquals`, ...
    pub value: Option<Value>,
    /// The values of `StringIn`, `NumberInRange`, ...
    pub values: Option<Vec<Value>>,
}

/// Why a filter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// Too many advanced filters.
    #[error("advancedFilters has {0} entries; Event Grid allows at most {MAX_ADVANCED_FILTERS}")]
    TooManyFilters(usize),
    /// Too many values across all advanced filters.
    #[error(
        "advancedFilters hold {0} values in all; Event Grid allows at most {MAX_FILTER_VALUES}"
    )]
    TooManyValues(usize),
    /// One advanced filter is malformed.
    #[error("advancedFilters[{index}]: {problem}")]
    Advanced {
        /// Position in `advancedFilters`.
        index: usize,
        /// What is wrong.
        problem: String,
    },
    /// `includedEventTypes` holds an empty name.
    #[error("includedEventTypes[{0}] is empty")]
    EmptyEventType(usize),
}

/// A validated filter.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// `None` receives every type; names compare without regard to case.
    pub event_types: Option<Vec<String>>,
    /// Prefix the subject must have ("" for none).
    pub subject_begins_with: String,
    /// Suffix the subject must have ("" for none).
    pub subject_ends_with: String,
    /// Compare subjects with case.
    pub subject_case_sensitive: bool,
    /// Advanced filters may look into arrays.
    pub arrays: bool,
    /// ANDed advanced filters.
    pub advanced: Vec<AdvancedFilter>,
}

impl Filter {
    /// Validate a spec. Errors name the entry and the reason.
    pub fn from_spec(spec: &FilterSpec) -> Result<Self, FilterError> {
        let event_types = match &spec.included_event_types {
            None => None,
            Some(types) if types.is_empty() || types.iter().any(|t| t == "All") => None,
            Some(types) => {
                if let Some(i) = types.iter().position(|t| t.trim().is_empty()) {
                    return Err(FilterError::EmptyEventType(i));
                }
                Some(types.clone())
            }
        };
        if spec.advanced_filters.len() > MAX_ADVANCED_FILTERS {
            return Err(FilterError::TooManyFilters(spec.advanced_filters.len()));
        }
        let advanced = spec
            .advanced_filters
            .iter()
            .enumerate()
            .map(|(index, f)| {
                AdvancedFilter::from_spec(f)
                    .map_err(|problem| FilterError::Advanced { index, problem })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let values: usize = advanced.iter().map(AdvancedFilter::value_count).sum();
        if values > MAX_FILTER_VALUES {
            return Err(FilterError::TooManyValues(values));
        }
        Ok(Self {
            event_types,
            subject_begins_with: spec.subject_begins_with.clone().unwrap_or_default(),
            subject_ends_with: spec.subject_ends_with.clone().unwrap_or_default(),
            subject_case_sensitive: spec.is_subject_case_sensitive,
            arrays: spec.enable_advanced_filtering_on_arrays,
            advanced,
        })
    }

    /// Does `event` pass? Event types, subject and every advanced filter must
    /// all agree.
    pub fn matches(&self, event: &Event) -> bool {
        if let Some(types) = &self.event_types
            && !types
                .iter()
                .any(|t| t.eq_ignore_ascii_case(&event.event_type))
        {
            return false;
        }
        if !self.subject_matches(&event.subject) {
            return false;
        }
        self.advanced.iter().all(|f| f.matches(event, self.arrays))
    }

    fn subject_matches(&self, subject: &str) -> bool {
        if self.subject_case_sensitive {
            subject.starts_with(&self.subject_begins_with)
                && subject.ends_with(&self.subject_ends_with)
        } else {
            let subject = subject.to_lowercase();
            subject.starts_with(&self.subject_begins_with.to_lowercase())
                && subject.ends_with(&self.subject_ends_with.to_lowercase())
        }
    }

    /// One line for status output, e.g. `types=[ModelRegistered] subject^="models/" 2 advanced`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(types) = &self.event_types {
            let short: Vec<&str> = types
                .iter()
                .map(|t| t.rsplit('.').next().unwrap_or(t))
                .collect();
            parts.push(format!("types=[{}]", short.join(",")));
        }
        if !self.subject_begins_with.is_empty() {
            parts.push(format!("subject^={:?}", self.subject_begins_with));
        }
        if !self.subject_ends_with.is_empty() {
            parts.push(format!("subject$={:?}", self.subject_ends_with));
        }
        if !self.advanced.is_empty() {
            parts.push(format!("{} advanced", self.advanced.len()));
        }
        if parts.is_empty() {
            "all events".into()
        } else {
            parts.join(" ")
        }
    }
}
