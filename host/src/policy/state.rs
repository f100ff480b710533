//! The store data of a guest instance ([`State`]): an empty WASI context,
//! its settings and log, and the memory budget wasmtime asks before any
//! memory or table of the guest grows.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{HostWallClock, WasiCtx, WasiCtxView, WasiView};

use super::guest_log::LogBudget;

/// The store data of a guest instance: an empty WASI context (no files,
/// environment, arguments, network or real clock), its settings and limits.
pub struct State {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) limits: GuestBudget,
    /// The JSON settings returned by `config()`.
    pub(crate) config: Arc<str>,
    /// Its log, within the component's limits.
    pub(crate) log: Arc<LogBudget>,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Time stands still for guests: the WIT gives them no clock. (The
/// monotonic clock is not linked at all: see `add_guest_wasi`.)
pub(super) struct Frozen;

impl HostWallClock for Frozen {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

/// One memory budget for a whole guest instance: every linear memory and
/// every table of every core instance inside the component counts against
/// it (a table element as [`TABLE_ELEMENT_BYTES`]), so a guest cannot get
/// around its cap with many memories or a huge table. Counts of core
/// instances, memories and tables are capped too.
pub(super) struct GuestBudget {
    /// Bytes the guest may hold in memories and tables together.
    pub(super) limit: usize,
    /// Bytes it holds now.
    pub(super) used: usize,
    /// Whether a growth was refused during the current call, so a failure
    /// can be reported as the cap it was.
    pub(super) refused: bool,
}

/// What one table element counts against the budget: wasmtime keeps a
/// pointer per element.
pub const TABLE_ELEMENT_BYTES: usize = 8;
/// Core instances one component may make (a Rust guest makes about 5).
const MAX_CORE_INSTANCES: usize = 32;
/// Linear memories across a component's core instances (a Rust guest has 1).
const MAX_MEMORIES: usize = 4;
/// Tables across a component's core instances (a Rust guest has about 3).
const MAX_TABLES: usize = 16;

impl GuestBudget {
    fn grow(&mut self, more_bytes: usize) -> bool {
        match self.used.checked_add(more_bytes) {
            Some(total) if total <= self.limit => {
                self.used = total;
                true
            }
            _ => {
                self.refused = true;
                false
            }
        }
    }
}

impl ResourceLimiter for GuestBudget {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(self.grow(desired.saturating_sub(current)))
    }

    fn table_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(self.grow(desired.saturating_sub(current).saturating_mul(TABLE_ELEMENT_BYTES)))
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}
