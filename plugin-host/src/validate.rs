//! Load-time checks: a plugin must be a core module speaking ABI v1, importing only
//! `gatepulse_v1` (and, stubbed, `wasi_snapshot_preview1`), exporting its memory and
//! `gatepulse_transform`. Everything is decided before any event flows.

use serde::Deserialize;
use wasmtime::wasmparser::{Encoding, Parser, Payload};
use wasmtime::{ExternType, Linker, Module, Val, ValType};

use crate::abi::{ABI_MODULE, ABI_VERSION, ENTRY, State};

const WASI_MODULE: &str = "wasi_snapshot_preview1";
/// WASI errno `ENOTCAPABLE`: what every stubbed WASI call answers.
const ENOTCAPABLE: i32 = 76;
/// The custom section carrying the plugin's metadata.
pub const META_SECTION: &str = "gatepulse.plugin";

/// Why a module was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("module is {size} bytes; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("not a WebAssembly module: {0}")]
    NotWasm(String),
    #[error(
        "this is a component; GatePulse plugins are core modules (build for wasm32-unknown-unknown)"
    )]
    Component,
    #[error("the `{META_SECTION}` custom section is not valid JSON: {0}")]
    BadMeta(String),
    #[error("built for plugin ABI {found}; this host speaks ABI {ABI_VERSION}")]
    AbiVersion { found: u32 },
    #[error(
        "imports `{module}.{name}`; plugins may import only from `{ABI_MODULE}` (and `{WASI_MODULE}`, which is stubbed)"
    )]
    ForbiddenImport { module: String, name: String },
    #[error("imports `{ABI_MODULE}.{name}`, which ABI {ABI_VERSION} does not define")]
    UnknownAbiFunction { name: String },
    #[error("does not export `{0}`")]
    MissingExport(&'static str),
    #[error("export `{ENTRY}` must have type () -> i32")]
    BadEntry,
    #[error("needs {needed} bytes of memory at start; the limit is {limit}")]
    MemoryTooLarge { needed: u64, limit: usize },
    #[error("does not compile: {0}")]
    Compile(String),
    #[error("cannot be linked: {0}")]
    Link(String),
}

/// What a plugin says about itself (the `gatepulse.plugin` section), and what it uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginMeta {
    pub name: Option<String>,
    pub abi: u32,
    pub sdk: Option<String>,
    /// Imports `wasi_snapshot_preview1` functions (stubbed: they grant nothing).
    pub uses_wasi: bool,
}

#[derive(Deserialize)]
struct MetaSection {
    name: Option<String>,
    abi: Option<u32>,
    sdk: Option<String>,
}

/// Reads the metadata section and refuses components, before compiling anything.
pub(crate) fn inspect(wasm: &[u8], memory_limit: usize) -> Result<PluginMeta, LoadError> {
    let mut meta = PluginMeta {
        abi: ABI_VERSION,
        ..PluginMeta::default()
    };
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| LoadError::NotWasm(e.to_string()))? {
            Payload::Version {
                encoding: Encoding::Component,
                ..
            } => return Err(LoadError::Component),
            Payload::MemorySection(memories) => {
                for memory in memories {
                    let memory = memory.map_err(|e| LoadError::NotWasm(e.to_string()))?;
                    let needed = memory.initial.saturating_mul(65_536);
                    if needed > memory_limit as u64 {
                        return Err(LoadError::MemoryTooLarge {
                            needed,
                            limit: memory_limit,
                        });
                    }
                }
            }
            Payload::CustomSection(section) if section.name() == META_SECTION => {
                let m: MetaSection = serde_json::from_slice(section.data())
                    .map_err(|e| LoadError::BadMeta(e.to_string()))?;
                meta.name = m.name;
                meta.sdk = m.sdk;
                if let Some(abi) = m.abi {
                    if abi != ABI_VERSION {
                        return Err(LoadError::AbiVersion { found: abi });
                    }
                    meta.abi = abi;
                }
            }
            _ => {}
        }
    }
    Ok(meta)
}

/// Checks imports and exports of a compiled module and links denying stubs for its
/// WASI imports into `linker`.
pub(crate) fn link_imports(module: &Module, linker: &mut Linker<State>) -> Result<(), LoadError> {
    const ABI_FUNCTIONS: &[&str] = &[
        "input_len",
        "input_read",
        "config_len",
        "config_read",
        "output_write",
        "error",
        "log",
    ];
    for import in module.imports() {
        let (m, name) = (import.module(), import.name());
        if m == ABI_MODULE {
            if !ABI_FUNCTIONS.contains(&name) {
                return Err(LoadError::UnknownAbiFunction { name: name.into() });
            }
            continue;
        }
        if m == WASI_MODULE
            && let ExternType::Func(ty) = import.ty()
        {
            let exit = name == "proc_exit";
            let results: Vec<ValType> = ty.results().collect();
            linker
                .func_new(m, name, ty, move |_caller, _params, out| {
                    if exit {
                        return Err(wasmtime::Error::msg(
                            "proc_exit called (WASI is not granted)",
                        ));
                    }
                    for (slot, ty) in out.iter_mut().zip(&results) {
                        *slot = match ty {
                            ValType::I32 => Val::I32(ENOTCAPABLE),
                            ValType::I64 => Val::I64(0),
                            ValType::F32 => Val::F32(0),
                            ValType::F64 => Val::F64(0),
                            _ => Val::I32(0),
                        };
                    }
                    Ok(())
                })
                .map_err(|e| LoadError::Link(e.to_string()))?;
            continue;
        }
        // Another ABI version, another host's module, or a non-function WASI import.
        if let Some(version) = m.strip_prefix("gatepulse_v") {
            let found = version.parse().unwrap_or(0);
            return Err(LoadError::AbiVersion { found });
        }
        return Err(LoadError::ForbiddenImport {
            module: m.into(),
            name: name.into(),
        });
    }
    let mut has_memory = false;
    let mut has_entry = false;
    for export in module.exports() {
        match (export.name(), export.ty()) {
            ("memory", ExternType::Memory(_)) => has_memory = true,
            (ENTRY, ExternType::Func(f)) => {
                let ok = f.params().len() == 0
                    && f.results().len() == 1
                    && f.results().all(|r| matches!(r, ValType::I32));
                if !ok {
                    return Err(LoadError::BadEntry);
                }
                has_entry = true;
            }
            _ => {}
        }
    }
    if !has_memory {
        return Err(LoadError::MissingExport("memory"));
    }
    if !has_entry {
        return Err(LoadError::MissingExport(ENTRY));
    }
    Ok(())
}

/// Whether a compiled module imports WASI.
pub(crate) fn uses_wasi(module: &Module) -> bool {
    module.imports().any(|i| i.module() == WASI_MODULE)
}
