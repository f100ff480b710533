//! Hostile policy components: each class of attack on the host, with a guest
//! of its own (built from `guest-policies/fixtures/`, or made here from a
//! hand-written core module where Rust cannot express the attack).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use codex_jobhost::policy::{Guest, GuestLimits, PolicyEngine};
use common::{job, wasm};
use wasm_encoder::{
    CodeSection, ConstExpr, DataSection, ExportKind, ExportSection, Function, FunctionSection, HeapType,
    Instruction as I, MemorySection, MemoryType, Module, RefType, TableSection, TableType, TypeSection, ValType,
};

/// A component made by hand: an `output-truncation` whose `truncate` grows
/// its funcref table by `grow` elements per call (trapping when refused) and
/// returns `"ok"`; with `memories` linear memories in its one core module.
fn handmade_truncation(dir: &Path, name: &str, grow: i32, memories: u32) -> PathBuf {
    let mut module = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([ValType::I32; 4], [ValType::I32]); // cabi_realloc
    types.ty().function([ValType::I32; 15], [ValType::I32]); // truncate(job-info, text, limits) -> retptr
    module.section(&types);
    let mut funcs = FunctionSection::new();
    funcs.function(0);
    funcs.function(1);
    module.section(&funcs);
    let mut tables = TableSection::new();
    tables.table(TableType {
        element_type: RefType::FUNCREF,
        table64: false,
        minimum: 1,
        maximum: None,
        shared: false,
    });
    module.section(&tables);
    let mut mems = MemorySection::new();
    for _ in 0..memories {
        mems.memory(MemoryType { minimum: 4, maximum: None, memory64: false, shared: false, page_size_log2: None });
    }
    module.section(&mems);
    let mut globals = wasm_encoder::GlobalSection::new();
    globals.global(
        wasm_encoder::GlobalType { val_type: ValType::I32, mutable: true, shared: false },
        &ConstExpr::i32_const(1024),
    );
    module.section(&globals);
    let mut exports = ExportSection::new();
    exports.export("memory", ExportKind::Memory, 0);
    exports.export("cabi_realloc", ExportKind::Func, 0);
    exports.export("codex-jobhost:policy/truncation@0.1.0#truncate", ExportKind::Func, 1);
    module.section(&exports);
    let mut code = CodeSection::new();
    // cabi_realloc: a bump allocator, 8-byte aligned, never freeing.
    let mut realloc = Function::new([]);
    for i in [
        I::GlobalGet(0),
        I::I32Const(7),
        I::I32Add,
        I::I32Const(-8),
        I::I32And,
        I::GlobalSet(0),
        I::GlobalGet(0),
        I::GlobalGet(0),
        I::LocalGet(3),
        I::I32Add,
        I::GlobalSet(0),
        I::End,
    ] {
        realloc.instruction(&i);
    }
    code.function(&realloc);
    let mut truncate = Function::new([]);
    for i in [
        I::RefNull(HeapType::FUNC),
        I::I32Const(grow),
        I::TableGrow(0),
        I::I32Const(-1),
        I::I32Eq,
        I::If(wasm_encoder::BlockType::Empty),
        I::Unreachable,
        I::End,
        I::I32Const(16), // the result: (ptr 32, len 2) at 16, "ok" at 32
        I::End,
    ] {
        truncate.instruction(&i);
    }
    code.function(&truncate);
    module.section(&code);
    let mut data = DataSection::new();
    data.active(0, &ConstExpr::i32_const(16), [32, 0, 0, 0, 2, 0, 0, 0]);
    data.active(0, &ConstExpr::i32_const(32), *b"ok");
    module.section(&data);
    let mut bytes = module.finish();

    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve.push_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit")).unwrap();
    let world = resolve.select_world(&[package], Some("output-truncation")).unwrap();
    wit_component::embed_component_metadata(&mut bytes, &resolve, world, wit_component::StringEncoding::UTF8).unwrap();
    let component = wit_component::ComponentEncoder::default().module(&bytes).unwrap().encode().unwrap();
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, component).unwrap();
    path
}

fn limits() -> codex_jobhost::policy::Limits {
    codex_jobhost::policy::Limits { max_chars: 100, max_lines: 10 }
}

#[test]
fn tables_count_against_the_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    // 1 Mi elements a call: 8 MiB counted; the second call passes 16 MiB.
    let path = handmade_truncation(dir.path(), "table_grower", 1 << 20, 1);
    let engine = PolicyEngine::new(None).unwrap();
    let (component, _) = engine.load(&path).unwrap();
    let g = Guest::new("table_grower", Arc::new(component), "{}".into(), GuestLimits::default());
    assert_eq!(g.truncate(&job(), "text", limits()).unwrap(), "ok");
    let err = g.truncate(&job(), "text", limits()).unwrap_err();
    assert!(err.contains("exceeded its memory cap of 16 MiB (memories and tables together)"), "{err}");
    // A fresh instance starts from nothing again.
    assert_eq!(g.truncate(&job(), "text", limits()).unwrap(), "ok");
}

#[test]
fn a_core_module_with_two_memories_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = handmade_truncation(dir.path(), "two_memories", 1, 2);
    let engine = PolicyEngine::new(None).unwrap();
    let err = format!("{:#}", engine.load(&path).err().unwrap());
    assert!(err.contains("two_memories.wasm") && err.contains("memor"), "{err}");
}

#[test]
fn a_guest_that_sleeps_in_wasi_is_refused_at_load() {
    // A sleep inside a host call is out of the deadline's reach, so the host
    // offers no monotonic clock to subscribe to; the load names the import.
    let engine = PolicyEngine::new(None).unwrap();
    let err = format!("{:#}", engine.load(&wasm("fixture_sleeper")).err().unwrap());
    assert!(err.contains("fixture_sleeper.wasm") && err.contains("wasi:clocks/monotonic-clock"), "{err}");
}

#[test]
fn exports_with_the_right_names_and_wrong_types_are_refused() {
    let engine = PolicyEngine::new(None).unwrap();
    let err = format!("{:#}", engine.load(&wasm("fixture_wrong_types")).err().unwrap());
    assert!(
        err.contains("fixture_wrong_types.wasm")
            && err.contains("does not match the approval-policy world")
            && err.contains("decide"),
        "{err}"
    );
}
