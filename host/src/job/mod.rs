//! The turn runtime, knowing no backend: ids, statuses, events, the on-disk
//! store, the durable queue, the in-memory registry, and the detached
//! supervisor that runs each turn through a [`runtime::Driver`] it is handed.

pub mod approval;
pub mod dirwatch;
pub mod end;
pub mod event;
pub mod event_log;
pub mod feed;
pub mod id;
pub mod meta;
pub mod output;
pub mod process;
pub mod queue;
pub mod registry;
pub mod runtime;
pub mod status;
pub mod store;
pub mod supervisor;
pub mod tracker;

pub use end::End;
pub use event::{Event, HOST_EVENT_TYPES};
pub use event_log::EventWriter;
pub use feed::Notification;
pub use id::JobId;
pub use meta::{BackendKind, JobMeta, JobOptions};
pub use queue::{Queue, TurnSettings, TurnSpec};
pub use registry::{JobSummary, Registry};
pub use status::{JobStatus, Move};
pub use store::{JobDir, JobStore};
