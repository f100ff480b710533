//! Running one configured policy component: a store per instance with its
//! limits, a warm instance reused between calls, a fresh one after any failure.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::Store;
use wasmtime::component::{InstancePre, ResourceTable};
use wasmtime_wasi::WasiCtxBuilder;

use super::bindings::{self, approval, filter, truncation, v0_1, v0_2};
use super::guest_log::{GuestLog, LogBudget};
use super::state::{Frozen, GuestBudget, State};
use super::{Decision, FilterAction, JobContext, Limits, PolicyEvent, Request, World};

/// How often the engine's epoch advances; guest deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Per-call limits of a guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestLimits {
    /// Wall-clock time one call may take (epoch interruption): a generous
    /// backstop; [`GuestLimits::fuel`] is what bounds a guest's work.
    pub deadline: Duration,
    /// Fuel one call may burn: about one unit per WebAssembly instruction, so
    /// a guest's work is bounded the same on an idle and a loaded machine.
    pub fuel: u64,
    /// What an instance may hold in all its linear memories and tables
    /// together, in bytes.
    pub memory: usize,
}

impl Default for GuestLimits {
    fn default() -> Self {
        GuestLimits { deadline: Duration::from_secs(2), memory: 16 << 20, fuel: DEFAULT_FUEL }
    }
}

/// Default [`GuestLimits::fuel`]: 200 million units (about one per
/// WebAssembly instruction), far more than a policy decision needs and far
/// less than the 2 s backstop allows on a busy machine.
pub const DEFAULT_FUEL: u64 = 200_000_000;

/// A compiled, linked component: what a [`Guest`] instantiates.
pub struct LoadedComponent {
    /// The file it came from.
    pub path: std::path::PathBuf,
    /// The world it implements.
    pub world: World,
    /// The WIT package version it was built against (`0.3.0`, or `0.2.x` or `0.1.x` through an adapter).
    pub version: String,
    /// The sha256 of the component file, lowercase hex: its identity when a
    /// job pins it.
    pub sha256: String,
    /// Instantiation with imports resolved and exports type-checked ahead of time.
    pub pre: WorldPre,
}

/// A component ready to instantiate as the world it implements, in the WIT
/// version line it was built against; making one type-checks its exports
/// against that world of that line.
pub enum WorldPre {
    /// `approval-policy`.
    Approval(approval::ApprovalPolicyPre<State>),
    /// `output-truncation`.
    Truncation(truncation::OutputTruncationPre<State>),
    /// `event-filter`.
    Filter(filter::EventFilterPre<State>),
    /// `approval-policy` of 0.2.
    ApprovalV0_2(v0_2::approval::ApprovalPolicyPre<State>),
    /// `output-truncation` of 0.2.
    TruncationV0_2(v0_2::truncation::OutputTruncationPre<State>),
    /// `event-filter` of 0.2.
    FilterV0_2(v0_2::filter::EventFilterPre<State>),
    /// `approval-policy` of 0.1.
    ApprovalV0_1(v0_1::approval::ApprovalPolicyPre<State>),
    /// `output-truncation` of 0.1.
    TruncationV0_1(v0_1::truncation::OutputTruncationPre<State>),
    /// `event-filter` of 0.1.
    FilterV0_1(v0_1::filter::EventFilterPre<State>),
}

/// Type-checks the world's one function in the line `$line` (a bindings module path).
macro_rules! typecheck_world {
    ($world:expr, $pre:expr, $interface:expr, $($line:ident)::*) => {{
        use $($line)::*::approval::codex_jobhost::policy::types::JobInfo as ApprovalJob;
        use $($line)::*::approval::exports::codex_jobhost::policy::approval as a;
        use $($line)::*::filter::codex_jobhost::policy::types::JobInfo as FilterJob;
        use $($line)::*::filter::exports::codex_jobhost::policy::filter as f;
        use $($line)::*::truncation::codex_jobhost::policy::types::JobInfo as TruncationJob;
        use $($line)::*::truncation::exports::codex_jobhost::policy::truncation as t;
        match $world {
            World::Approval => typecheck::<(&ApprovalJob, &a::Request), (a::Decision,)>($pre, $interface, "decide"),
            World::Truncation => {
                typecheck::<(&TruncationJob, &str, t::Limits), (String,)>($pre, $interface, "truncate")
            }
            World::Filter => typecheck::<(&FilterJob, &f::Event), (f::Action,)>($pre, $interface, "filter"),
        }
    }};
}

impl WorldPre {
    /// Type-checks `pre`'s exports against `world` of the line `version`
    /// belongs to (0.1.x, 0.2.x, else the latest), whose interface the component
    /// exports as `interface` (e.g. `codex-jobhost:policy/approval@0.3.0`).
    ///
    /// Errors: an export is missing or its type differs from the WIT's
    /// (the message names the export).
    pub fn new(world: World, version: &str, interface: &str, pre: InstancePre<State>) -> wasmtime::Result<Self> {
        // The generated bindings check an interface's function types only when
        // an instance is made; checking here refuses a bad component at load.
        if version.starts_with("0.1.") {
            typecheck_world!(world, &pre, interface, v0_1)?;
            return Ok(match world {
                World::Approval => WorldPre::ApprovalV0_1(v0_1::approval::ApprovalPolicyPre::new(pre)?),
                World::Truncation => WorldPre::TruncationV0_1(v0_1::truncation::OutputTruncationPre::new(pre)?),
                World::Filter => WorldPre::FilterV0_1(v0_1::filter::EventFilterPre::new(pre)?),
            });
        }
        if version.starts_with("0.2.") {
            typecheck_world!(world, &pre, interface, v0_2)?;
            return Ok(match world {
                World::Approval => WorldPre::ApprovalV0_2(v0_2::approval::ApprovalPolicyPre::new(pre)?),
                World::Truncation => WorldPre::TruncationV0_2(v0_2::truncation::OutputTruncationPre::new(pre)?),
                World::Filter => WorldPre::FilterV0_2(v0_2::filter::EventFilterPre::new(pre)?),
            });
        }
        typecheck_world!(world, &pre, interface, bindings)?;
        Ok(match world {
            World::Approval => WorldPre::Approval(approval::ApprovalPolicyPre::new(pre)?),
            World::Truncation => WorldPre::Truncation(truncation::OutputTruncationPre::new(pre)?),
            World::Filter => WorldPre::Filter(filter::EventFilterPre::new(pre)?),
        })
    }

    fn engine(&self) -> &wasmtime::Engine {
        match self {
            WorldPre::Approval(p) => p.engine(),
            WorldPre::Truncation(p) => p.engine(),
            WorldPre::Filter(p) => p.engine(),
            WorldPre::ApprovalV0_2(p) => p.engine(),
            WorldPre::TruncationV0_2(p) => p.engine(),
            WorldPre::FilterV0_2(p) => p.engine(),
            WorldPre::ApprovalV0_1(p) => p.engine(),
            WorldPre::TruncationV0_1(p) => p.engine(),
            WorldPre::FilterV0_1(p) => p.engine(),
        }
    }

    fn instantiate(&self, store: &mut Store<State>) -> wasmtime::Result<Exports> {
        Ok(match self {
            WorldPre::Approval(p) => Exports::Approval(p.instantiate(store)?),
            WorldPre::Truncation(p) => Exports::Truncation(p.instantiate(store)?),
            WorldPre::Filter(p) => Exports::Filter(p.instantiate(store)?),
            WorldPre::ApprovalV0_2(p) => Exports::ApprovalV0_2(p.instantiate(store)?),
            WorldPre::TruncationV0_2(p) => Exports::TruncationV0_2(p.instantiate(store)?),
            WorldPre::FilterV0_2(p) => Exports::FilterV0_2(p.instantiate(store)?),
            WorldPre::ApprovalV0_1(p) => Exports::ApprovalV0_1(p.instantiate(store)?),
            WorldPre::TruncationV0_1(p) => Exports::TruncationV0_1(p.instantiate(store)?),
            WorldPre::FilterV0_1(p) => Exports::FilterV0_1(p.instantiate(store)?),
        })
    }
}

enum Exports {
    Approval(approval::ApprovalPolicy),
    Truncation(truncation::OutputTruncation),
    Filter(filter::EventFilter),
    ApprovalV0_2(v0_2::approval::ApprovalPolicy),
    TruncationV0_2(v0_2::truncation::OutputTruncation),
    FilterV0_2(v0_2::filter::EventFilter),
    ApprovalV0_1(v0_1::approval::ApprovalPolicy),
    TruncationV0_1(v0_1::truncation::OutputTruncation),
    FilterV0_1(v0_1::filter::EventFilter),
}

struct Warm {
    store: Store<State>,
    exports: Exports,
}

/// One entry of a policy file: a component with its settings, ready to call.
pub struct Guest {
    /// The entry's name (its `name`, else the file stem).
    pub name: Arc<str>,
    /// The component.
    pub component: Arc<LoadedComponent>,
    config: Arc<str>,
    limits: GuestLimits,
    warm: Mutex<Option<Warm>>,
    instantiations: AtomicU64,
    log: Arc<LogBudget>,
    /// What a failure of this truncation shows.
    pub failure_mode: FailureMode,
    /// Whether this approval policy decides on launches with options the
    /// host cannot judge (`judges_options` in its entry).
    pub judges_options: bool,
    /// Whether this approval policy's decisions hold (`enforce`, default
    /// true); one that does not is asked beside the others in shadow, its
    /// decisions recorded, never applied.
    pub enforce: bool,
}

/// What a caller sees when a truncation component fails (or a request's
/// policy time runs out): the built-in cut of the text (`open`), or a marker
/// in its place (`closed`), so a redaction that fails never shows what it hides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureMode {
    /// The built-in cut.
    Open,
    /// `[withheld: truncation policy NAME failed]`.
    Closed,
}

impl FailureMode {
    /// The default for an entry named `name`: closed for a redaction (its
    /// name has `redact` in it), open otherwise.
    pub fn default_for(name: &str) -> Self {
        if name.to_ascii_lowercase().contains("redact") { FailureMode::Closed } else { FailureMode::Open }
    }
}

impl Guest {
    /// An entry running `component` with `config` (JSON) under `limits`.
    pub fn new(name: &str, component: Arc<LoadedComponent>, config: String, limits: GuestLimits) -> Self {
        Guest {
            name: name.into(),
            log: LogBudget::new(name.into()),
            failure_mode: FailureMode::default_for(name),
            judges_options: false,
            enforce: true,
            component,
            config: config.into(),
            limits,
            warm: Mutex::new(None),
            instantiations: AtomicU64::new(0),
        }
    }

    /// Its settings, as the JSON `config()` returns to it.
    pub fn config(&self) -> &str {
        &self.config
    }

    /// This entry with failures shown as `mode` says.
    pub fn on_failure(mut self, mode: FailureMode) -> Self {
        self.failure_mode = mode;
        self
    }

    /// This entry, judging the options the host cannot, or not.
    pub fn judging_options(mut self, judges: bool) -> Self {
        self.judges_options = judges;
        self
    }

    /// This entry, enforced or in shadow.
    pub fn enforcing(mut self, enforce: bool) -> Self {
        self.enforce = enforce;
        self
    }

    /// `decide(job, request)`. Errors: the guest trapped, ran past its
    /// deadline or memory cap, or is not an approval policy; the text says which.
    pub fn decide(&self, job: &JobContext, request: &Request) -> Result<Decision, String> {
        self.call(|store, exports| match exports {
            Exports::Approval(a) => {
                let d = a.codex_jobhost_policy_approval().call_decide(
                    store,
                    &job.into(),
                    &bindings::wit_request(request),
                )?;
                Ok(d.into())
            }
            // What an older line cannot express is not put to its guest: `ask`.
            Exports::ApprovalV0_2(a) => match bindings::v0_2_request(request) {
                Some(r) => Ok(a.codex_jobhost_policy_approval().call_decide(store, &job.into(), &r)?.into()),
                None => Ok(Decision::Ask),
            },
            Exports::ApprovalV0_1(a) => match bindings::v0_1_request(request) {
                Some(r) => Ok(a.codex_jobhost_policy_approval().call_decide(store, &job.into(), &r)?.into()),
                None => Ok(Decision::Ask),
            },
            _ => Err(wasmtime::Error::msg("not an approval-policy component")),
        })
    }

    /// `truncate(job, text, limits)`.
    pub fn truncate(&self, job: &JobContext, text: &str, limits: Limits) -> Result<String, String> {
        macro_rules! call {
            ($store:expr, $t:expr, $($line:ident)::*, $($keep:tt)*) => {{
                let wit_limits = $($line)::*::truncation::exports::codex_jobhost::policy::truncation::Limits {
                    max_chars: limits.max_chars,
                    max_lines: limits.max_lines,
                    $($keep)*
                };
                $t.codex_jobhost_policy_truncation().call_truncate($store, &job.into(), text, wit_limits)
            }};
        }
        self.call(|store, exports| match exports {
            Exports::Truncation(t) => call!(store, t, bindings, keep: bindings::wit_keep!(limits.keep, bindings)),
            Exports::TruncationV0_2(t) => call!(store, t, v0_2, keep: bindings::wit_keep!(limits.keep, v0_2)),
            Exports::TruncationV0_1(t) => call!(store, t, v0_1,), // 0.1 has no `keep`
            _ => Err(wasmtime::Error::msg("not an output-truncation component")),
        })
    }

    /// `filter(job, event)`; `payload` is the event's JSON.
    pub fn filter(&self, job: &JobContext, kind: &str, payload: &str) -> Result<FilterAction, String> {
        macro_rules! call {
            ($store:expr, $f:expr, $($line:ident)::*) => {{
                use $($line)::*::filter::exports::codex_jobhost::policy::filter as wit;
                let event = wit::Event { kind: kind.to_owned(), payload: payload.to_owned() };
                Ok(match $f.codex_jobhost_policy_filter().call_filter($store, &job.into(), &event)? {
                    wit::Action::Keep => FilterAction::Keep,
                    wit::Action::Drop => FilterAction::Drop,
                    wit::Action::Replace(e) => FilterAction::Replace(PolicyEvent { kind: e.kind, payload: e.payload }),
                })
            }};
        }
        self.call(|store, exports| match exports {
            Exports::Filter(f) => call!(store, f, bindings),
            Exports::FilterV0_2(f) => call!(store, f, v0_2),
            Exports::FilterV0_1(f) => call!(store, f, v0_1),
            _ => Err(wasmtime::Error::msg("not an event-filter component")),
        })
    }

    /// How many instances this entry has made: one, then one more after each failure.
    pub fn instantiations(&self) -> u64 {
        self.instantiations.load(Ordering::Relaxed)
    }

    /// Runs `f` on the warm instance, or a fresh one; a failed instance is dropped.
    fn call<R>(&self, f: impl FnOnce(&mut Store<State>, &Exports) -> wasmtime::Result<R>) -> Result<R, String> {
        let result = self.call_inner(f).map_err(|error| match self.log.stderr_tail() {
            // A panic's message is what a policy author needs to see.
            Some(printed) => format!("{error}; it printed to stderr: {printed}"),
            None => error,
        });
        self.log.end_call();
        result
    }

    fn call_inner<R>(&self, f: impl FnOnce(&mut Store<State>, &Exports) -> wasmtime::Result<R>) -> Result<R, String> {
        let taken = self.warm.lock().unwrap().take();
        let mut warm = match taken {
            Some(w) => w,
            None => self.instantiate().map_err(|e| format!("cannot instantiate: {e:#}"))?,
        };
        let ticks = self.limits.deadline.as_millis().div_ceil(EPOCH_TICK.as_millis()).max(1) as u64;
        // One tick more: the deadline counts from the next tick, which may be close.
        warm.store.set_epoch_deadline(ticks + 1);
        warm.store.set_fuel(self.limits.fuel).map_err(|e| format!("cannot set fuel: {e}"))?;
        warm.store.data_mut().limits.refused = false;
        let result = f(&mut warm.store, &warm.exports);
        match result {
            Ok(r) => {
                *self.warm.lock().unwrap() = Some(warm);
                Ok(r)
            }
            Err(e) => Err(self.describe(&e, &warm.store)),
        }
    }

    fn describe(&self, e: &wasmtime::Error, store: &Store<State>) -> String {
        let memory_full = store.data().limits.refused;
        match e.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::OutOfFuel) => {
                format!("ran out of fuel: more than {} instructions in one call", self.limits.fuel)
            }
            Some(wasmtime::Trap::Interrupt) => {
                format!("ran past its deadline of {} ms", self.limits.deadline.as_millis())
            }
            _ if memory_full => {
                format!(
                    "exceeded its memory cap of {} MiB (memories and tables together) ({e:#})",
                    self.limits.memory >> 20
                )
            }
            Some(trap) => {
                tracing::debug!(component = &*self.name, "trap: {e:?}");
                format!("trapped: {trap}")
            }
            None => format!("failed: {e:#}"),
        }
    }

    fn instantiate(&self) -> wasmtime::Result<Warm> {
        self.instantiations.fetch_add(1, Ordering::Relaxed);
        let wasi = WasiCtxBuilder::new()
            .stdout(GuestLog::new(Arc::clone(&self.log), "stdout"))
            .stderr(GuestLog::new(Arc::clone(&self.log), "stderr"))
            .wall_clock(Frozen)
            .build();
        let limits = GuestBudget { limit: self.limits.memory, used: 0, refused: false };
        let state = State {
            wasi,
            table: ResourceTable::new(),
            limits,
            config: Arc::clone(&self.config),
            log: Arc::clone(&self.log),
        };
        let mut store = Store::new(self.component.pre.engine(), state);
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(u64::MAX / 2);
        store.set_fuel(self.limits.fuel)?; // instantiation runs the guest's start code
        let exports = self.component.pre.instantiate(&mut store)?;
        Ok(Warm { store, exports })
    }
}

/// Checks that `interface`'s export `func` has the type `fn(Params) -> Results`.
fn typecheck<Params, Results>(pre: &InstancePre<State>, interface: &str, func: &str) -> wasmtime::Result<()>
where
    Params: wasmtime::component::ComponentNamedList + wasmtime::component::Lower,
    Results: wasmtime::component::ComponentNamedList + wasmtime::component::Lift,
{
    use wasmtime::component::types::ComponentItem;
    let component = pre.component();
    let found = component.get_export_index(None, interface).and_then(|i| component.get_export(Some(&i), func));
    match found {
        Some((ComponentItem::ComponentFunc(ty), _)) => ty
            .typecheck::<Params, Results>(&pre.instance_type())
            .map_err(|e| e.context(format!("export `{func}` of `{interface}` has the wrong type"))),
        Some(_) => Err(wasmtime::format_err!("export `{func}` of `{interface}` is not a function")),
        None => Err(wasmtime::format_err!("`{interface}` has no export `{func}`")),
    }
}
