//! Jobs: ids, statuses, events, the on-disk store, the in-memory registry and
//! the detached supervisor that runs each turn.

pub mod approval;
pub mod dirwatch;
pub mod event;
pub mod event_log;
pub mod feed;
pub mod id;
pub mod meta;
pub mod output;
pub mod process;
pub mod queue;
pub mod registry;
pub mod status;
pub mod store;
pub mod supervisor;

pub use event::{Event, HOST_EVENT_TYPES};
pub use event_log::EventWriter;
pub use feed::Notification;
pub use id::JobId;
pub use meta::{JobMeta, JobOptions};
pub use queue::{Queue, TurnSpec};
pub use registry::{JobSummary, Registry};
pub use status::{JobStatus, Turn};
pub use store::{JobDir, JobStore};
