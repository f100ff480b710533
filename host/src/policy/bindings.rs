//! Host bindings of the WIT package `codex-jobhost:policy`, one module per
//! world, for the one supported version line (0.1.x). A new incompatible WIT
//! version gets its own modules beside these; see [`SUPPORTED`].

use wasmtime::component::HasSelf;

use super::guest::State;

/// The WIT package the host implements, and the versions it accepts: every
/// `0.1.x` (for 0.y versions, semver's compatible line is `0.y`).
pub const PACKAGE: &str = "codex-jobhost:policy";
/// The supported version line, as `major.minor` for 0.y versions.
pub const SUPPORTED: &str = "0.1";

/// The `approval-policy` world.
pub mod approval {
    wasmtime::component::bindgen!({ path: "../wit", world: "approval-policy" });
}

/// The `output-truncation` world.
pub mod truncation {
    wasmtime::component::bindgen!({ path: "../wit", world: "output-truncation" });
}

/// The `event-filter` world.
pub mod filter {
    wasmtime::component::bindgen!({ path: "../wit", world: "event-filter" });
}

/// The `host` interface, the same for every world: `config()` and `log()`.
macro_rules! impl_host {
    ($world:ident) => {
        impl $world::codex_jobhost::policy::host::Host for State {
            fn config(&mut self) -> String {
                self.config.to_string()
            }

            fn log(&mut self, level: $world::codex_jobhost::policy::host::Level, message: String) {
                use $world::codex_jobhost::policy::host::Level;
                let component = &*self.name;
                match level {
                    Level::Trace => tracing::trace!(component, "{message}"),
                    Level::Debug => tracing::debug!(component, "{message}"),
                    Level::Info => tracing::info!(component, "{message}"),
                    Level::Warn => tracing::warn!(component, "{message}"),
                    Level::Error => tracing::error!(component, "{message}"),
                }
            }
        }
        impl $world::codex_jobhost::policy::types::Host for State {}
    };
}
impl_host!(approval);
impl_host!(truncation);
impl_host!(filter);

/// Adds a world's host imports to a linker.
pub fn add_approval(linker: &mut wasmtime::component::Linker<State>) -> wasmtime::Result<()> {
    approval::ApprovalPolicy::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

/// Adds a world's host imports to a linker.
pub fn add_truncation(linker: &mut wasmtime::component::Linker<State>) -> wasmtime::Result<()> {
    truncation::OutputTruncation::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

/// Adds a world's host imports to a linker.
pub fn add_filter(linker: &mut wasmtime::component::Linker<State>) -> wasmtime::Result<()> {
    filter::EventFilter::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}
