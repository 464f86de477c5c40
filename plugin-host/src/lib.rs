//! The WASM plugin host: GatePulse runs transform plugins here, sandboxed.
//!
//! This crate owns one idea: taking untrusted WebAssembly and running it against one
//! event at a time without letting it hurt the router. It knows nothing of HTTP,
//! subscriptions or the store.
//!
//! - [`Host`]: one wasmtime [`Engine`] (Cranelift, fuel, epoch interruption, the
//!   pooling allocator) and an epoch ticker thread. [`Host::load`] validates a module
//!   against ABI v1 (see `plugin-sdk/README.md`), compiles it and prepares its
//!   instantiation (`InstancePre`) once; the compiled module is shared by sha256
//!   while some plugin uses it, and freed when none does.
//! - [`Plugin::call`]: runs `gatepulse_transform` on one input with the configured
//!   [`Limits`]: fuel, a wall-clock deadline, a linear-memory cap, input/output caps,
//!   log caps. Every failure is a typed [`CallError`] naming the cause; nothing a
//!   plugin does can panic or stall the caller beyond the deadline.
//! - Each [`Plugin`] keeps its own warm instances (at most `max_warm_per_plugin`, and
//!   all plugins together at most `max_warm_total`, so warm instances never take the
//!   whole pool). Warm instances are reused between calls and recycled after a trap, a memory
//!   high-water mark or `max_calls_per_instance` calls; [`Plugin::call_fresh`] runs on
//!   a brand-new instance (the strict tier).
//!
//! WASI: a module may import `wasi_snapshot_preview1` functions; each gets a stub
//! that grants nothing (it returns `ENOTCAPABLE`; `proc_exit` traps). Any other import
//! module is refused at load time, naming the import.

mod abi;
mod validate;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, InstancePre, Linker, Module, OptLevel,
    PoolingAllocationConfig, Store, Trap, TypedFunc,
};

pub use abi::{ABI_MODULE, ABI_VERSION, LogLine};
pub use validate::{LoadError, PluginMeta};

/// Per-call and per-module limits. The defaults suit untrusted plugins.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wasm fuel per call (roughly one unit per instruction).
    pub fuel: u64,
    /// Wall-clock budget per call.
    pub deadline: Duration,
    /// Largest linear memory a plugin may grow to, in bytes.
    pub memory_bytes: usize,
    /// Largest input document, in bytes.
    pub max_input_bytes: usize,
    /// Largest output a plugin may write, in bytes.
    pub max_output_bytes: usize,
    /// Log lines kept per call; more are dropped.
    pub max_log_lines: usize,
    /// Longest log line kept, in bytes (longer ones are cut).
    pub max_log_line_bytes: usize,
    /// Largest module accepted, in bytes.
    pub max_module_bytes: usize,
    /// Instances alive at once, all plugins together (pooling allocator slots).
    pub max_instances: u32,
    /// A warm instance is recycled after this many calls.
    pub max_calls_per_instance: u32,
    /// Warm instances kept per plugin between calls (at most as many calls run at
    /// once reuse an instance; more instantiate fresh ones).
    pub max_warm_per_plugin: usize,
    /// Warm instances kept by all plugins together: the rest of `max_instances` is
    /// always free for calls, so plugins that keep instances warm can never starve
    /// another plugin's call of an instance.
    pub max_warm_total: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: 10_000_000,
            deadline: Duration::from_millis(50),
            memory_bytes: 16 << 20,
            max_input_bytes: 1 << 20,
            max_output_bytes: 1 << 20,
            max_log_lines: 16,
            max_log_line_bytes: 512,
            max_module_bytes: 8 << 20,
            max_instances: 256,
            max_calls_per_instance: 10_000,
            max_warm_per_plugin: 16,
            max_warm_total: 128,
        }
    }
}

/// The host could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("plugin host: {0}")]
pub struct HostError(String);

/// Why a call failed. Each names the cause precisely; the plugin is named by the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("input is {size} bytes; plugins take at most {limit}")]
    InputTooLarge { size: usize, limit: usize },
    #[error("ran out of fuel ({fuel} units)")]
    OutOfFuel { fuel: u64 },
    #[error("did not finish within {ms} ms")]
    Deadline { ms: u64 },
    #[error("tried to grow its memory past {limit} bytes")]
    MemoryLimit { limit: usize },
    #[error("wrote more than {limit} bytes of output")]
    OutputTooLarge { limit: usize },
    #[error("output is not JSON: {0}")]
    OutputNotJson(String),
    #[error("plugin error: {0}")]
    Guest(String),
    #[error("returned {0}, not 0 (emit), 1 (drop), 2 (pass) or 3 (error)")]
    BadReturn(i32),
    #[error("trapped: {0}")]
    Trap(String),
    #[error("cannot instantiate: {0}")]
    Instantiate(String),
}

impl CallError {
    /// A stable machine-readable kind (metrics label, attempt `error_kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::InputTooLarge { .. } => "plugin_input_too_large",
            CallError::OutOfFuel { .. } => "plugin_out_of_fuel",
            CallError::Deadline { .. } => "plugin_deadline",
            CallError::MemoryLimit { .. } => "plugin_memory_limit",
            CallError::OutputTooLarge { .. } => "plugin_output_too_large",
            CallError::OutputNotJson(_) => "plugin_output_not_json",
            CallError::Guest(_) => "plugin_error",
            CallError::BadReturn(_) => "plugin_bad_return",
            CallError::Trap(_) => "plugin_trap",
            CallError::Instantiate(_) => "plugin_instantiate",
        }
    }
}

/// What a successful call asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Send this body (JSON text, validated).
    Emit(Vec<u8>),
    /// Send nothing for this delivery.
    Drop,
    /// Send the body unchanged.
    Pass,
}

/// A finished call: its outcome and what it cost.
#[derive(Debug, Clone)]
pub struct Report {
    pub outcome: Result<Outcome, CallError>,
    pub fuel_used: u64,
    pub took: Duration,
    pub logs: Vec<LogLine>,
}

/// One engine for every plugin, and the epoch ticker that enforces deadlines.
pub struct Host {
    engine: Engine,
    limits: Limits,
    /// Epoch ticks per deadline.
    deadline_ticks: u64,
    /// Compiled modules by sha256, while some plugin uses them: a module nobody uses
    /// any more is freed, not kept forever.
    cache: Mutex<HashMap<[u8; 32], std::sync::Weak<Compiled>>>,
    /// Warm instances kept by every plugin of this host (see `Limits::max_warm_total`).
    warm_total: Arc<AtomicUsize>,
    ticker: Arc<Ticker>,
    ticker_thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// How often the epoch advances; deadlines are rounded up to it.
const TICK: Duration = Duration::from_millis(2);

/// Ticks with no call running before the ticker goes to sleep (100 ms).
const IDLE_TICKS: u32 = 50;

/// Advances the engine's epoch every [`TICK`] while calls run, and sleeps when none
/// has run for [`IDLE_TICKS`]: a server without plugin traffic is not woken 500 times
/// a second. A call that finds it asleep wakes it before running, so every call's
/// deadline is counted from a ticking epoch.
struct Ticker {
    engine: Engine,
    /// Calls (and instantiations) running now.
    running: AtomicUsize,
    /// The ticker is about to sleep or sleeps.
    asleep: AtomicBool,
    stop: AtomicBool,
    thread: std::sync::OnceLock<std::thread::Thread>,
}

impl Ticker {
    fn run(&self) {
        let mut idle = 0;
        while !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(TICK);
            self.engine.increment_epoch();
            if self.running.load(Ordering::SeqCst) > 0 {
                idle = 0;
                continue;
            }
            idle += 1;
            if idle < IDLE_TICKS {
                continue;
            }
            // Announce the sleep, then look again: a call that started in between
            // either is seen here or sees `asleep` and unparks (the token makes the
            // park return at once).
            self.asleep.store(true, Ordering::SeqCst);
            if self.running.load(Ordering::SeqCst) == 0 && !self.stop.load(Ordering::SeqCst) {
                std::thread::park();
            }
            self.asleep.store(false, Ordering::SeqCst);
            idle = 0;
        }
    }

    /// Marks a call as running until the guard drops, waking the ticker if needed.
    fn enter(&self) -> Running<'_> {
        self.running.fetch_add(1, Ordering::SeqCst);
        if self.asleep.load(Ordering::SeqCst) {
            self.wake();
        }
        Running(self)
    }

    fn wake(&self) {
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }
}

/// A call in progress (see [`Ticker::enter`]).
struct Running<'a>(&'a Ticker);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Host {
    pub fn new(limits: Limits) -> Result<Self, HostError> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_core_instances(limits.max_instances)
            .total_memories(limits.max_instances)
            .total_tables(limits.max_instances)
            .max_memories_per_module(1)
            .max_tables_per_module(1)
            .max_memory_size(limits.memory_bytes);
        let mut config = Config::new();
        config
            .cranelift_opt_level(OptLevel::Speed)
            .consume_fuel(true)
            .epoch_interruption(true)
            .max_wasm_stack(512 << 10)
            // Explicit bounds checks inside a small reservation: the pool reserves
            // address space per slot, so keep slots near the memory cap.
            .memory_reservation(limits.memory_bytes as u64)
            .memory_guard_size(64 << 10)
            .memory_reservation_for_growth(0)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(|e| HostError(e.to_string()))?;
        let ticker = Arc::new(Ticker {
            engine: engine.clone(),
            running: AtomicUsize::new(0),
            asleep: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            thread: std::sync::OnceLock::new(),
        });
        let ticker_thread = {
            let ticker = ticker.clone();
            std::thread::Builder::new()
                .name("gp-wasm-epoch".into())
                .spawn(move || ticker.run())
                .map_err(|e| HostError(format!("epoch thread: {e}")))?
        };
        let _ = ticker.thread.set(ticker_thread.thread().clone());
        let deadline_ticks = (limits.deadline.as_micros() / TICK.as_micros()).max(1) as u64 + 1;
        Ok(Self {
            engine,
            limits,
            deadline_ticks,
            cache: Mutex::new(HashMap::new()),
            warm_total: Arc::new(AtomicUsize::new(0)),
            ticker,
            ticker_thread: Some(ticker_thread),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// True while the epoch ticker sleeps (no call has run for a while).
    pub fn epoch_ticker_asleep(&self) -> bool {
        self.ticker.asleep.load(Ordering::SeqCst)
    }

    /// Validates, compiles and prepares a module, and returns a new [`Plugin`] over it
    /// with its own warm instances (callers keep one per tenant and plugin version, so
    /// one tenant's traffic never uses another's instances). The compiled module is
    /// shared by sha256 while any plugin uses it. Compiling takes milliseconds: call
    /// it off the delivery path (upload, subscription save).
    pub fn load(&self, wasm: &[u8]) -> Result<Arc<Plugin>, LoadError> {
        let compiled = self.compile(wasm)?;
        Ok(Arc::new(Plugin {
            sha256: compiled.sha256.clone(),
            size: compiled.size,
            meta: compiled.meta.clone(),
            compiled,
            engine: self.engine.clone(),
            ticker: self.ticker.clone(),
            limits: self.limits.clone(),
            deadline_ticks: self.deadline_ticks,
            warm: Mutex::new(Vec::new()),
            warm_total: self.warm_total.clone(),
        }))
    }

    /// The compiled module of `wasm`, from the cache while it is in use.
    fn compile(&self, wasm: &[u8]) -> Result<Arc<Compiled>, LoadError> {
        let sha: [u8; 32] = Sha256::digest(wasm).into();
        if let Some(c) = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.get(&sha).and_then(std::sync::Weak::upgrade))
        {
            return Ok(c);
        }
        if wasm.len() > self.limits.max_module_bytes {
            return Err(LoadError::TooLarge {
                size: wasm.len(),
                limit: self.limits.max_module_bytes,
            });
        }
        let mut meta = validate::inspect(wasm, self.limits.memory_bytes)?;
        let module =
            Module::new(&self.engine, wasm).map_err(|e| LoadError::Compile(e.to_string()))?;
        meta.uses_wasi = validate::uses_wasi(&module);
        let mut linker: Linker<abi::State> = Linker::new(&self.engine);
        abi::define(&mut linker).map_err(|e| LoadError::Compile(e.to_string()))?;
        validate::link_imports(&module, &mut linker)?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| LoadError::Link(e.to_string()))?;
        let compiled = Arc::new(Compiled {
            sha256: hex::encode(sha),
            size: wasm.len(),
            meta,
            pre,
        });
        if let Ok(mut c) = self.cache.lock() {
            c.retain(|_, weak| weak.strong_count() > 0);
            c.insert(sha, Arc::downgrade(&compiled));
        }
        Ok(compiled)
    }

    /// Compiled modules alive now (in use by some plugin).
    pub fn cached_modules(&self) -> usize {
        self.cache
            .lock()
            .map(|c| c.values().filter(|w| w.strong_count() > 0).count())
            .unwrap_or(0)
    }

    /// Warm instances kept by all plugins of this host.
    pub fn warm_instances(&self) -> usize {
        self.warm_total.load(Ordering::SeqCst)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.ticker.stop.store(true, Ordering::SeqCst);
        self.ticker.wake();
        if let Some(t) = self.ticker_thread.take() {
            let _ = t.join();
        }
    }
}

/// A validated, compiled module, shared by every plugin loaded from the same bytes.
struct Compiled {
    sha256: String,
    size: usize,
    meta: PluginMeta,
    pre: InstancePre<abi::State>,
}

/// A compiled plugin, ready to instantiate, with its own warm instances.
pub struct Plugin {
    pub sha256: String,
    pub size: usize,
    pub meta: PluginMeta,
    compiled: Arc<Compiled>,
    engine: Engine,
    ticker: Arc<Ticker>,
    limits: Limits,
    deadline_ticks: u64,
    /// Instances kept between calls.
    warm: Mutex<Vec<Warm>>,
    /// Warm instances of every plugin of the host (shared counter).
    warm_total: Arc<AtomicUsize>,
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let kept = self.warm.get_mut().map_or(0, |w| w.len());
        self.warm_total.fetch_sub(kept, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("sha256", &self.sha256)
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// A live instance and its entry point.
struct Warm {
    store: Store<abi::State>,
    entry: TypedFunc<(), i32>,
    calls: u32,
}

impl Plugin {
    /// Runs the plugin on `input` with `config`, on a warm instance when one is free.
    pub fn call(&self, input: &[u8], config: &[u8]) -> Report {
        let warm = self.warm.lock().ok().and_then(|mut w| w.pop());
        let warm = match warm {
            Some(w) => {
                self.warm_total.fetch_sub(1, Ordering::SeqCst);
                w
            }
            None => match self.instantiate() {
                Ok(w) => w,
                Err(e) => return failed(e),
            },
        };
        let (report, warm) = self.run(warm, input, config);
        if let Some(w) = warm
            && let Ok(mut pool) = self.warm.lock()
            && pool.len() < self.limits.max_warm_per_plugin
            && self.reserve_warm_slot()
        {
            pool.push(w);
        }
        report
    }

    /// Counts one more warm instance if the host-wide limit allows it.
    fn reserve_warm_slot(&self) -> bool {
        self.warm_total
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.limits.max_warm_total).then_some(n + 1)
            })
            .is_ok()
    }

    /// Warm instances this plugin keeps now.
    pub fn warm_instances(&self) -> usize {
        self.warm.lock().map_or(0, |w| w.len())
    }

    /// Whether two plugins run the same compiled module (loaded from the same bytes).
    pub fn shares_module_with(&self, other: &Plugin) -> bool {
        Arc::ptr_eq(&self.compiled, &other.compiled)
    }

    /// Runs the plugin on a brand-new instance, dropped afterwards (no state can leak
    /// from one event to the next).
    pub fn call_fresh(&self, input: &[u8], config: &[u8]) -> Report {
        match self.instantiate() {
            Ok(w) => self.run(w, input, config).0,
            Err(e) => failed(e),
        }
    }

    /// Instantiates without calling (for benchmarks of the instantiation cost).
    pub fn instantiate_only(&self) -> Result<(), CallError> {
        self.instantiate().map(drop)
    }

    fn instantiate(&self) -> Result<Warm, CallError> {
        let mut store = Store::new(&self.engine, abi::State::new(&self.limits));
        store.limiter(|s| &mut s.limiter);
        // Start functions run under the same limits as calls.
        store
            .set_fuel(self.limits.fuel)
            .map_err(|e| CallError::Instantiate(e.to_string()))?;
        store.set_epoch_deadline(self.deadline_ticks);
        store.epoch_deadline_trap();
        // Start functions run here too: the epoch must tick.
        let _running = self.ticker.enter();
        let instance = self
            .compiled
            .pre
            .instantiate(&mut store)
            .map_err(|e| CallError::Instantiate(e.to_string()))?;
        let entry = instance
            .get_typed_func::<(), i32>(&mut store, abi::ENTRY)
            .map_err(|e| CallError::Instantiate(e.to_string()))?;
        let memory = instance.get_memory(&mut store, "memory");
        store.data_mut().memory = memory;
        Ok(Warm {
            store,
            entry,
            calls: 0,
        })
    }

    /// One call; gives the instance back when it may be reused.
    fn run(&self, mut warm: Warm, input: &[u8], config: &[u8]) -> (Report, Option<Warm>) {
        let started = Instant::now();
        if input.len() > self.limits.max_input_bytes {
            let e = CallError::InputTooLarge {
                size: input.len(),
                limit: self.limits.max_input_bytes,
            };
            return (failed(e), Some(warm));
        }
        let store = &mut warm.store;
        store.data_mut().begin(input, config);
        if store.set_fuel(self.limits.fuel).is_err() {
            return (failed(CallError::Trap("cannot set fuel".into())), None);
        }
        store.set_epoch_deadline(self.deadline_ticks);
        let running = self.ticker.enter();
        let result = warm.entry.call(&mut *store, ());
        drop(running);
        let fuel_used = self
            .limits
            .fuel
            .saturating_sub(store.get_fuel().unwrap_or(0));
        let state = store.data_mut();
        let logs = std::mem::take(&mut state.logs);
        let outcome = match result {
            Ok(code) => state.finish(code),
            Err(e) => Err(self.classify(&e, state)),
        };
        warm.calls += 1;
        let keep = outcome.is_ok()
            && warm.calls < self.limits.max_calls_per_instance
            && store
                .data()
                .memory
                .is_some_and(|m| m.data_size(&*store) <= self.limits.memory_bytes / 2);
        let report = Report {
            outcome,
            fuel_used,
            took: started.elapsed(),
            logs,
        };
        (report, keep.then_some(warm))
    }

    fn classify(&self, e: &wasmtime::Error, state: &abi::State) -> CallError {
        if state.output_overflow {
            return CallError::OutputTooLarge {
                limit: self.limits.max_output_bytes,
            };
        }
        if state.limiter.denied {
            return CallError::MemoryLimit {
                limit: self.limits.memory_bytes,
            };
        }
        match e.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => CallError::OutOfFuel {
                fuel: self.limits.fuel,
            },
            Some(Trap::Interrupt) => CallError::Deadline {
                ms: self.limits.deadline.as_millis() as u64,
            },
            Some(trap) => match &state.error {
                // A guest that reported an error and then trapped (a panic): its
                // message says more than the trap.
                Some(msg) => CallError::Guest(format!("{msg} ({trap})")),
                None => CallError::Trap(trap.to_string()),
            },
            None => CallError::Trap(format!("{e:#}")),
        }
    }
}

fn failed(e: CallError) -> Report {
    Report {
        outcome: Err(e),
        fuel_used: 0,
        took: Duration::ZERO,
        logs: Vec::new(),
    }
}
