//! The five Azure Machine Learning payloads and how they are read from `data`.
//!
//! The wire is inconsistent (reference: docs/EVENTS.md): the Azure SDKs send
//! camelCase keys, the Event Grid docs show PascalCase; `modelVersion` has
//! been a number and a string; `runType` may be null; tag values need not be
//! strings; `modelIds` is one comma-separated string. The rules:
//! - keys are matched without regard to case; unknown keys are ignored;
//! - a string field that is absent or null reads as "";
//! - a number or boolean where a string is expected reads as its JSON text;
//! - tags/properties keep their order; non-string values become JSON text;
//! - a value of a type that contradicts the schema (tags that are not an
//!   object, a drift coefficient that is missing or not a number) is a
//!   problem naming it: the event is still accepted and delivered, without
//!   its typed view ([`MlEvent::Other`], `Event::data_problem` says why).

use super::json_type;
use serde_json::{Map, Value};

/// Name/value pairs from a tags or properties object, in wire order.
pub type Pairs = Vec<(String, String)>;

/// The event type names gridlet types.
pub mod event_types {
    /// A run finished.
    pub const RUN_COMPLETED: &str = "Microsoft.MachineLearningServices.RunCompleted";
    /// A run changed status.
    pub const RUN_STATUS_CHANGED: &str = "Microsoft.MachineLearningServices.RunStatusChanged";
    /// A model version was registered.
    pub const MODEL_REGISTERED: &str = "Microsoft.MachineLearningServices.ModelRegistered";
    /// A service was deployed.
    pub const MODEL_DEPLOYED: &str = "Microsoft.MachineLearningServices.ModelDeployed";
    /// Data drift was detected.
    pub const DATASET_DRIFT_DETECTED: &str =
        "Microsoft.MachineLearningServices.DatasetDriftDetected";
}

/// The payload, typed by event type.
#[derive(Debug, Clone, PartialEq)]
pub enum MlEvent {
    /// `RunCompleted`.
    RunCompleted(RunCompleted),
    /// `RunStatusChanged`.
    RunStatusChanged(RunStatusChanged),
    /// `ModelRegistered`.
    ModelRegistered(ModelRegistered),
    /// `ModelDeployed`.
    ModelDeployed(ModelDeployed),
    /// `DatasetDriftDetected`.
    DatasetDriftDetected(DatasetDriftDetected),
    /// A type this version does not know; its data stays raw.
    Other,
}

/// `RunCompleted` data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCompleted {
    /// `experimentId`.
    pub experiment_id: String,
    /// `experimentName`.
    pub experiment_name: String,
    /// `runId`.
    pub run_id: String,
    /// `runType`; `None` when null or absent.
    pub run_type: Option<String>,
    /// `runTags`.
    pub run_tags: Pairs,
    /// `runProperties`.
    pub run_properties: Pairs,
}

/// `RunStatusChanged` data: a run plus its new status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStatusChanged {
    /// The run's fields, as in `RunCompleted`.
    pub run: RunCompleted,
    /// `runStatus`, as sent ("failed", "Running", ...).
    pub run_status: String,
}

/// `ModelRegistered` data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRegistered {
    /// `modelName`.
    pub model_name: String,
    /// `modelVersion`, number or string on the wire, always text here.
    pub model_version: String,
    /// `modelTags`.
    pub model_tags: Pairs,
    /// `modelProperties`.
    pub model_properties: Pairs,
}

/// `ModelDeployed` data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelDeployed {
    /// `serviceName`.
    pub service_name: String,
    /// `serviceComputeType` ("ACI", "AKS", ...).
    pub service_compute_type: String,
    /// `modelIds`, split on commas, trimmed, empties dropped.
    pub model_ids: Vec<String>,
    /// `serviceTags`.
    pub service_tags: Pairs,
    /// `serviceProperties`.
    pub service_properties: Pairs,
}

/// `DatasetDriftDetected` data.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetDriftDetected {
    /// `dataDriftId`.
    pub data_drift_id: String,
    /// `dataDriftName`.
    pub data_drift_name: String,
    /// `runId`.
    pub run_id: String,
    /// `baseDatasetId`.
    pub base_dataset_id: String,
    /// `targetDatasetId`.
    pub target_dataset_id: String,
    /// `driftCoefficient`.
    pub drift_coefficient: f64,
    /// `startTime`, as sent.
    pub start_time: String,
    /// `endTime`, as sent.
    pub end_time: String,
}

/// A problem with one data field: (`data.<field>`, what is wrong).
pub(crate) type FieldProblem = (String, String);

/// The type gridlet types that `event_type` names, compared without regard
/// to case as Event Grid does.
pub(crate) fn known_type(event_type: &str) -> Option<&'static str> {
    use event_types::*;
    [
        RUN_COMPLETED,
        RUN_STATUS_CHANGED,
        MODEL_REGISTERED,
        MODEL_DEPLOYED,
        DATASET_DRIFT_DETECTED,
    ]
    .into_iter()
    .find(|k| k.eq_ignore_ascii_case(event_type))
}

impl MlEvent {
    /// Type `data` for `event_type`. Unknown types give [`MlEvent::Other`]
    /// whatever their data.
    pub(crate) fn from_data(event_type: &str, data: &Value) -> Result<Self, FieldProblem> {
        use event_types::*;
        let Some(kind) = known_type(event_type) else {
            return Ok(MlEvent::Other);
        };
        let Value::Object(map) = data else {
            return Err((
                "data".into(),
                format!("must be an object for {kind}, found {}", json_type(data)),
            ));
        };
        let d = Data(map);
        Ok(match kind {
            RUN_COMPLETED => MlEvent::RunCompleted(d.run()?),
            RUN_STATUS_CHANGED => MlEvent::RunStatusChanged(RunStatusChanged {
                run: d.run()?,
                run_status: d.string("runStatus"),
            }),
            MODEL_REGISTERED => MlEvent::ModelRegistered(ModelRegistered {
                model_name: d.string("modelName"),
                model_version: d.string("modelVersion"),
                model_tags: d.pairs("modelTags")?,
                model_properties: d.pairs("modelProperties")?,
            }),
            MODEL_DEPLOYED => MlEvent::ModelDeployed(ModelDeployed {
                service_name: d.string("serviceName"),
                service_compute_type: d.string("serviceComputeType"),
                model_ids: d.list("modelIds")?,
                service_tags: d.pairs("serviceTags")?,
                service_properties: d.pairs("serviceProperties")?,
            }),
            _ => MlEvent::DatasetDriftDetected(DatasetDriftDetected {
                data_drift_id: d.string("dataDriftId"),
                data_drift_name: d.string("dataDriftName"),
                run_id: d.string("runId"),
                base_dataset_id: d.string("baseDatasetId"),
                target_dataset_id: d.string("targetDatasetId"),
                drift_coefficient: d.number("driftCoefficient")?,
                start_time: d.string("startTime"),
                end_time: d.string("endTime"),
            }),
        })
    }
}

/// A `data` object read with the tolerant rules above.
struct Data<'a>(&'a Map<String, Value>);

impl<'a> Data<'a> {
    /// The value under `name`, exact spelling first, then ignoring case.
    pub(crate) fn get(&self, name: &str) -> Option<&'a Value> {
        self.0.get(name).or_else(|| {
            self.0
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
    }

    fn string(&self, name: &str) -> String {
        self.optional_string(name).unwrap_or_default()
    }

    fn optional_string(&self, name: &str) -> Option<String> {
        match self.get(name)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    fn pairs(&self, name: &str) -> Result<Pairs, FieldProblem> {
        match self.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Object(map)) => Ok(map
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect()),
            Some(other) => Err(problem(name, "an object", other)),
        }
    }

    fn list(&self, name: &str) -> Result<Vec<String>, FieldProblem> {
        let items: Vec<String> = match self.get(name) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => s.split(',').map(str::to_string).collect(),
            // Tolerate a future wire that sends a real array.
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
            Some(other) => return Err(problem(name, "a comma-separated string", other)),
        };
        Ok(items
            .into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect())
    }

    fn number(&self, name: &str) -> Result<f64, FieldProblem> {
        match self.get(name) {
            Some(Value::Number(n)) => n
                .as_f64()
                .ok_or_else(|| (format!("data.{name}"), "is not a finite number".into())),
            Some(Value::String(s)) => s.trim().parse::<f64>().map_err(|_| {
                (
                    format!("data.{name}"),
                    format!("must be a number, found the string {s:?}"),
                )
            }),
            None | Some(Value::Null) => Err((format!("data.{name}"), "is missing".into())),
            Some(other) => Err(problem(name, "a number", other)),
        }
    }

    fn run(&self) -> Result<RunCompleted, FieldProblem> {
        Ok(RunCompleted {
            experiment_id: self.string("experimentId"),
            experiment_name: self.string("experimentName"),
            run_id: self.string("runId"),
            run_type: self.optional_string("runType"),
            run_tags: self.pairs("runTags")?,
            run_properties: self.pairs("runProperties")?,
        })
    }
}

fn problem(name: &str, wanted: &str, found: &Value) -> FieldProblem {
    (
        format!("data.{name}"),
        format!("must be {wanted}, found {}", json_type(found)),
    )
}
